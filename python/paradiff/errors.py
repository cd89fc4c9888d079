"""The package's exceptions: the engine's own, carrying its message."""

from ._native import _paradiff

#: Raised for anything the engine refuses or fails at (bad input, a malformed model folder, an
#: impossible parallel configuration), with the engine's message naming the value.
ParadiffError = _paradiff.ParadiffError

#: Raised when a step callback stops a generation (a subclass of ParadiffError).
GenerationCancelled = _paradiff.GenerationCancelled

__all__ = ["ParadiffError", "GenerationCancelled"]
