"""A seed holder in the shape of ``torch.Generator`` (CPU).

paradiff draws the starting noise with the same algorithm as PyTorch's CPU generator, so
``paradiff.Generator().manual_seed(0)`` gives the latents ``torch.Generator().manual_seed(0)``
gives diffusers. A ``torch.Generator`` on the CPU is accepted wherever this one is.
"""

import random


class Generator:
    def __init__(self, device="cpu"):
        if str(device) != "cpu":
            raise ValueError(f"paradiff draws noise on the CPU; Generator(device={device!r}) is not supported")
        self._seed = random.getrandbits(63)

    def manual_seed(self, seed):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"manual_seed takes an int, got {type(seed).__name__}")
        if not -(2**63) <= seed < 2**64:
            raise ValueError(f"seed {seed} is outside the 64-bit range")
        self._seed = seed % 2**64  # torch stores a negative seed as its two's complement
        return self

    def initial_seed(self):
        return self._seed

    def seed(self):
        """A fresh random seed, set and returned (torch.Generator.seed)."""
        self._seed = random.getrandbits(63)
        return self._seed

    def __repr__(self):
        return f"paradiff.Generator(seed={self._seed})"


def seed_of(generator):
    """The seed of a paradiff or torch CPU generator; None for None."""
    if generator is None:
        return None
    if isinstance(generator, Generator):
        return generator.initial_seed()
    device = getattr(generator, "device", None)
    if device is not None and str(device) != "cpu":
        raise ValueError(f"a generator on {device} draws different noise; use a CPU generator")
    initial_seed = getattr(generator, "initial_seed", None)
    if callable(initial_seed):
        return int(initial_seed()) % 2**64
    raise TypeError(f"generator must be a paradiff.Generator or torch.Generator, got {type(generator).__name__}")


__all__ = ["Generator"]
