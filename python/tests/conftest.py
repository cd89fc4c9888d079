"""Shared fixtures of the Python package's tests: the repository's model fixtures, the CLI
binary (to compare against), and a reader for the diffusers reference outputs."""

import json
import os
import pathlib
import struct
import subprocess

import numpy as np
import pytest

SOURCE = pathlib.Path(os.environ.get("PARADIFF_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
FLUX = SOURCE / "tests/fixtures/flux_pipeline"
QWEN = SOURCE / "tests/fixtures/qwen_image_pipeline"
CLI = os.environ.get("PARADIFF_CLI", str(SOURCE / "build/paradiff"))

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_pml": "ob1",
    "OMPI_MCA_btl": "vader,self",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}


def read_safetensors(path):
    """{name: float32 array} of a safetensors file of F32/I64 tensors."""
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "I64": np.int64}[info["dtype"]]
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype=dtype).reshape(info["shape"])
    return out


def run_cli(*args, ranks=1, env=None):
    """Runs the paradiff CLI (under mpirun with `ranks` > 1); fails the test on a non-zero exit."""
    command = [CLI, *map(str, args)]
    if ranks > 1:
        command = ["mpirun", "-n", str(ranks), *command]
    full_env = dict(os.environ, **MPI_ENV, **(env or {}))
    done = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def flux_folder():
    return str(FLUX / "tiny")


@pytest.fixture(scope="session")
def qwen_folder():
    return str(QWEN / "tiny")


@pytest.fixture(scope="session")
def flux_cases():
    return json.loads((FLUX / "cases.json").read_text()), read_safetensors(FLUX / "expected.safetensors")
