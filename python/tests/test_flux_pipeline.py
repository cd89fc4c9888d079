"""paradiff.FluxPipeline against diffusers' own outputs and against the CLI, bit for bit."""

import numpy as np
import pytest
from PIL import Image

import paradiff
from conftest import run_cli


@pytest.fixture(scope="module")
def pipe(flux_folder):
    p = paradiff.FluxPipeline.from_pretrained(flux_folder)
    p.set_progress_bar_config(disable=True)
    return p


def call(pipe, case, **kwargs):
    return pipe(
        case["prompt"], height=case["height"], width=case["width"],
        num_inference_steps=case["num_inference_steps"], guidance_scale=case["guidance_scale"],
        max_sequence_length=case["max_sequence_length"],
        generator=paradiff.Generator().manual_seed(case["seed"]), **kwargs,
    )


def test_latents_match_diffusers(pipe, flux_cases):
    # The fixture's diffusers FluxPipeline outputs (tools/make_fixtures/make_flux_pipeline.py):
    # the same tolerance as the C++ pipeline test.
    cases, expected = flux_cases
    for k, case in enumerate(cases):
        latents = call(pipe, case, output_type="latent").images
        want = expected[f"case{k}.final_latents"]
        assert latents.shape == want.shape
        assert np.abs(latents - want).max() <= 1e-3, f"case {k}"
        if f"case{k}.image" in expected:
            image = call(pipe, case, output_type="np").images  # (1, H, W, 3)
            want_image = expected[f"case{k}.image"].transpose(0, 2, 3, 1)
            assert np.abs(image - want_image).max() <= 1e-3


def test_pil_image_equals_cli_png_and_latents(pipe, flux_folder, flux_cases, tmp_path):
    case = flux_cases[0][0]
    png, lat = tmp_path / "cli.png", tmp_path / "cli.safetensors"
    run_cli("generate", "--model", flux_folder, "--prompt", case["prompt"], "--height", case["height"],
            "--width", case["width"], "--num-inference-steps", case["num_inference_steps"],
            "--guidance-scale", case["guidance_scale"], "--seed", case["seed"],
            "--max-sequence-length", case["max_sequence_length"], "--output", png,
            "--save-latents", lat, "--quiet")
    image = call(pipe, case).images[0]
    assert isinstance(image, Image.Image) and image.size == (case["width"], case["height"])
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(png).convert("RGB")))
    from conftest import read_safetensors

    assert np.array_equal(call(pipe, case, output_type="latent").images, read_safetensors(lat)["latents"])


def test_prompt_list_is_one_draw_as_diffusers(pipe):
    # diffusers draws one batch of noise for a call: the prompts [p, p] start from rows 0 and 1,
    # exactly as num_images_per_prompt=2 of p does (and so give two different images).
    kw = dict(height=32, width=32, num_inference_steps=2, max_sequence_length=16, output_type="latent")
    two = pipe(["a red circle", "a red circle"], generator=paradiff.Generator().manual_seed(3), **kw).images
    per = pipe("a red circle", num_images_per_prompt=2, generator=paradiff.Generator().manual_seed(3), **kw).images
    assert two.shape[0] == 2 and per.shape == two.shape
    assert np.array_equal(two, per)
    assert not np.array_equal(two[0], two[1])


def test_list_of_generators_gives_each_image_its_own_noise(pipe):
    # diffusers: generator=[g0, g1] draws image i's noise from g_i alone, so image i equals a call
    # with that prompt and g_i.
    kw = dict(height=32, width=32, num_inference_steps=2, max_sequence_length=16, output_type="latent")
    seeds = [paradiff.Generator().manual_seed(s) for s in (8, 9)]
    both = pipe(["a red circle", "a blue square"], generator=seeds, **kw).images
    for k, (prompt, s) in enumerate((("a red circle", 8), ("a blue square", 9))):
        alone = pipe(prompt, generator=paradiff.Generator().manual_seed(s), **kw).images
        assert np.array_equal(both[k], alone[0])
    with pytest.raises(ValueError, match="list of generators of length 2, but requested an effective batch size of 3"):
        pipe(["a", "b", "c"], generator=seeds, **kw)


def test_staged_workflow_equals_one_call(pipe):
    kw = dict(height=32, width=48, num_inference_steps=2, max_sequence_length=16)
    seed = lambda: paradiff.Generator().manual_seed(11)  # noqa: E731
    embeds, pooled, text_ids = pipe.encode_prompt("a blue square", max_sequence_length=16)
    assert embeds.shape[0] == 1 and pooled.shape[0] == 1 and text_ids.shape == (embeds.shape[1], 3)
    latents = pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, generator=seed(),
                   output_type="latent", **kw).images
    whole = pipe("a blue square", generator=seed(), output_type="latent", **kw).images
    assert np.array_equal(latents, whole)
    staged = pipe.decode(latents, height=32, width=48, output_type="np")
    assert np.array_equal(staged, pipe("a blue square", generator=seed(), output_type="np", **kw).images)


def test_no_generator_draws_fresh_noise(pipe):
    kw = dict(height=32, width=32, num_inference_steps=1, max_sequence_length=16, output_type="latent")
    assert not np.array_equal(pipe("x", **kw).images, pipe("x", **kw).images)


def test_torch_generator_is_accepted_if_installed(pipe):
    torch = pytest.importorskip("torch")
    kw = dict(height=32, width=32, num_inference_steps=1, max_sequence_length=16, output_type="latent")
    ours = pipe("x", generator=paradiff.Generator().manual_seed(5), **kw).images
    theirs = pipe("x", generator=torch.Generator().manual_seed(5), **kw).images
    assert np.array_equal(ours, theirs)


def test_callback_sees_every_step_and_can_stop(pipe):
    seen = []

    def callback(p, i, t, kwargs):
        seen.append(i)
        return {}

    pipe("x", height=32, width=32, num_inference_steps=3, max_sequence_length=16,
         output_type="latent", callback_on_step_end=callback)
    assert seen == [0, 1, 2]

    def stop_after_first(p, i, t, kwargs):
        p.interrupt = True
        return {}

    with pytest.raises(paradiff.GenerationCancelled, match="after step 1"):
        pipe("x", height=32, width=32, num_inference_steps=3, max_sequence_length=16,
             callback_on_step_end=stop_after_first)

    def broken(p, i, t, kwargs):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        pipe("x", height=32, width=32, num_inference_steps=3, max_sequence_length=16,
             callback_on_step_end=broken)


def test_stats_report_the_run(pipe):
    pipe("x", height=32, width=32, num_inference_steps=2, max_sequence_length=16, output_type="latent")
    s = pipe.last_stats
    assert s["steps"] == 2 and s["replicas"] == 1 and s["images_here"] == 1
    assert s["peak_bytes"] > 0 and s["bytes_sent"] == 0  # one process: nothing sent


def test_variant_reads_the_variant_files(pipe, flux_folder):
    # tests/fixtures/flux_pipeline/tiny_fp16: the tiny pipeline saved by diffusers with
    # variant="fp16" (fp16 weights in *.fp16.safetensors).
    fp16 = paradiff.FluxPipeline.from_pretrained(flux_folder + "_fp16", variant="fp16")
    fp16.set_progress_bar_config(disable=True)
    kw = dict(height=32, width=32, num_inference_steps=2, max_sequence_length=16, output_type="latent")
    a = pipe("x", generator=paradiff.Generator().manual_seed(1), **kw).images
    b = fp16("x", generator=paradiff.Generator().manual_seed(1), **kw).images
    assert 0 < np.abs(a - b).max() < 1e-2
    with pytest.raises(paradiff.ParadiffError, match="variant"):
        paradiff.FluxPipeline.from_pretrained(flux_folder, variant="fp8")


def test_placement_arguments_are_checked(flux_folder):
    with pytest.raises(paradiff.ParadiffError, match="auto"):
        paradiff.FluxPipeline.from_pretrained(flux_folder, device_map="auto")
    with pytest.raises(paradiff.ParadiffError, match="16gb"):
        paradiff.FluxPipeline.from_pretrained(flux_folder, device_map="balanced", max_memory={0: "16gb"})
    alone = paradiff.FluxPipeline.from_pretrained(flux_folder, device_map="balanced")
    assert set(alone.hf_device_map.values()) == {0} and alone.placement["world_size"] == 1
    alone.reset_device_map()
    assert alone.hf_device_map is None and alone.transformer.hf_device_map is None


def test_components_and_config(pipe, flux_folder):
    assert pipe.transformer.config["_class_name"] == "FluxTransformer2DModel"
    assert pipe.vae_scale_factor == 2 ** (len(pipe.vae.config["block_out_channels"]) - 1)
    assert pipe.to("cpu") is pipe and pipe.device == "cpu" and pipe.dtype == "float32"
    generic = paradiff.DiffusionPipeline.from_pretrained(flux_folder)
    assert type(generic) is paradiff.FluxPipeline


def test_bfloat16_runs_close_to_float32(flux_folder, pipe):
    bf16 = paradiff.FluxPipeline.from_pretrained(flux_folder, torch_dtype="bfloat16")
    bf16.set_progress_bar_config(disable=True)
    kw = dict(height=32, width=32, num_inference_steps=2, max_sequence_length=16, output_type="latent")
    a = pipe("x", generator=paradiff.Generator().manual_seed(1), **kw).images
    b = bf16("x", generator=paradiff.Generator().manual_seed(1), **kw).images
    assert bf16.dtype == "bfloat16"
    assert 0 < np.abs(a - b).max() < 0.1


def test_layerwise_casting_equals_the_cli_storage_dtype(flux_folder, tmp_path):
    # transformer.enable_layerwise_casting(storage_dtype=...) is `generate --storage-dtype`: the
    # same latents bit for bit; narrower than fp32's, not the same.
    kw = dict(height=32, width=32, num_inference_steps=2, max_sequence_length=16, output_type="latent")
    from conftest import read_safetensors

    full = paradiff.FluxPipeline.from_pretrained(flux_folder)
    full.set_progress_bar_config(disable=True)
    want_fp32 = full("x", generator=paradiff.Generator().manual_seed(1), **kw).images
    for storage, flag in (("bfloat16", "bf16"), ("float8_e4m3fn", "fp8")):
        narrow = paradiff.FluxPipeline.from_pretrained(flux_folder)
        narrow.set_progress_bar_config(disable=True)
        narrow.transformer.enable_layerwise_casting(storage_dtype=storage, compute_dtype="float32")
        got = narrow("x", generator=paradiff.Generator().manual_seed(1), **kw).images
        lat = tmp_path / f"{flag}.safetensors"
        run_cli("generate", "--model", flux_folder, "--prompt", "x", "--height", 32, "--width", 32,
                "--num-inference-steps", 2, "--max-sequence-length", 16, "--seed", 1,
                "--storage-dtype", flag, "--output", tmp_path / f"{flag}.png", "--save-latents", lat,
                "--quiet")
        assert np.array_equal(got, read_safetensors(lat)["latents"]), flag
        assert 0 < np.abs(got - want_fp32).max(), flag
    with pytest.raises(ValueError, match="storage_dtype"):
        full.transformer.enable_layerwise_casting(storage_dtype="float16")
    with pytest.raises(ValueError, match="transformer"):
        full.vae.enable_layerwise_casting()
    with pytest.raises(ValueError, match="compute_dtype must be the pipeline's dtype"):
        full.transformer.enable_layerwise_casting(storage_dtype="float8_e4m3fn", compute_dtype="bfloat16")
    # bf16 compute with fp8 storage (storage float8_e4m3fn, compute bfloat16): --dtype bf16
    # --storage-dtype fp8, bit for bit; not the plain bf16 latents.
    bf16 = paradiff.FluxPipeline.from_pretrained(flux_folder, torch_dtype="bfloat16")
    bf16.set_progress_bar_config(disable=True)
    want_bf16 = bf16("x", generator=paradiff.Generator().manual_seed(1), **kw).images
    bf16.transformer.enable_layerwise_casting(storage_dtype="float8_e4m3fn", compute_dtype="bfloat16")
    got = bf16("x", generator=paradiff.Generator().manual_seed(1), **kw).images
    lat = tmp_path / "fp8_bf16.safetensors"
    run_cli("generate", "--model", flux_folder, "--prompt", "x", "--height", 32, "--width", 32,
            "--num-inference-steps", 2, "--max-sequence-length", 16, "--seed", 1, "--dtype", "bf16",
            "--storage-dtype", "fp8", "--output", tmp_path / "fp8_bf16.png", "--save-latents", lat, "--quiet")
    assert np.array_equal(got, read_safetensors(lat)["latents"])
    assert 0 < np.abs(got - want_bf16).max()
