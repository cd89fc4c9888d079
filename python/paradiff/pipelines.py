"""Pipelines in diffusers' shape over paradiff's engine.

``FluxPipeline.from_pretrained(folder, torch_dtype="bfloat16")`` opens a diffusers pipeline
folder (read as it is, no conversion; weights load on first use and stay loaded), and calling
the pipeline generates images as diffusers' pipeline of the same name does, with the same
arguments. Without a parallel configuration every process holds its own pipeline (diffusers'
and accelerate's model); with one (``parallel_config=`` or ``pipe.transformer.enable_parallelism``)
the job's processes make each image together, and every process receives the outputs.
"""

import json
import os

import numpy as np

from ._native import _paradiff
from .configs import ContextParallelConfig, ParallelConfig
from .generator import Generator, seed_of

_DTYPES = {
    "float32": "fp32", "fp32": "fp32", "f32": "fp32",
    "bfloat16": "bf16", "bf16": "bf16",
}


def _dtype_name(torch_dtype):
    if torch_dtype is None:
        return "fp32"
    name = str(torch_dtype)
    name = name[len("torch."):] if name.startswith("torch.") else name
    if name not in _DTYPES:
        raise ValueError(f"torch_dtype must be float32 or bfloat16, got {torch_dtype!r}")
    return _DTYPES[name]


def _as_list(value, what):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"{what} must be a str or a list of str, got {type(value).__name__}")


def _to_pil(images):
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is a dependency of the package
        raise ImportError("output_type='pil' needs Pillow (pip install pillow)") from e
    # diffusers' numpy_to_pil: round(v * 255) in float32, as paradiff's PNG writer does.
    return [Image.fromarray(np.round(np.clip(im, 0.0, 1.0) * np.float32(255)).astype(np.uint8))
            for im in images]


def _optional_str(value, what):
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value or ""


# Model-level maps besides the transformer's, as from_pretrained keywords.
_MODEL_MAPS = ("text_encoder_device_map", "text_encoder_2_device_map", "vae_device_map")


def _map_argument(value):
    """transformer_device_map: a strategy ("auto", "balanced", "balanced_low_0", "sequential"), a
    path to a JSON map, or a dict {module: rank or "disk"} (written to a temporary JSON file)."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, dict):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(value, f)
            return f.name
    raise TypeError(f"transformer_device_map must be a str or a dict, got {type(value).__name__}")


def _max_memory_argument(value):
    """accelerate's max_memory dict ({0: "16GB", 1: "16GB", "disk": "100GB"}) in the engine's
    written form "0=16GB,1=16GB,disk=100GB"; a str is taken as that form."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, dict):
        return ",".join(f"{key}={size}" for key, size in value.items())
    raise TypeError(f"max_memory must be a dict or a str, got {type(value).__name__}")


class ImagePipelineOutput:
    """``images``: a list of PIL images (output_type="pil"), a (B, H, W, 3) float32 array in
    [0, 1] ("np"), or the final packed latents (B, tokens, channels) ("latent")."""

    def __init__(self, images):
        self.images = images

    def __getitem__(self, index):  # output[0] as diffusers' return_dict output allows
        return (self.images,)[index]

    def __repr__(self):
        kind = type(self.images).__name__
        return f"ImagePipelineOutput(images={kind} of {len(self.images)})"


class _Component:
    """A pipeline component as paradiff shows it: its name, its diffusers config, and for the
    transformer diffusers' ``enable_parallelism``."""

    def __init__(self, pipeline, name):
        self._pipeline = pipeline
        self.name = name

    @property
    def config(self):
        path = os.path.join(self._pipeline._folder, self.name, "config.json")
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    @property
    def hf_device_map(self):
        """The transformer's model-level map {module: rank} (accelerate's cleaned form) when
        placed; None otherwise."""
        report = self._pipeline._placement_report
        if self.name != "transformer" or not report or not report.get("transformer"):
            return None
        return dict(report["transformer"])

    def enable_layerwise_casting(self, storage_dtype="float8_e4m3fn", compute_dtype=None, **kwargs):
        """Keeps the transformer's linear weights in ``storage_dtype`` (torch.bfloat16 or
        torch.float8_e4m3fn, or their names) and computes in the pipeline's dtype, with diffusers'
        default skip patterns (diffusers' ``transformer.enable_layerwise_casting``): float32
        compute with bfloat16 or float8_e4m3fn storage, bfloat16 compute with float8_e4m3fn
        storage (bfloat16 storage there changes nothing). ``compute_dtype``, if given, must be the
        pipeline's dtype. The transformer is reloaded. Other arguments of diffusers' (skip
        patterns and classes, non_blocking) are refused."""
        if self.name != "transformer":
            raise ValueError(f"enable_layerwise_casting is implemented for the transformer, not the {self.name}")
        if kwargs:
            raise TypeError(
                f"enable_layerwise_casting: {', '.join(sorted(kwargs))} not supported (paradiff uses "
                "diffusers' default skip patterns)"
            )
        storage = str(storage_dtype)
        storage = storage[len("torch."):] if storage.startswith("torch.") else storage
        names = {"bfloat16": "bf16", "bf16": "bf16", "float8_e4m3fn": "fp8", "fp8": "fp8"}
        if storage not in names:
            raise ValueError(f"storage_dtype must be bfloat16 or float8_e4m3fn, got {storage_dtype!r}")
        pipeline_dtype = self._pipeline._dtype
        if compute_dtype is not None and _dtype_name(compute_dtype) != pipeline_dtype:
            raise ValueError(
                f"compute_dtype must be the pipeline's dtype ({'float32' if pipeline_dtype == 'fp32' else 'bfloat16'}: "
                f"torch_dtype of from_pretrained), got {compute_dtype!r}"
            )
        self._pipeline._placement = dict(self._pipeline._placement, transformer_storage=names[storage])
        self._pipeline._open()

    def enable_parallelism(self, config=None, cp_plan=None):
        """Splits each image across the job's processes (diffusers'
        ``transformer.enable_parallelism(config=ContextParallelConfig(...))``); takes a
        ContextParallelConfig or a ParallelConfig. Call it on every process."""
        if self.name != "transformer":
            raise ValueError(f"enable_parallelism is the transformer's, not the {self.name}'s")
        if cp_plan is not None:
            raise ValueError("paradiff's pipelines carry their own context-parallel plans; cp_plan is not accepted")
        if isinstance(config, ContextParallelConfig):
            config = ParallelConfig(context_parallel_config=config)
        if not isinstance(config, ParallelConfig):
            raise TypeError(
                f"enable_parallelism takes a ContextParallelConfig or ParallelConfig, got {type(config).__name__}"
            )
        self._pipeline._set_parallel_config(config)

    def __repr__(self):
        return f"<{self.config.get('_class_name', self.name)} of {self._pipeline._folder}>"


class DiffusionPipeline:
    """The base of paradiff's pipelines; ``DiffusionPipeline.from_pretrained`` opens any folder
    whose ``model_index.json`` names a supported pipeline."""

    _class_name = None
    _components = ()
    _defaults = {}

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, torch_dtype=None, parallel_config=None,
                        keep_loaded=True, **kwargs):
        """Opens a diffusers pipeline folder. ``torch_dtype``: "float32" (default) or
        "bfloat16" (or torch's dtypes). ``parallel_config``: a ParallelConfig for the job's
        processes (collective: call on every process). ``keep_loaded=False`` frees each stage's
        weights after use, as the CLI does. A component passed as ``None`` (``vae=None``) is not
        used: a call that needs it is refused. ``variant="fp16"`` reads ``*.fp16.safetensors``
        where a component has them. ``device_map="balanced"`` (components dealt to the job's
        processes, each loaded only by its owner), ``transformer_device_map`` (the transformer's
        blocks over the processes: "auto", "balanced", "balanced_low_0", "sequential", a JSON
        file or a dict), ``text_encoder_device_map``, ``text_encoder_2_device_map`` and
        ``vae_device_map`` (those models' layers, the same forms) and ``max_memory``
        ({rank: "16GB"}) place the pipeline as diffusers and accelerate do; the placed pipeline
        spans the job's processes."""
        folder = os.fspath(pretrained_model_name_or_path)
        if not os.path.isdir(folder):
            raise ValueError(
                f"{folder!r} is not a folder: paradiff opens a local diffusers pipeline folder "
                "(download it first, e.g. huggingface-cli download <repo> --local-dir <folder>)"
            )
        index_path = os.path.join(folder, "model_index.json")
        if not os.path.isfile(index_path):
            raise ValueError(f"{folder!r} has no model_index.json: it is not a diffusers pipeline folder")
        with open(index_path, encoding="utf-8") as f:
            class_name = json.load(f).get("_class_name")
        target = cls
        if cls._class_name is None:
            target = _REGISTRY.get(class_name)
            if target is None:
                raise ValueError(
                    f"{index_path}: _class_name {class_name!r} is not supported "
                    f"(paradiff has {', '.join(sorted(_REGISTRY))})"
                )
        elif class_name != cls._class_name:
            raise ValueError(
                f"{index_path}: _class_name is {class_name!r}; open it with "
                f"paradiff.{class_name} or paradiff.DiffusionPipeline, not {cls.__name__}"
            )
        disabled = set()
        for key in list(kwargs):
            if key in target._components:
                if kwargs.pop(key) is not None:
                    raise ValueError(
                        f"{key}=: paradiff loads components from the folder; only None (not used) is accepted"
                    )
                disabled.add(key)
        if kwargs.pop("use_safetensors", True) is False:
            raise ValueError("use_safetensors=False: paradiff reads safetensors files only")
        for ignored in ("low_cpu_mem_usage",):
            kwargs.pop(ignored, None)
        placement = {
            "variant": _optional_str(kwargs.pop("variant", None), "variant"),
            "device_map": _optional_str(kwargs.pop("device_map", None), "device_map"),
            "transformer_device_map": _map_argument(kwargs.pop("transformer_device_map", None)),
            "max_memory": _max_memory_argument(kwargs.pop("max_memory", None)),
        }
        for key in _MODEL_MAPS:
            placement[key] = _map_argument(kwargs.pop(key, None))
        placement["transformer_storage"] = "fp32"
        if kwargs:
            raise TypeError(f"from_pretrained() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if parallel_config is not None and not isinstance(parallel_config, ParallelConfig):
            raise TypeError(
                f"parallel_config must be a paradiff.ParallelConfig, got {type(parallel_config).__name__}"
            )
        return target(folder, _dtype_name(torch_dtype), parallel_config, keep_loaded, disabled, placement)

    def __init__(self, folder, dtype, parallel_config, keep_loaded, disabled, placement):
        self._folder = folder
        self._placement = placement
        self._dtype = dtype
        self._keep_loaded = keep_loaded
        self._disabled = frozenset(disabled)
        self._parallel_config = parallel_config
        self._progress = True
        self._engine = None
        #: The last call's figures: seconds per stage (largest over ranks), peak bytes (largest
        #: rank), data-parallel replicas, images this process's replica ran, bytes this process
        #: sent. Set by calls that run whole (not by the staged path).
        self.last_stats = None
        self._open()
        for name in self._components:
            setattr(self, name, None if name in self._disabled else _Component(self, name))

    def _open(self):
        placed = bool(self._placement["device_map"] or self._placement["transformer_device_map"]
                      or any(self._placement[key] for key in _MODEL_MAPS))
        config = self._parallel_config
        if config is None and placed:
            config = ParallelConfig()  # a placement spans the job's processes
        native = None if config is None else config._native()
        self._engine = _paradiff.Engine(self._folder, self._dtype, native, self._keep_loaded,
                                        **self._placement)
        report = self._engine.placement_report
        self._placement_report = json.loads(report) if report else None

    def _set_parallel_config(self, config):
        self._parallel_config = config
        self._open()

    # -- diffusers' pipeline surface -------------------------------------------------------------
    @property
    def name_or_path(self):
        return self._folder

    @property
    def dtype(self):
        return {"fp32": "float32", "bf16": "bfloat16"}[self._dtype]

    @property
    def device(self):
        return "cpu"

    @property
    def vae_scale_factor(self):
        return self._engine.vae_scale_factor

    @property
    def parallel_config(self):
        return self._parallel_config

    @property
    def hf_device_map(self):
        """diffusers' pipeline-level map, {component: rank}, under device_map="balanced"; None
        without one (as diffusers has no attribute then)."""
        report = self._placement_report
        return dict(report["pipeline"]) if report and report.get("pipeline") else None

    @property
    def placement(self):
        """The whole placement as `paradiff inspect --json` prints it (maps, bytes per rank and per
        host, the reserved largest layer, bytes crossing ranks per step); None without one."""
        return self._placement_report

    def reset_device_map(self):
        """Back to every process loading what it needs (diffusers' reset_device_map)."""
        self._placement = dict(self._placement, device_map="", transformer_device_map="", max_memory="",
                               **{key: "" for key in _MODEL_MAPS})
        self._open()

    def to(self, device=None, dtype=None):
        """Only the CPU: paradiff's processes are CPU processes. A dtype re-opens the pipeline."""
        if device is not None and str(device) != "cpu":
            raise ValueError(f"paradiff runs on the CPU; .to({device!r}) is not supported")
        if dtype is not None and _dtype_name(dtype) != self._dtype:
            self._dtype = _dtype_name(dtype)
            self._open()
        return self

    def set_progress_bar_config(self, disable=False, **_):
        """``disable=True`` silences the per-step progress line (rank 0 of the pipeline's processes)."""
        self._progress = not disable

    def __repr__(self):
        parallel = "" if self._parallel_config is None else f", {self._engine.describe_parallel()}"
        return f"{type(self).__name__}({self._folder!r}, {self.dtype}{parallel})"

    # -- calls -----------------------------------------------------------------------------------
    def _require(self, *components):
        missing = [c for c in components if c in self._disabled]
        if missing:
            raise ValueError(
                f"this call needs {', '.join(missing)}, which from_pretrained was told not to use (=None)"
            )

    def _request(self, prompts, negative, height, width, num_inference_steps, guidance_scale,
                 true_cfg_scale, generator, num_images_per_prompt, max_sequence_length, output_type):
        r = _paradiff.GenerationRequest()
        r.prompt = prompts
        r.negative_prompt = negative or []
        r.height = 0 if height is None else int(height)
        r.width = 0 if width is None else int(width)
        r.num_inference_steps = int(num_inference_steps)
        r.guidance_scale = float(guidance_scale)
        r.true_cfg_scale = float(true_cfg_scale)
        r.num_images_per_prompt = int(num_images_per_prompt)
        r.max_sequence_length = int(max_sequence_length)
        if output_type not in ("pil", "np", "latent"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'latent', got {output_type!r}")
        r.output_type = getattr(_paradiff.OutputType, output_type)
        # One call with every prompt: one draw of prompts x images rows, as diffusers draws.
        r.latent_draw = _paradiff.LatentDraw.one_batch
        if isinstance(generator, (list, tuple)) and len(generator) == 1:
            generator = generator[0]
        if isinstance(generator, (list, tuple)):
            # diffusers: one generator per image, each drawing its image's noise alone.
            if len(generator) != len(prompts) * r.num_images_per_prompt:
                raise ValueError(
                    f"You have passed a list of generators of length {len(generator)}, but requested an "
                    f"effective batch size of {len(prompts) * r.num_images_per_prompt}. Make sure the "
                    "batch size matches the length of the generators."
                )
            if r.num_images_per_prompt != 1:
                raise ValueError("a list of generators with num_images_per_prompt > 1 is not supported; "
                                 "repeat the prompts instead")
            r.seeds = [seed_of(g) for g in generator]
            r.latent_draw = _paradiff.LatentDraw.per_prompt
            return r
        seed = seed_of(generator)
        r.seed = self._engine.shared_random_seed() if seed is None else seed
        return r

    def _step_callback(self, callback_on_step_end):
        if callback_on_step_end is None:
            return None

        def on_step(step, steps, prompts):
            # diffusers passes (pipe, step index, timestep, callback kwargs); paradiff has no
            # tensors to hand over, so kwargs is empty and the timestep None. Setting
            # pipe.interrupt = True stops the call (GenerationCancelled), on every process alike.
            callback_on_step_end(self, step - 1, None, {})
            return not getattr(self, "interrupt", False)

        return on_step

    def _finish(self, items, output_type, return_dict):
        if output_type == "latent":
            images = np.stack([item["latents"] for item in items])
        elif output_type == "np":
            images = np.stack([item["image"] for item in items])
        else:
            images = _to_pil([item["image"] for item in items])
        return ImagePipelineOutput(images) if return_dict else (images,)

    def _generate(self, prompt, negative_prompt, conditioning, latents, height, width,
                  num_inference_steps, guidance_scale, true_cfg_scale, num_images_per_prompt,
                  generator, output_type, return_dict, callback_on_step_end, max_sequence_length):
        self.interrupt = False
        prompts = _as_list(prompt, "prompt")
        negative = _as_list(negative_prompt, "negative_prompt")
        callback = self._step_callback(callback_on_step_end)
        if conditioning is None and latents is None:
            if prompts is None:
                raise ValueError("give prompt (or prompt_embeds)")
            self._require(*self._text_components, "transformer", *(() if output_type == "latent" else ("vae",)))
            r = self._request(prompts, negative, height, width, num_inference_steps, guidance_scale,
                              true_cfg_scale, generator, num_images_per_prompt, max_sequence_length,
                              output_type)
            result = self._engine.run(r, self._progress, callback)
            self.last_stats = result["stats"]
            return self._finish(result["images"], output_type, return_dict)
        # The staged path (precomputed embeddings or starting latents): one image batch made by
        # all the pipeline's processes together.
        if conditioning is None:
            if prompts is None:
                raise ValueError("give prompt or prompt_embeds")
            conditioning = self._encode(prompts, negative, true_cfg_scale, max_sequence_length)
        elif prompts is not None:
            raise ValueError("give prompt or prompt_embeds, not both")
        self._require("transformer", *(() if output_type == "latent" else ("vae",)))
        if num_images_per_prompt != 1:
            conditioning = {k: np.repeat(v, num_images_per_prompt, axis=0) for k, v in conditioning.items()}
        r = self._request([""], None, height, width, num_inference_steps, guidance_scale,
                          true_cfg_scale, generator, 1, max_sequence_length, output_type)
        final = self._engine.denoise(conditioning, latents, r, self._progress, callback)
        if output_type == "latent":
            images = final
        else:
            decoded = self._engine.decode(final, r)
            images = decoded if output_type == "np" else _to_pil(decoded)
        return ImagePipelineOutput(images) if return_dict else (images,)

    def _encode(self, prompts, negative, true_cfg_scale, max_sequence_length):
        self._require(*self._text_components)
        r = _paradiff.GenerationRequest()
        r.prompt = prompts
        r.negative_prompt = negative or []
        r.true_cfg_scale = float(true_cfg_scale)
        r.max_sequence_length = int(max_sequence_length)
        return dict(self._engine.encode_prompt(r))

    def decode(self, latents, height=None, width=None, output_type="pil"):
        """paradiff's stage 3 (diffusers does it with the VAE by hand): packed latents
        (B, tokens, channels), as output_type="latent" returns them, to images."""
        self._require("vae")
        if output_type not in ("pil", "np"):
            raise ValueError(f"decode's output_type must be 'pil' or 'np', got {output_type!r}")
        r = self._request([""], None, height, width, 1, 0.0, 1.0, Generator().manual_seed(0), 1, 512,
                          output_type)
        images = self._engine.decode(np.asarray(latents, dtype=np.float32), r)
        return images if output_type == "np" else _to_pil(images)


class FluxPipeline(DiffusionPipeline):
    """diffusers' FluxPipeline: CLIP + T5 text encoders, FluxTransformer2DModel, AutoencoderKL."""

    _class_name = "FluxPipeline"
    _components = ("scheduler", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
                   "transformer", "vae")
    _text_components = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")

    def __call__(self, prompt=None, prompt_2=None, negative_prompt=None, negative_prompt_2=None,
                 true_cfg_scale=1.0, height=None, width=None, num_inference_steps=28,
                 guidance_scale=3.5, num_images_per_prompt=1, generator=None, latents=None,
                 prompt_embeds=None, pooled_prompt_embeds=None, negative_prompt_embeds=None,
                 negative_pooled_prompt_embeds=None, output_type="pil", return_dict=True,
                 callback_on_step_end=None, max_sequence_length=512):
        if prompt_2 is not None or negative_prompt_2 is not None:
            if prompt_2 != prompt or negative_prompt_2 != negative_prompt:
                raise ValueError("prompt_2 / negative_prompt_2 different from prompt are not supported: "
                                 "paradiff gives both text encoders the same prompt")
        conditioning = None
        if prompt_embeds is not None or pooled_prompt_embeds is not None:
            if prompt_embeds is None or pooled_prompt_embeds is None:
                raise ValueError("give both prompt_embeds and pooled_prompt_embeds")
            conditioning = {"prompt_embeds": prompt_embeds, "pooled_prompt_embeds": pooled_prompt_embeds}
            if negative_prompt_embeds is not None:
                if negative_pooled_prompt_embeds is None:
                    raise ValueError("give negative_pooled_prompt_embeds with negative_prompt_embeds")
                conditioning["negative_prompt_embeds"] = negative_prompt_embeds
                conditioning["negative_pooled_prompt_embeds"] = negative_pooled_prompt_embeds
        return self._generate(prompt, negative_prompt, conditioning, latents, height, width,
                              num_inference_steps, guidance_scale, true_cfg_scale,
                              num_images_per_prompt, generator, output_type, return_dict,
                              callback_on_step_end, max_sequence_length)

    def encode_prompt(self, prompt, prompt_2=None, num_images_per_prompt=1, max_sequence_length=512,
                      **_unused):
        """(prompt_embeds, pooled_prompt_embeds, text_ids) as diffusers' FluxPipeline.encode_prompt
        returns them, as float32 numpy arrays, on every process."""
        if prompt_2 is not None and prompt_2 != prompt:
            raise ValueError("prompt_2 different from prompt is not supported")
        c = self._encode(_as_list(prompt, "prompt"), None, 1.0, max_sequence_length)
        embeds = np.repeat(c["prompt_embeds"], num_images_per_prompt, axis=0)
        pooled = np.repeat(c["pooled_prompt_embeds"], num_images_per_prompt, axis=0)
        text_ids = np.zeros((embeds.shape[1], 3), dtype=np.float32)
        return embeds, pooled, text_ids


class QwenImagePipeline(DiffusionPipeline):
    """diffusers' QwenImagePipeline: Qwen2.5-VL text encoder, QwenImageTransformer2DModel,
    AutoencoderKLQwenImage, true classifier-free guidance (true_cfg_scale 4.0 by default)."""

    _class_name = "QwenImagePipeline"
    _components = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")
    _text_components = ("text_encoder", "tokenizer")

    def __call__(self, prompt=None, negative_prompt=None, true_cfg_scale=4.0, height=None, width=None,
                 num_inference_steps=50, guidance_scale=None, num_images_per_prompt=1, generator=None,
                 latents=None, prompt_embeds=None, prompt_embeds_mask=None, negative_prompt_embeds=None,
                 negative_prompt_embeds_mask=None, output_type="pil", return_dict=True,
                 callback_on_step_end=None, max_sequence_length=512):
        conditioning = None
        if prompt_embeds is not None:
            conditioning = {"prompt_embeds": prompt_embeds}
            if prompt_embeds_mask is not None:
                conditioning["prompt_embeds_mask"] = prompt_embeds_mask
            if negative_prompt_embeds is not None:
                conditioning["negative_prompt_embeds"] = negative_prompt_embeds
                if negative_prompt_embeds_mask is not None:
                    conditioning["negative_prompt_embeds_mask"] = negative_prompt_embeds_mask
        return self._generate(prompt, negative_prompt, conditioning, latents, height, width,
                              num_inference_steps, 1.0 if guidance_scale is None else guidance_scale,
                              true_cfg_scale, num_images_per_prompt, generator, output_type,
                              return_dict, callback_on_step_end, max_sequence_length)

    def encode_prompt(self, prompt, num_images_per_prompt=1, max_sequence_length=512, **_unused):
        """(prompt_embeds, prompt_embeds_mask) as diffusers' QwenImagePipeline.encode_prompt
        returns them (embeds float32, mask int64), on every process."""
        c = self._encode(_as_list(prompt, "prompt"), None, 1.0, max_sequence_length)
        embeds = np.repeat(c["prompt_embeds"], num_images_per_prompt, axis=0)
        mask = np.repeat(c["prompt_embeds_mask"], num_images_per_prompt, axis=0).astype(np.int64)
        return embeds, mask


_REGISTRY = {p._class_name: p for p in (FluxPipeline, QwenImagePipeline)}

__all__ = ["DiffusionPipeline", "FluxPipeline", "QwenImagePipeline", "ImagePipelineOutput"]
