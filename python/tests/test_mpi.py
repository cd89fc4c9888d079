"""The package under `mpirun -n 2 python ...`: the same ranks and results as the CLI, the work
really split, errors as exceptions, and a failed rank ending the job."""

import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import paradiff
from conftest import MPI_ENV, read_safetensors, run_cli

HERE = pathlib.Path(__file__).resolve().parent
KW = dict(height=32, width=48, num_inference_steps=2, max_sequence_length=16)
PROMPTS = ["a red circle", "a blue square", "a green triangle"]


def mpirun(scenario, model, out, check=True, timeout=240):
    command = ["mpirun", "-n", "2", sys.executable, str(HERE / "mpi_job.py"), scenario, model, str(out)]
    env = dict(os.environ, **MPI_ENV)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def ranks(out):
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


@pytest.fixture(scope="module")
def single(flux_folder):
    pipe = paradiff.FluxPipeline.from_pretrained(flux_folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_ulysses_equals_cli_bit_for_bit_and_splits_work(flux_folder, single, tmp_path):
    mpirun("ulysses", flux_folder, tmp_path)
    r0, r1 = ranks(tmp_path)
    png, lat = tmp_path / "cli.png", tmp_path / "cli.safetensors"
    run_cli("generate", "--ulysses-degree", 2, "--model", flux_folder, "--prompt", PROMPTS[0],
            "--seed", 0, "--height", 32, "--width", 48, "--num-inference-steps", 2,
            "--max-sequence-length", 16, "--output", png, "--save-latents", lat, "--quiet", ranks=2)
    # Every rank returns the outputs, and they are the CLI's, bit for bit.
    for r in (r0, r1):
        assert np.array_equal(r["image"], np.asarray(Image.open(png).convert("RGB")))
        assert np.array_equal(r["latents"], read_safetensors(lat)["latents"])
        assert r["bytes_sent"] > 0  # the Ulysses all-to-alls ran
    # And the single process's within the context-parallel tolerance.
    alone = single(PROMPTS[0], generator=paradiff.Generator().manual_seed(0), output_type="latent", **KW).images
    assert np.abs(r0["latents"] - alone).max() <= 1e-4


def test_split_between_processes_pattern(flux_folder, single, tmp_path):
    mpirun("split_prompts", flux_folder, tmp_path)
    r0, r1 = ranks(tmp_path)
    assert (int(r0["count"]), int(r1["count"])) == (2, 1)
    # Each process's own call equals the same call made alone.
    for got, mine in ((r0, PROMPTS[:2]), (r1, PROMPTS[2:])):
        want = single(mine, generator=paradiff.Generator().manual_seed(4), output_type="latent", **KW).images
        assert np.array_equal(got["latents"], want)


def test_engine_data_parallel_equals_one_process(flux_folder, single, tmp_path):
    mpirun("data_parallel", flux_folder, tmp_path)
    r0, r1 = ranks(tmp_path)
    want = single(PROMPTS, generator=paradiff.Generator().manual_seed(4), output_type="latent", **KW).images
    for r in (r0, r1):
        assert np.array_equal(r["latents"], want)
        assert int(r["replicas"]) == 2
    # Split 2 + 1, and the second replica sent its image to rank 0.
    assert (int(r0["images_here"]), int(r1["images_here"])) == (2, 1)
    assert r1["bytes_sent"] > 0


def test_same_error_everywhere_is_an_exception_and_the_job_goes_on(flux_folder, single, tmp_path):
    mpirun("errors_then_work", flux_folder, tmp_path)
    r0, r1 = ranks(tmp_path)
    assert "num_inference_steps" in str(r0["message"]) and str(r0["message"]) == str(r1["message"])
    assert np.array_equal(r0["latents"], r1["latents"])


def test_placed_pipelines_equal_one_process_bit_for_bit(flux_folder, single, tmp_path):
    mpirun("placed", flux_folder, tmp_path)
    r0, r1 = ranks(tmp_path)
    want = single(PROMPTS[0], generator=paradiff.Generator().manual_seed(0), output_type="latent", **KW).images
    for r in (r0, r1):
        assert np.array_equal(r["balanced"], want)
        assert np.array_equal(r["blocks"], want)
        # The maps used both processes: the work was split.
        assert r["owners"].tolist() == [0, 1] and r["block_owners"].tolist() == [0, 1]


def test_a_failed_rank_ends_the_job(flux_folder, tmp_path):
    start = time.monotonic()
    done = mpirun("rank_fails", flux_folder, tmp_path, check=False, timeout=120)
    assert done.returncode != 0
    assert time.monotonic() - start < 60
    assert "rank one's script broke" in done.stderr
    assert "rank 1 failed" in done.stderr
    assert not (tmp_path / "rank0.npz").exists()
