"""accelerate's ``PartialState`` for paradiff jobs: which process this is, and the prompts it takes.

Under ``mpirun -n N python script.py`` every process runs the script; ``PartialState`` tells it
its index and splits inputs between the processes exactly as accelerate does (the engine's own
split, so a pipeline's data-parallel replicas and this helper agree).
"""

from contextlib import contextmanager

from ._native import _paradiff


class PartialState:
    """The job's processes, as accelerate's PartialState sees them (CPU processes, no device)."""

    def __init__(self):
        self.process_index = _paradiff.world_rank()
        self.num_processes = _paradiff.world_size()
        # One process per rank; paradiff has no per-host index of its own.
        self.local_process_index = self.process_index
        self.device = "cpu"

    @property
    def is_main_process(self):
        return self.process_index == 0

    @property
    def is_last_process(self):
        return self.process_index == self.num_processes - 1

    def wait_for_everyone(self):
        """Blocks until every process of the job arrives."""
        _paradiff.barrier()

    def print(self, *args, **kwargs):
        """print() on the main process only."""
        if self.is_main_process:
            print(*args, **kwargs)

    @contextmanager
    def main_process_first(self):
        """The main process runs the block first, then the others."""
        if not self.is_main_process:
            self.wait_for_everyone()
        yield
        if self.is_main_process:
            self.wait_for_everyone()

    @contextmanager
    def split_between_processes(self, inputs, apply_padding=False):
        """This process's contiguous share of ``inputs`` (a list, tuple, numpy array, or a dict
        of those, all of one length): process i of P takes ``q + (i < r)`` items from
        ``i * q + min(i, r)``, where ``q, r = divmod(len, P)``. With ``apply_padding`` a short
        share is padded with the last input so every process holds ``q + (r > 0)`` items (drop
        the results of the padding yourself)."""
        if self.num_processes == 1:
            yield inputs
            return
        if isinstance(inputs, str):
            raise TypeError("split_between_processes takes a list of prompts, not a str; write [prompt]")
        if isinstance(inputs, dict):
            lengths = {len(v) for v in inputs.values()}
            if len(lengths) > 1:
                raise ValueError("All values in the dictionary must have the same length")
            length = lengths.pop() if lengths else 0
        else:
            length = len(inputs)
        indices = _paradiff.split_between_processes(
            length, self.num_processes, self.process_index, bool(apply_padding)
        )
        if apply_padding and length == 0:
            raise ValueError("split_between_processes(apply_padding=True) needs at least one input to pad with")

        def take(values):
            if hasattr(values, "shape") and hasattr(values, "__array__"):
                return values[indices]  # numpy-like: fancy indexing keeps the array type
            picked = [values[i] for i in indices]
            return tuple(picked) if isinstance(values, tuple) else picked

        if isinstance(inputs, dict):
            yield {key: take(value) for key, value in inputs.items()}
        else:
            yield take(inputs)


__all__ = ["PartialState"]
