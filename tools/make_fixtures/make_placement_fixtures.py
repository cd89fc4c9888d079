"""Writes tests/fixtures/placement/: golden device maps computed by accelerate's and diffusers' own
placement code, for paradiff's placement tests (tests/parallel/placement_*_test.cc).

Every model is built on the meta device from a config (no weights, no network): FLUX.1-dev's
transformer and pipeline configs as published (written out below), and the tiny test pipeline in
tests/fixtures/flux_pipeline/tiny. For each model the script writes its module structure (every
module in definition order with its class, every tensor with its element count and dtype, tied
groups, no-split classes): the C++ side takes a model's structure as data, so the goldens test
the algorithms, not a re-derivation of four model architectures. A separate fixture compares the
structure of the tiny pipeline's components with their safetensors files, so that sizes computed
from checkpoint headers are tested against accelerate's compute_module_sizes too.

Files written:
  models/<name>.json   module structures (compact: class names in a table)
  model_maps.json      get_balanced_memory + infer_auto_device_map per strategy and budget,
                       as diffusers' _determine_device_map calls them, plus check_device_map
  pipeline_maps.json   diffusers' _get_final_device_map("balanced") per budget
  sizes.json           compute_module_sizes of the tiny components (dtype None and bf16) and
                       the tensors the meta model has but the checkpoint does not
  max_memory.json      convert_file_size_to_int on size strings (value or error message)

Run by hand (never by CI), from the repository root:
    nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_placement_fixtures.py
It is deterministic; rerunning rewrites the same files.
"""
import copy
import json
import logging
import os
import tempfile
import warnings

import accelerate.utils.modeling as acc
import torch
from accelerate import init_empty_weights
from diffusers import (AutoencoderKL, AutoencoderKLQwenImage, FluxPipeline, FluxTransformer2DModel,
                       QwenImagePipeline)
from diffusers.models.model_loading_utils import _determine_device_map
from diffusers.pipelines.pipeline_loading_utils import _get_final_device_map
from safetensors import safe_open
from transformers import (AutoConfig, CLIPTextConfig, CLIPTextModel,
                          Qwen2_5_VLForConditionalGeneration, T5Config, T5EncoderModel)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "tests", "fixtures", "flux_pipeline", "tiny")
TINY_QWEN = os.path.join(ROOT, "tests", "fixtures", "qwen_image_pipeline", "tiny")
OUT = os.path.join(ROOT, "tests", "fixtures", "placement")

# black-forest-labs/FLUX.1-dev, as published (transformer/, text_encoder/, text_encoder_2/, vae/).
FLUX_DEV_TRANSFORMER = dict(
    attention_head_dim=128, axes_dims_rope=[16, 56, 56], guidance_embeds=True, in_channels=64,
    joint_attention_dim=4096, num_attention_heads=24, num_layers=19, num_single_layers=38,
    patch_size=1, pooled_projection_dim=768)
FLUX_DEV_CLIP = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, projection_dim=768,
    num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
    hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1)
FLUX_DEV_T5 = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True,
    tie_word_embeddings=False, layer_norm_epsilon=1e-6)
FLUX_DEV_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512], layers_per_block=2, act_fn="silu",
    norm_num_groups=32, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
    use_quant_conv=False, use_post_quant_conv=False)

GB = 10**9


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def structure(model):
    """The module tree as data: modules in named_modules order as [name, class index] or
    [name, class index, tensors], the tensors being the module's direct parameters then its direct
    buffers as [local name, element count, dtype, kind] (kind p = parameter, b = persistent
    buffer, n = non-persistent buffer)."""
    classes, modules = [], []
    for name, module in model.named_modules(remove_duplicate=False):
        cls = type(module).__name__
        if cls not in classes:
            classes.append(cls)
        tensors = []
        for pname, p in module.named_parameters(recurse=False):
            tensors.append([pname, p.numel(), dtype_name(p.dtype), "p"])
        for bname, b in module.named_buffers(recurse=False):
            kind = "n" if bname in module._non_persistent_buffers_set else "b"
            tensors.append([bname, b.numel(), dtype_name(b.dtype), kind])
        modules.append([name, classes.index(cls)] + ([tensors] if tensors else []))
    return {
        "class": type(model).__name__,
        "no_split": sorted(no_split_of(model)),
        "tied": acc.find_tied_parameters(model),
        "classes": classes,
        "modules": modules,
    }


def no_split_of(model):
    if hasattr(model, "_get_no_split_modules") and isinstance(model, FluxTransformer2DModel):
        return list(model._get_no_split_modules("auto"))
    return list(model._no_split_modules or [])


def flux_dev_transformer():
    with init_empty_weights():
        return FluxTransformer2DModel.from_config(FLUX_DEV_TRANSFORMER)


def tiny(component):
    path = os.path.join(TINY, component)
    with init_empty_weights():
        if component == "transformer":
            return FluxTransformer2DModel.from_config(FluxTransformer2DModel.load_config(path))
        if component == "vae":
            return AutoencoderKL.from_config(AutoencoderKL.load_config(path))
        if component == "text_encoder":
            return CLIPTextModel(CLIPTextConfig.from_pretrained(path))
        if component == "text_encoder_2":
            return T5EncoderModel(T5Config.from_pretrained(path))
    raise ValueError(component)


def tiny_qwen_vae():
    path = os.path.join(TINY_QWEN, "vae")
    with init_empty_weights():
        return AutoencoderKLQwenImage.from_config(AutoencoderKLQwenImage.load_config(path))


def tied(model):
    model.tie_weights()  # what from_pretrained does: shared.weight == encoder.embed_tokens.weight
    assert acc.find_tied_parameters(model), "tie_weights did not tie the T5 embeddings"
    return model


def tiny_qwen_text_encoder():
    """The tiny Qwen-Image pipeline's text_encoder (Qwen2_5_VLForConditionalGeneration, vision
    tower and lm_head included, as from_pretrained builds it)."""
    with init_empty_weights():
        return Qwen2_5_VLForConditionalGeneration(
            AutoConfig.from_pretrained(os.path.join(TINY_QWEN, "text_encoder")))


def tiny_t5_tied():
    return tied(tiny("text_encoder_2"))


def flux_dev_t5_tied():
    """FLUX.1-dev's text_encoder_2 as from_pretrained holds it: shared and embed_tokens tied."""
    with init_empty_weights():
        model = T5EncoderModel(T5Config(**FLUX_DEV_T5))
    return tied(model)


class Capture(logging.Handler):
    """Collects accelerate's 'no modules could be assigned' report (a logger.info)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.minimum = {}

    def emit(self, record):
        text = record.getMessage()
        if "no modules could be assigned" not in text:
            return
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("- ") and line.endswith("bytes required"):
                device, mem = line[2:].split(": ")
                self.minimum[device] = int(float(mem.split()[0]))


def memory_pairs(max_memory):
    return [[k, v] for k, v in max_memory.items()]


def run_model_case(model, name, strategy, max_memory, dtype, user_set=True, special_dtypes=None):
    """Mirrors diffusers' _determine_device_map (strategy string) and checks that it agrees."""
    no_split = no_split_of(model)
    logger = logging.getLogger("accelerate.utils.modeling")
    capture = Capture()
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    real_get_max_memory = acc.get_max_memory
    if not user_set:
        # No budget given: accelerate would ask the GPUs; stand in the same dict the C++ side
        # receives as its default budget, so that the user_not_set_max_memory path (x0.9) runs.
        default = {k: acc.convert_file_size_to_int(v) for k, v in max_memory.items()}
        acc.get_max_memory = lambda mm=None: dict(default) if mm is None else real_get_max_memory(mm)
    try:
        given = None if not user_set else copy.deepcopy(max_memory)
        if strategy == "sequential":
            balanced = acc.get_max_memory(copy.deepcopy(given))
        else:
            balanced = acc.get_balanced_memory(
                model, max_memory=copy.deepcopy(given), no_split_module_classes=no_split,
                dtype=dtype, special_dtypes=special_dtypes, low_zero=(strategy == "balanced_low_0"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            device_map = acc.infer_auto_device_map(
                model, max_memory=copy.deepcopy(balanced), no_split_module_classes=no_split,
                dtype=dtype, special_dtypes=special_dtypes)
        if isinstance(model, FluxTransformer2DModel) and not special_dtypes:
            expected = _determine_device_map(model, strategy, copy.deepcopy(given), dtype)
            assert dict(expected) == dict(device_map), (name, expected, device_map)
    finally:
        acc.get_max_memory = real_get_max_memory
        logger.removeHandler(capture)
    sizes = acc.compute_module_sizes(model, dtype=dtype, special_dtypes=special_dtypes)
    per_device = {}
    for module, device in sorted(device_map.items(), key=lambda kv: kv[0]):
        per_device[str(device)] = per_device.get(str(device), 0) + sizes[module]
    per_device = dict(sorted(per_device.items()))
    return {
        "name": name,
        "strategy": strategy,
        "dtype": dtype_name(dtype),
        "max_memory": memory_pairs(max_memory),
        "user_set": user_set,
        "special_dtypes": sorted([k, dtype_name(v)] for k, v in (special_dtypes or {}).items()),
        "balanced_memory": memory_pairs(balanced),
        "device_map": sorted([k, v] for k, v in device_map.items()),
        "bytes_per_device": per_device,
        "minimum_required": capture.minimum,
        "warnings": [str(w.message) for w in caught],
    }


def model_cases(models):
    bf16, f32 = torch.bfloat16, torch.float32
    flux, tt = models["flux_dev_transformer"], models["tiny_transformer"]
    cases = []

    def add(model_name, strategy, max_memory, dtype=bf16, label=None, user_set=True,
            special_dtypes=None):
        label = label or f"{model_name}/{strategy}/" + ",".join(f"{k}={v}" for k, v in max_memory.items())
        case = run_model_case(models[model_name], label, strategy, max_memory, dtype, user_set,
                              special_dtypes)
        case["model"] = model_name
        cases.append(case)
        print(f"  {label}: {len(case['device_map'])} keys, {case['bytes_per_device']}")

    # FLUX.1-dev at bf16 (placement.md §2.3's table, without a "cpu" budget: a rank is a CPU).
    for strategy in ["auto", "balanced", "balanced_low_0", "sequential"]:
        add("flux_dev_transformer", strategy, {0: "16GB", 1: "16GB"})
    add("flux_dev_transformer", "auto", {0: "24GB", 1: "24GB"})
    for strategy in ["auto", "balanced_low_0", "sequential"]:
        add("flux_dev_transformer", strategy, {0: "16GB", 1: "16GB", 2: "16GB"})
    for strategy in ["auto", "sequential"]:
        add("flux_dev_transformer", strategy, {0: "8GB", 1: "8GB", 2: "8GB", 3: "8GB"})
    add("flux_dev_transformer", "balanced_low_0", {0: "8GiB", 1: "8GiB", 2: "8GiB", 3: "8GiB"})
    # Uneven budgets, integer bytes, one rank, disk spill.
    add("flux_dev_transformer", "auto", {0: "10GB", 1: "6GB", 2: "9GB"})
    add("flux_dev_transformer", "sequential", {0: "10GB", 1: "6GB", 2: "9GB"})
    add("flux_dev_transformer", "auto", {0: 7_500_000_000, 1: 20_000_000_000})
    add("flux_dev_transformer", "auto", {0: "30GB"})
    add("flux_dev_transformer", "auto", {0: "16GB"})                       # spills to disk
    add("flux_dev_transformer", "sequential", {0: "5GB", 1: "5GB", 2: "5GB"})  # spills to disk
    add("flux_dev_transformer", "sequential", {0: "16GB", "disk": "100GB"})
    add("flux_dev_transformer", "auto", {0: "12GB", 1: "12GB"}, dtype=f32)
    add("flux_dev_transformer", "auto", {0: "20GB"}, label="flux_dev_transformer/auto/default 20GB",
        user_set=False)                                                     # x0.9
    add("flux_dev_transformer", "auto", {0: "100MB", 1: "100MB"})         # embedders only
    add("flux_dev_transformer", "auto", {0: "100KB", 1: "100KB"})         # fits nothing
    add("flux_dev_transformer", "sequential", {0: "600MB", 1: "16GB"})    # rank 0 gets nothing
    # The tiny pipeline's components, budgets in bytes around their sizes.
    tiny_total = acc.compute_module_sizes(tt, dtype=f32)[""]
    for strategy in ["auto", "balanced_low_0", "sequential"]:
        add("tiny_transformer", strategy, {0: tiny_total // 2, 1: tiny_total // 2}, dtype=f32)
        add("tiny_transformer", strategy, {0: tiny_total // 3, 1: tiny_total // 3,
                                           2: tiny_total // 3}, dtype=f32)
    add("tiny_transformer", "auto", {0: tiny_total // 4, 1: tiny_total // 4}, dtype=f32)
    add("tiny_transformer", "sequential", {0: 20000, 1: 30000, 2: 40000, 3: 1_000_000}, dtype=f32)
    add("tiny_transformer", "auto", {0: tiny_total // 2, 1: tiny_total // 2}, dtype=bf16)
    for model_name in ["tiny_text_encoder", "tiny_text_encoder_2", "tiny_text_encoder_2_tied",
                       "tiny_vae"]:
        total = acc.compute_module_sizes(models[model_name], dtype=f32)[""]
        for strategy in ["auto", "balanced_low_0", "sequential"]:
            add(model_name, strategy, {0: total // 2, 1: total // 2}, dtype=f32)
        add(model_name, "sequential", {0: total // 5, 1: total // 5, 2: total // 5}, dtype=f32)
        add(model_name, "auto", {0: total // 3, 1: total // 3, 2: total // 3}, dtype=bf16)
    # special_dtypes as diffusers derives them from _keep_in_fp32_modules (T5 keeps "wo" in fp32).
    t5_model = models["tiny_text_encoder_2"]
    keep = {n: torch.float32 for n, _ in t5_model.named_parameters()
            if any(m in n for m in t5_model._keep_in_fp32_modules)}
    total = acc.compute_module_sizes(t5_model, dtype=bf16, special_dtypes=keep)[""]
    for strategy in ["auto", "sequential"]:
        add("tiny_text_encoder_2", strategy, {0: total // 2, 1: total // 2},
            label=f"tiny_text_encoder_2/{strategy}/bf16 with wo in fp32", special_dtypes=keep)
    # Tied weights under pressure: the tied module must be split, or the pair moves on.
    t5 = acc.compute_module_sizes(models["tiny_text_encoder_2_tied"], dtype=f32)
    for budget in [t5["shared"] + 4000, t5["shared"] * 2, t5[""] // 4]:
        add("tiny_text_encoder_2_tied", "sequential", {0: budget, 1: budget, 2: budget, 3: t5[""]},
            dtype=f32)
    # --text-encoder-2-device-map: the T5 encoder as loaded (embeddings tied). The tiny one is
    # mostly its embedding (144 kB of 215 kB), hence the budgets; FLUX.1-dev's T5-XXL at bf16
    # (9.52 GB), every strategy at 2 and 3 ranks, spills included.
    for strategy, budget in [("auto", {0: 200000, 1: 200000}), ("auto", {0: 250000, 1: 250000}),
                             ("balanced", {0: 180000, 1: 180000, 2: 180000}),
                             ("balanced_low_0", {0: 200000, 1: 200000, 2: 200000}),
                             ("balanced_low_0", {0: 250000, 1: 250000}),
                             ("sequential", {0: 200000, 1: 200000}),
                             ("sequential", {0: 180000, 1: 40000, 2: 40000})]:
        add("tiny_text_encoder_2_tied", strategy, budget, dtype=f32)
    # --text-encoder-device-map: the tiny CLIP is mostly its embeddings (333 kB of 402 kB, one
    # no-split CLIPTextEmbeddings), hence the budgets.
    for strategy, budget in [("auto", {0: 400000, 1: 400000}), ("auto", {0: 500000, 1: 500000}),
                             ("balanced", {0: 400000, 1: 400000, 2: 400000}),
                             ("balanced_low_0", {0: 400000, 1: 400000, 2: 400000})]:
        add("tiny_text_encoder", strategy, budget, dtype=f32)
    # --text-encoder-device-map on Qwen-Image: the whole Qwen2.5-VL model (vision tower, language
    # model, lm_head), 281 kB in fp32, the embeddings and lm_head 92 kB each.
    qwen_total = acc.compute_module_sizes(models["tiny_qwen_image_text_encoder"], dtype=f32)[""]
    for strategy, budget in [("auto", {0: qwen_total // 2, 1: qwen_total // 2}),
                             ("auto", {0: qwen_total // 3, 1: qwen_total // 3,
                                       2: qwen_total // 3}),
                             ("balanced_low_0", {0: qwen_total, 1: qwen_total, 2: qwen_total}),
                             ("sequential", {0: 120000, 1: 120000, 2: 120000}),
                             ("sequential", {0: 200000, 1: 200000})]:
        add("tiny_qwen_image_text_encoder", strategy, budget, dtype=f32)
    add("tiny_qwen_image_text_encoder", "auto", {0: qwen_total // 2, 1: qwen_total // 2},
        label="tiny_qwen_image_text_encoder/auto/bf16 halves")
    # --vae-device-map on Qwen-Image: AutoencoderKLQwenImage declares no no-split modules
    # (diffusers' from_pretrained refuses a strategy name for it; accelerate's infer_auto_device_map
    # with that empty list is what the strategies compute), fp32 and bf16, 2 and 3 ranks, disk.
    qvae_total = acc.compute_module_sizes(models["tiny_qwen_image_vae"], dtype=f32)[""]
    for strategy, budget, dtype in [
            ("auto", {0: qvae_total // 2, 1: qvae_total // 2}, f32),
            ("auto", {0: qvae_total // 3, 1: qvae_total // 3, 2: qvae_total // 3}, f32),
            ("balanced_low_0", {0: qvae_total, 1: qvae_total, 2: qvae_total}, f32),
            ("sequential", {0: qvae_total // 2, 1: qvae_total // 2}, f32),
            ("sequential", {0: qvae_total // 5, 1: qvae_total // 5, 2: qvae_total // 5}, f32),
            ("auto", {0: qvae_total // 3, 1: qvae_total // 3, 2: qvae_total // 3}, bf16)]:
        add("tiny_qwen_image_vae", strategy, budget, dtype=dtype)
    for strategy in ["auto", "balanced_low_0", "sequential"]:
        add("flux_dev_text_encoder_2_tied", strategy, {0: "6GB", 1: "6GB"})
        add("flux_dev_text_encoder_2_tied", strategy, {0: "4GB", 1: "4GB", 2: "4GB"})
    add("flux_dev_text_encoder_2_tied", "auto", {0: "3GB", 1: "3GB", 2: "3GB", 3: "3GB"})
    add("flux_dev_text_encoder_2_tied", "auto", {0: "2GB", 1: "5GB"})   # spills to disk
    add("flux_dev_text_encoder_2_tied", "auto", {0: "10GB"}, dtype=f32)  # fp32: spills
    return cases


def check_cases(models):
    """check_device_map on explicit maps: accepted, or accelerate's message."""
    flux = models["flux_dev_transformer"]
    clip = models["tiny_text_encoder"]
    cases = []
    maps = [
        ("flux_dev_transformer", {"": 0}),
        ("flux_dev_transformer", {"transformer_blocks": 0, "single_transformer_blocks": 1,
                                  "pos_embed": 0, "time_text_embed": 0, "context_embedder": 0,
                                  "x_embedder": 0, "norm_out": 1, "proj_out": 1}),
        ("flux_dev_transformer", {"transformer_blocks": 0, "single_transformer_blocks": 1,
                                  "norm_out": 1, "proj_out": "disk"}),
        ("tiny_text_encoder", {"embeddings": 0, "encoder.layers.0": 0, "encoder.layers.1": 1}),
        ("tiny_text_encoder", {"embeddings": 0, "encoder": 1, "final_layer_norm": 1}),
    ]
    for model_name, device_map in maps:
        model = models[model_name]
        try:
            acc.check_device_map(model, device_map)
            error = None
        except ValueError as e:
            error = str(e)
        cases.append({"model": model_name, "device_map": [[k, v] for k, v in device_map.items()],
                      "error": error})
    return cases


def write_flux_dev_pipeline(folder):
    """A FLUX.1-dev pipeline folder with configs only, for _get_final_device_map."""
    index = {"_class_name": "FluxPipeline", "_diffusers_version": "0.42.1",
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"],
             "text_encoder_2": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"],
             "tokenizer_2": ["transformers", "T5TokenizerFast"],
             "transformer": ["diffusers", "FluxTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f)
    for sub, cls, cfg in [("transformer", FluxTransformer2DModel, FLUX_DEV_TRANSFORMER),
                          ("vae", AutoencoderKL, FLUX_DEV_VAE)]:
        os.makedirs(os.path.join(folder, sub))
        with open(os.path.join(folder, sub, "config.json"), "w") as f:
            json.dump({"_class_name": cls.__name__, **cfg}, f)
    CLIPTextConfig(**FLUX_DEV_CLIP).save_pretrained(os.path.join(folder, "text_encoder"))
    T5Config(**FLUX_DEV_T5).save_pretrained(os.path.join(folder, "text_encoder_2"))
    return index


def pipeline_case(label, folder, index, max_memory, dtype, skip=(), pipeline=FluxPipeline):
    init_dict = {k: tuple(v) for k, v in index.items()
                 if not k.startswith("_") and v[0] is not None and k not in skip}
    # Record the sizes diffusers compares (compute_module_sizes(...)[""] of each empty component).
    real = acc.compute_module_sizes

    def recording(module, dtype=None, **kw):
        result = real(module, dtype=dtype, **kw)
        recording.seen.append(result[""])
        return result
    recording.seen = []
    import diffusers.pipelines.pipeline_loading_utils as plu
    plu.compute_module_sizes = recording
    try:
        final = _get_final_device_map("balanced", pipeline, {}, init_dict, None,
                                      copy.deepcopy(max_memory), dtype=dtype, cached_folder=folder)
    finally:
        plu.compute_module_sizes = real
    models = [k for k, (lib, cls) in init_dict.items()
              if cls in ("CLIPTextModel", "T5EncoderModel", "FluxTransformer2DModel", "AutoencoderKL",
                         "Qwen2_5_VLForConditionalGeneration", "QwenImageTransformer2DModel",
                         "AutoencoderKLQwenImage")]
    assert len(models) == len(recording.seen), (models, recording.seen)
    sizes = [[k, s] for k, s in zip(models, recording.seen)]
    print(f"  {label}: {final}")
    return {"name": label, "dtype": dtype_name(dtype), "components": sizes,
            "max_memory": memory_pairs(max_memory),
            "device_map": None if final is None else [[k, v] for k, v in final.items()]}


def pipeline_cases():
    cases = []
    bf16 = torch.bfloat16
    with tempfile.TemporaryDirectory() as folder:
        index = write_flux_dev_pipeline(folder)
        add = lambda label, mm, **kw: cases.append(pipeline_case(label, folder, index, mm, bf16, **kw))
        add("flux_dev/encoders only/2x16GB", {0: "16GB", 1: "16GB"}, skip=("transformer", "vae"))
        add("flux_dev/2x24GB", {0: "24GB", 1: "24GB"})
        add("flux_dev/2x16GB", {0: "16GB", 1: "16GB"})             # transformer -> "cpu"
        add("flux_dev/4x16GB", {0: "16GB", 1: "16GB", 2: "16GB", 3: "16GB"})
        add("flux_dev/2x8GB", {0: "8GB", 1: "8GB"})                 # two misfits: one dropped
        add("flux_dev/3 uneven", {0: "10GB", 1: "26GB", 2: "12GB"})
        add("flux_dev/1x40GB", {0: "40GB"})
        add("flux_dev/with cpu budget", {0: "30GB", 1: "12GB", "cpu": "64GB"})
        add("flux_dev/with disk budget", {0: "30GB", 1: "12GB", "disk": "100GB"})
        add("flux_dev/4x30GB", {0: "30GB", 1: "30GB", 2: "30GB", 3: "30GB"})
        add("flux_dev/integer bytes", {0: 25 * GB, 1: 10_500_000_000})
    with open(os.path.join(TINY, "model_index.json")) as f:
        tiny_index = json.load(f)
    for label, mm in [("tiny/2 ranks", {0: 1_000_000, 1: 1_000_000}),
                      ("tiny/3 ranks", {0: 800_000, 1: 750_000, 2: 800_000}),
                      ("tiny/vae too big", {0: 700_000, 1: 1_000_000})]:
        cases.append(pipeline_case(label, TINY, tiny_index, mm, torch.float32))
    # The tiny Qwen-Image pipeline (Qwen2.5-VL text encoder, vision tower included, as diffusers
    # builds it): each component on a rank of its own at 3 ranks, the encoder beside the
    # transformer at 2, and the VAE missing its turn.
    with open(os.path.join(TINY_QWEN, "model_index.json")) as f:
        qwen_index = json.load(f)
    for label, mm in [("qwen_tiny/2 ranks", {0: 1_100_000, 1: 1_100_000}),
                      ("qwen_tiny/3 ranks", {0: 1_100_000, 1: 400_000, 2: 400_000}),
                      ("qwen_tiny/vae too big", {0: 1_000_000, 1: 1_000_000})]:
        cases.append(pipeline_case(label, TINY_QWEN, qwen_index, mm, torch.float32,
                                   pipeline=QwenImagePipeline))
    return cases


def size_fixture(models):
    out = {}
    for component, model_name, filename in [
            ("transformer", "tiny_transformer", "diffusion_pytorch_model.safetensors"),
            ("vae", "tiny_vae", "diffusion_pytorch_model.safetensors"),
            ("text_encoder", "tiny_text_encoder", "model.safetensors"),
            ("text_encoder_2", "tiny_text_encoder_2", "model.safetensors")]:
        model = models[model_name]
        with safe_open(os.path.join(TINY, component, filename), "pt") as f:
            on_disk = set(f.keys())
        # transformers 5 renames some checkpoints on load (CLIPTextModel's "text_model." is
        # not a module of the model any more): record the prefix to drop from the file's names.
        names = {n for n, _ in acc.named_module_tensors(model, recurse=True)}
        strip = ""
        if not on_disk & names and all(k.startswith("text_model.") for k in on_disk):
            strip = "text_model."
        on_disk = {k[len(strip):] for k in on_disk}
        meta_only = [[n, t.numel(), dtype_name(t.dtype)]
                     for n, t in acc.named_module_tensors(model, recurse=True) if n not in on_disk]
        out[component] = {
            "model": model_name,
            "checkpoint": f"tests/fixtures/flux_pipeline/tiny/{component}/{filename}",
            "strip_prefix": strip,
            "meta_only_tensors": meta_only,
            "sizes": {str(d) if d is None else dtype_name(d):
                      dict(acc.compute_module_sizes(model, dtype=d))
                      for d in [None, torch.bfloat16]},  # the meta models are fp32
        }
    return out


def max_memory_fixture():
    out = []
    for s in ["16GB", "16GiB", "16GIB", "16gib", "16gb", "16Gb", "16G", "1.5GB", "16000MB",
              "512KiB", "100KB", "10MiB", "1e3MB", "0GB", "-1GB", "GB", "16 GB", " 16GB", "1_0GB",
              "+2GB", "0.1GB", "3.3MB", "16", "16TB", "nanGB", "12.5GiB", "7kb", "7KB", "1.5mb"]:
        try:
            out.append([s, acc.convert_file_size_to_int(s), None])
        except (ValueError, OverflowError) as e:
            out.append([s, None, str(e)])
    return out


def dump(name, value):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def main():
    torch.set_num_threads(1)
    models = {
        "flux_dev_transformer": flux_dev_transformer(),
        "tiny_transformer": tiny("transformer"),
        "tiny_vae": tiny("vae"),
        "tiny_text_encoder": tiny("text_encoder"),
        "tiny_text_encoder_2": tiny("text_encoder_2"),
        "tiny_text_encoder_2_tied": tiny_t5_tied(),
        "flux_dev_text_encoder_2_tied": flux_dev_t5_tied(),
        "tiny_qwen_image_text_encoder": tiny_qwen_text_encoder(),
        "tiny_qwen_image_vae": tiny_qwen_vae(),
    }
    for name, model in models.items():
        dump(f"models/{name}.json", structure(model))
    print("model-level maps")
    dump("model_maps.json", {"cases": model_cases(models), "checks": check_cases(models)})
    print("pipeline-level maps")
    dump("pipeline_maps.json", {"cases": pipeline_cases()})
    dump("sizes.json", size_fixture(models))
    dump("max_memory.json", max_memory_fixture())


if __name__ == "__main__":
    main()
