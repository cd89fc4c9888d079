// An original Black Forest Labs FLUX checkpoint presented under diffusers' names, so the model
// binds it exactly like a diffusers folder: fused q/k/v (double blocks) and q/k/v/mlp (single
// blocks' linear1) are split by rows, and the final layer's (shift, scale) halves are swapped
// into diffusers' (scale, shift).
#pragma once

#include <map>
#include <string>

#include "paradiff/models/flux/flux_config.h"
#include "paradiff/models/weight_source.h"

namespace paradiff::models::flux {

class FluxBflWeights : public WeightSource {
 public:
  // The config gives the layer counts and sizes needed to split fused tensors.
  FluxBflWeights(Checkpoint checkpoint, const FluxTransformerConfig& config);

  std::string describe() const override;
  // Diffusers names for every mapped tensor the file holds, plus the file's own names for
  // tensors no mapping uses (so that the model reports them as unexpected).
  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override;
  std::vector<int64_t> shape(const std::string& name) const override;
  Tensor read(const std::string& name, DType want) const override;

 private:
  // Rows [row_start, row_start + rows) of BFL tensor `source`; rows < 0 means all rows.
  struct Piece {
    std::string source;
    int64_t row_start = 0;
    int64_t rows = -1;
    bool swap_halves = false;
  };
  void map(const std::string& diffusers, const std::string& bfl, int64_t row_start = 0,
           int64_t rows = -1, bool swap_halves = false);
  void map_linear(const std::string& diffusers, const std::string& bfl, int64_t row_start = 0,
                  int64_t rows = -1, bool swap_halves = false);

  Checkpoint checkpoint_;
  std::map<std::string, Piece> pieces_;  // diffusers name -> where it lives in the file
};

}  // namespace paradiff::models::flux
