#include "paradiff/models/flux/flux_bfl_checkpoint.h"

#include <set>

namespace paradiff::models::flux {

FluxBflWeights::FluxBflWeights(Checkpoint checkpoint, const FluxTransformerConfig& config)
    : checkpoint_(std::move(checkpoint)) {
  const int64_t c = config.inner_dim(), mlp = config.mlp_hidden_dim();
  map_linear("x_embedder", "img_in");
  map_linear("context_embedder", "txt_in");
  map_linear("time_text_embed.timestep_embedder.linear_1", "time_in.in_layer");
  map_linear("time_text_embed.timestep_embedder.linear_2", "time_in.out_layer");
  map_linear("time_text_embed.text_embedder.linear_1", "vector_in.in_layer");
  map_linear("time_text_embed.text_embedder.linear_2", "vector_in.out_layer");
  if (config.guidance_embeds) {
    map_linear("time_text_embed.guidance_embedder.linear_1", "guidance_in.in_layer");
    map_linear("time_text_embed.guidance_embedder.linear_2", "guidance_in.out_layer");
  }
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string d = str_cat("transformer_blocks.", i, ".");
    const std::string b = str_cat("double_blocks.", i, ".");
    map_linear(d + "norm1.linear", b + "img_mod.lin");
    map_linear(d + "norm1_context.linear", b + "txt_mod.lin");
    const char* image_qkv[] = {"attn.to_q", "attn.to_k", "attn.to_v"};
    const char* text_qkv[] = {"attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"};
    for (int j = 0; j < 3; ++j) {
      map_linear(d + image_qkv[j], b + "img_attn.qkv", j * c, c);
      map_linear(d + text_qkv[j], b + "txt_attn.qkv", j * c, c);
    }
    map(d + "attn.norm_q.weight", b + "img_attn.norm.query_norm.scale");
    map(d + "attn.norm_k.weight", b + "img_attn.norm.key_norm.scale");
    map(d + "attn.norm_added_q.weight", b + "txt_attn.norm.query_norm.scale");
    map(d + "attn.norm_added_k.weight", b + "txt_attn.norm.key_norm.scale");
    map_linear(d + "attn.to_out.0", b + "img_attn.proj");
    map_linear(d + "attn.to_add_out", b + "txt_attn.proj");
    map_linear(d + "ff.net.0.proj", b + "img_mlp.0");
    map_linear(d + "ff.net.2", b + "img_mlp.2");
    map_linear(d + "ff_context.net.0.proj", b + "txt_mlp.0");
    map_linear(d + "ff_context.net.2", b + "txt_mlp.2");
  }
  for (int64_t i = 0; i < config.num_single_layers; ++i) {
    const std::string d = str_cat("single_transformer_blocks.", i, ".");
    const std::string b = str_cat("single_blocks.", i, ".");
    map_linear(d + "norm.linear", b + "modulation.lin");
    // linear1 stacks q, k, v and the MLP input projection by rows.
    map_linear(d + "attn.to_q", b + "linear1", 0, c);
    map_linear(d + "attn.to_k", b + "linear1", c, c);
    map_linear(d + "attn.to_v", b + "linear1", 2 * c, c);
    map_linear(d + "proj_mlp", b + "linear1", 3 * c, mlp);
    map(d + "attn.norm_q.weight", b + "norm.query_norm.scale");
    map(d + "attn.norm_k.weight", b + "norm.key_norm.scale");
    map_linear(d + "proj_out", b + "linear2");
  }
  map_linear("norm_out.linear", "final_layer.adaLN_modulation.1", 0, -1, /*swap_halves=*/true);
  map_linear("proj_out", "final_layer.linear");
}

void FluxBflWeights::map(const std::string& diffusers, const std::string& bfl, int64_t row_start,
                         int64_t rows, bool swap_halves) {
  pieces_[diffusers] = Piece{bfl, row_start, rows, swap_halves};
}

void FluxBflWeights::map_linear(const std::string& diffusers, const std::string& bfl,
                                int64_t row_start, int64_t rows, bool swap_halves) {
  map(diffusers + ".weight", bfl + ".weight", row_start, rows, swap_halves);
  map(diffusers + ".bias", bfl + ".bias", row_start, rows, swap_halves);
}

std::string FluxBflWeights::describe() const {
  return checkpoint_.path() + " (Black Forest Labs layout)";
}

std::vector<std::string> FluxBflWeights::names() const {
  std::vector<std::string> out;
  std::set<std::string> consumed;
  for (const auto& [name, piece] : pieces_) {
    if (!checkpoint_.contains(piece.source)) continue;
    out.push_back(name);
    consumed.insert(piece.source);
  }
  for (const std::string& name : checkpoint_.names())
    if (!consumed.count(name)) out.push_back(name);
  return out;
}

bool FluxBflWeights::contains(const std::string& name) const {
  auto it = pieces_.find(name);
  return it != pieces_.end() && checkpoint_.contains(it->second.source);
}

std::vector<int64_t> FluxBflWeights::shape(const std::string& name) const {
  const Piece& p = pieces_.at(name);
  std::vector<int64_t> shape = checkpoint_.info(p.source).shape;
  if (p.rows >= 0) {
    PARADIFF_CHECK(!shape.empty() && p.row_start + p.rows <= shape[0], describe(), ": tensor '",
                   p.source, "' has ", shape.empty() ? 0 : shape[0], " rows, the config needs ",
                   p.row_start + p.rows, " to split it");
    shape[0] = p.rows;
  }
  return shape;
}

Tensor FluxBflWeights::read(const std::string& name, DType want) const {
  PARADIFF_CHECK(contains(name), describe(), ": no tensor maps to '", name, "'");
  const Piece& p = pieces_.at(name);
  Tensor t = checkpoint_.read(p.source, want);
  if (p.rows >= 0) t = t.slice(p.row_start, p.rows);
  if (p.swap_halves) {
    const int64_t half = t.dim(0) / 2;
    PARADIFF_CHECK(t.dim(0) == 2 * half, describe(), ": '", p.source,
                   "' must have an even number of rows to swap its halves");
    Tensor swapped = Tensor::empty(t.shape(), t.dtype());
    swapped.slice(0, half).copy_from(t.slice(half, half));
    swapped.slice(half, half).copy_from(t.slice(0, half));
    t = swapped;
  }
  return t;
}

}  // namespace paradiff::models::flux
