"""Bad input gets a Python exception naming the problem and the value; nothing crashes."""

import os

import pytest

import paradiff


def test_not_a_folder():
    with pytest.raises(ValueError, match="is not a folder"):
        paradiff.FluxPipeline.from_pretrained("/no/such/folder")


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ValueError, match="no model_index.json"):
        paradiff.DiffusionPipeline.from_pretrained(tmp_path)


def test_wrong_pipeline_class(qwen_folder):
    with pytest.raises(ValueError, match="_class_name is 'QwenImagePipeline'"):
        paradiff.FluxPipeline.from_pretrained(qwen_folder)


def test_unsupported_class(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(ValueError, match="'StableDiffusionPipeline' is not supported"):
        paradiff.DiffusionPipeline.from_pretrained(tmp_path)


def test_bad_dtype_and_kwargs(flux_folder):
    with pytest.raises(ValueError, match="float32 or bfloat16, got 'float16'"):
        paradiff.FluxPipeline.from_pretrained(flux_folder, torch_dtype="float16")
    with pytest.raises(TypeError, match="unexpected keyword argument.*revision"):
        paradiff.FluxPipeline.from_pretrained(flux_folder, revision="main")
    with pytest.raises(ValueError, match="paradiff runs on the CPU"):
        paradiff.FluxPipeline.from_pretrained(flux_folder).to("cuda")


@pytest.fixture(scope="module")
def pipe(flux_folder):
    p = paradiff.FluxPipeline.from_pretrained(flux_folder)
    p.set_progress_bar_config(disable=True)
    return p


def test_engine_messages_arrive_as_exceptions(pipe):
    with pytest.raises(paradiff.ParadiffError, match="num_inference_steps"):
        pipe("x", num_inference_steps=0)
    with pytest.raises(paradiff.ParadiffError, match="num_images_per_prompt must be between 1 and 64, got 0"):
        pipe("x", num_images_per_prompt=0)
    with pytest.raises(ValueError, match="output_type must be 'pil', 'np' or 'latent', got 'pt'"):
        pipe("x", output_type="pt")
    with pytest.raises(TypeError, match="prompt must be a str or a list of str"):
        pipe(42)
    with pytest.raises(paradiff.ParadiffError, match="prompt_embeds"):
        pipe(prompt_embeds=[[1.0]], pooled_prompt_embeds=[[1.0]], num_inference_steps=1,
             height=32, width=32, output_type="latent")


def test_components_turned_off(flux_folder):
    p = paradiff.FluxPipeline.from_pretrained(flux_folder, vae=None)
    assert p.vae is None
    with pytest.raises(ValueError, match="needs vae"):
        p("x", num_inference_steps=1, height=32, width=32)
    with pytest.raises(ValueError, match="only None"):
        paradiff.FluxPipeline.from_pretrained(flux_folder, vae="mine")


def test_parallel_configs_are_checked(pipe):
    with pytest.raises(paradiff.ParadiffError, match="ring_degree or ulysses_degree"):
        paradiff.ContextParallelConfig()
    with pytest.raises(ValueError, match="ulysses_degree must be an integer >= 1, got 0"):
        paradiff.ContextParallelConfig(ulysses_degree=0)
    with pytest.raises(paradiff.ParadiffError, match="rotate_method"):
        paradiff.ContextParallelConfig(ring_degree=2, rotate_method="sideways")
    # One process cannot hold a context-parallel group of two.
    with pytest.raises(paradiff.ParadiffError, match="2"):
        pipe.transformer.enable_parallelism(config=paradiff.ContextParallelConfig(ulysses_degree=2))
    with pytest.raises(TypeError, match="ContextParallelConfig or ParallelConfig"):
        pipe.transformer.enable_parallelism(config={"ulysses_degree": 2})
    with pytest.raises(ValueError, match="transformer's"):
        pipe.vae.enable_parallelism(config=paradiff.ContextParallelConfig(ulysses_degree=2))


def test_generator():
    assert paradiff.Generator().manual_seed(7).initial_seed() == 7
    assert paradiff.Generator().manual_seed(-1).initial_seed() == 2**64 - 1
    with pytest.raises(TypeError):
        paradiff.Generator().manual_seed("7")
    with pytest.raises(ValueError, match="CPU"):
        paradiff.Generator(device="cuda")
