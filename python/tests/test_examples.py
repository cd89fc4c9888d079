"""The examples of docs/python.md run as they stand (from a folder holding the bundled model),
docs/python.md shows them verbatim, and the one-process example draws what the CLI draws."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import MPI_ENV, SOURCE, run_cli

EXAMPLES = SOURCE / "python/examples"


def launch_line(example):
    """The command of the example's header comment: `python3 ...` or `mpirun -n N python3 ...`."""
    head = example.read_text().split("\n\n")[0]
    match = re.search(r"(mpirun -n (\d+) )?python3 python/examples/\S+", head)
    assert match, f"{example.name}: the header names no command"
    return int(match.group(2) or 1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder like the repository root: models/ (the bundled model) and an empty out/."""
    if not (SOURCE / "models/tiny-flux-shapes/model_index.json").exists():
        pytest.skip("models/tiny-flux-shapes is not in this checkout")
    root = tmp_path_factory.mktemp("examples")
    (root / "models").symlink_to(SOURCE / "models")
    (root / "out").mkdir()
    return root


def run_example(name, workdir):
    example = EXAMPLES / name
    ranks = launch_line(example)
    command = [sys.executable, str(example)]
    if ranks > 1:
        command = ["mpirun", "-n", str(ranks), *command]
    env = dict(os.environ, **MPI_ENV)
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name}:\n{done.stderr}"


def rgb(path):
    image = Image.open(path)
    assert image.size == (256, 256) and image.mode == "RGB"
    return np.asarray(image)


def test_docs_show_every_example_verbatim():
    docs = (SOURCE / "docs/python.md").read_text()
    for example in sorted(EXAMPLES.glob("*.py")):
        assert example.read_text().strip() in docs, f"docs/python.md does not show {example.name} as it is"


def test_text_to_image_draws_what_the_cli_draws(workdir):
    run_example("text_to_image.py", workdir)
    run_cli("generate", "--model", SOURCE / "models/tiny-flux-shapes", "--prompt",
            "a large red circle at the top left on a white background", "--height", 256, "--width", 256,
            "--num-inference-steps", 28, "--max-sequence-length", 32, "--seed", 0,
            "--output", workdir / "cli.png", "--quiet")
    assert np.array_equal(rgb(workdir / "out/python_circle.png"), rgb(workdir / "cli.png"))


@pytest.mark.parametrize("name, outputs", [
    ("data_parallel.py", ["result_0.png", "result_1.png"]),
    ("rank_by_hand.py", ["a_small_green.png", "a_large_yellow.png"]),
    ("context_parallel.py", ["context_parallel.png"]),
    ("staged.py", ["staged.png"]),
])
def test_example_runs_as_it_stands(workdir, name, outputs):
    run_example(name, workdir)
    for output in outputs:
        rgb(workdir / "out" / output)
