"""paradiff: diffusion transformers split across processes, with diffusers' Python interface.

    import paradiff
    pipe = paradiff.FluxPipeline.from_pretrained("models/tiny-flux-shapes")
    pipe.transformer.enable_parallelism(config=paradiff.ContextParallelConfig(ulysses_degree=2))
    image = pipe("a red circle", generator=paradiff.Generator().manual_seed(0)).images[0]

Launch several processes with ``mpirun -n N python script.py``; every process runs the script.
"""

import atexit
import os
import sys

from ._native import _paradiff
from .configs import ContextParallelConfig, ParallelConfig
from .errors import GenerationCancelled, ParadiffError
from .generator import Generator
from .pipelines import DiffusionPipeline, FluxPipeline, ImagePipelineOutput, QwenImagePipeline
from .state import PartialState

__version__ = "0.1.0"

set_num_threads = _paradiff.set_num_threads
num_threads = _paradiff.num_threads
set_log_level = _paradiff.set_log_level


def _default_threads():
    """Kernel threads when nobody chose (OMP_NUM_THREADS unset): the cores this process may use,
    shared with the job's other processes on this host when mpirun did not bind them."""
    cores = len(os.sched_getaffinity(0))
    if cores == (os.cpu_count() or cores):
        cores //= max(1, int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", "1")))
    return max(1, cores)


if "OMP_NUM_THREADS" not in os.environ:
    _paradiff.set_num_threads(_default_threads())

# MPI ends with the interpreter, after every pipeline is closed.
atexit.register(_paradiff.shutdown)

# In a job of several processes an exception that ends one process's script would leave the
# others waiting forever in the next collective: print it, then end the whole job.
if _paradiff.world_size() > 1:
    _previous_hook = sys.excepthook

    def _end_job_on_uncaught(kind, value, traceback):
        _previous_hook(kind, value, traceback)
        sys.stderr.flush()
        _paradiff.abort_job(f"{kind.__name__}: {value}")

    sys.excepthook = _end_job_on_uncaught

__all__ = [
    "ContextParallelConfig", "DiffusionPipeline", "FluxPipeline", "GenerationCancelled", "Generator",
    "ImagePipelineOutput", "ParadiffError", "ParallelConfig", "PartialState", "QwenImagePipeline",
    "num_threads", "set_log_level", "set_num_threads",
]
