"""Loads the engine module, making libmpi's symbols global first.

OpenMPI opens its transport plugins with dlopen and they expect libmpi's symbols to be global;
a Python extension is loaded with RTLD_LOCAL, so without this the plugins fail to load under
mpirun ("undefined symbol: ompi_...").
"""

import os
import sys

_flags = sys.getdlopenflags()
sys.setdlopenflags(_flags | os.RTLD_GLOBAL)
try:
    from . import _paradiff  # noqa: E402
finally:
    sys.setdlopenflags(_flags)

__all__ = ["_paradiff"]
