// The engine as the Python module `paradiff._paradiff` shows it to the package's pipelines:
// requests in diffusers' names, tensors as numpy arrays, errors as Python exceptions.
#pragma once

#include <pybind11/pybind11.h>

namespace paradiff::python {

void bind_engine(pybind11::module_& m);

}  // namespace paradiff::python
