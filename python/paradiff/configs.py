"""diffusers' parallelism configuration classes, with paradiff's extensions.

``ContextParallelConfig`` and ``ParallelConfig`` take diffusers' field names. paradiff adds
``cfg_degree`` (true classifier-free guidance's two predictions on two rank groups) and
``ring_progress``, and its default ``rotate_method`` is ``"p2p"`` (a ring that overlaps transfers
with compute) where diffusers' is ``"allgather"`` (also accepted here).
"""

from dataclasses import dataclass, field
from typing import Optional

from ._native import _paradiff


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@dataclass
class ContextParallelConfig:
    """One image's token sequence split across processes (diffusers' ContextParallelConfig).

    ``ring_degree`` processes pass K/V around a ring, ``ulysses_degree`` processes exchange heads
    by all-to-all; both > 1 is unified attention on a 2-D mesh.
    """

    ring_degree: Optional[int] = None
    ulysses_degree: Optional[int] = None
    convert_to_fp32: bool = True
    rotate_method: str = "p2p"

    def __post_init__(self):
        self.ring_degree = _positive_int("ring_degree", 1 if self.ring_degree is None else self.ring_degree)
        self.ulysses_degree = _positive_int(
            "ulysses_degree", 1 if self.ulysses_degree is None else self.ulysses_degree
        )
        # diffusers' checks, in diffusers' order, with the engine's messages; the world size is
        # checked when the pipeline runs.
        self._native().validate(self.ring_degree * self.ulysses_degree)

    def _native(self):
        config = _paradiff.ContextParallelConfig()
        config.ring_degree = self.ring_degree
        config.ulysses_degree = self.ulysses_degree
        config.convert_to_fp32 = bool(self.convert_to_fp32)
        config.rotate_method = self.rotate_method
        return config


@dataclass
class ParallelConfig:
    """How a pipeline's processes share the work (diffusers' ParallelConfig, extended).

    The job's processes form a mesh data x cfg x ring x ulysses: ``cfg_degree`` (1 or 2) x the
    context-parallel degrees make one image together, and the job's remaining factor are
    data-parallel replicas that share the prompts of a call.
    """

    context_parallel_config: Optional[ContextParallelConfig] = None
    cfg_degree: int = 1
    ring_progress: str = "thread"

    def __post_init__(self):
        if self.context_parallel_config is not None and not isinstance(
            self.context_parallel_config, ContextParallelConfig
        ):
            raise TypeError(
                "context_parallel_config must be a paradiff.ContextParallelConfig, got "
                f"{type(self.context_parallel_config).__name__}"
            )
        _positive_int("cfg_degree", self.cfg_degree)
        self._native()  # ring_progress checked here

    def _native(self):
        config = _paradiff.ParallelConfig()
        if self.context_parallel_config is not None:
            config.context_parallel_config = self.context_parallel_config._native()
        config.cfg_degree = self.cfg_degree
        config.ring_progress = self.ring_progress
        return config


__all__ = ["ContextParallelConfig", "ParallelConfig"]
