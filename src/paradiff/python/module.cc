// paradiff._paradiff: the engine for the Python package (python/paradiff/). The package's
// pipelines, configs and PartialState are Python classes in diffusers' and accelerate's shapes;
// this module gives them the process runtime (MPI under mpirun), the engine, and errors as
// Python exceptions carrying the engine's message.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "paradiff/core/error.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/threads.h"
#include "paradiff/parallel/data_parallel.h"
#include "paradiff/pipeline/denoise_loop.h"
#include "paradiff/python/engine_binding.h"
#include "paradiff/python/process_runtime.h"

namespace py = pybind11;
using namespace paradiff;

PYBIND11_MODULE(_paradiff, m) {
  m.doc() = "paradiff's engine (use the `paradiff` package, not this module)";

  // Errors: the engine's message, as a Python exception of the package's own classes.
  static py::exception<Error> error(m, "ParadiffError", PyExc_RuntimeError);
  static py::exception<pipeline::GenerationCancelled> cancelled(m, "GenerationCancelled",
                                                                error.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pipeline::GenerationCancelled& e) {
      cancelled(e.what());
    } catch (const Error& e) {
      error(e.what());
    }
  });

  m.def(
      "world_rank", [] { return python::process_world().rank(); },
      "this process's rank in the job (0 without mpirun)");
  m.def(
      "world_size", [] { return python::process_world().size(); },
      "the job's number of processes (1 without mpirun)");
  m.def(
      "barrier",
      [] {
        dist::Communicator& world = python::process_world();
        py::gil_scoped_release release;
        world.barrier();
      },
      "waits until every process of the job arrives");
  m.def("shutdown", &python::shutdown_runtime,
        "closes every engine and finalises MPI (run at interpreter exit)");
  m.def(
      "abort_job",
      [](const std::string& message) {
        python::abort_job_if_parallel(message);
        return false;
      },
      "ends the whole job with this message when it has several processes; returns False alone");
  m.def(
      "split_between_processes",
      [](int64_t count, int processes, int index, bool apply_padding) {
        return parallel::split_between_processes(count, processes, index, apply_padding);
      },
      py::arg("count"), py::arg("processes"), py::arg("index"), py::arg("apply_padding"),
      "indices of the items process `index` takes (accelerate's split_between_processes)");
  m.def("set_num_threads", &set_num_threads, "kernel threads of this process");
  m.def("num_threads", &num_threads);
  m.def(
      "set_log_level",
      [](const std::string& level) {
        if (level == "debug")
          set_log_level(LogLevel::Debug);
        else if (level == "info")
          set_log_level(LogLevel::Info);
        else if (level == "warning")
          set_log_level(LogLevel::Warning);
        else if (level == "error")
          set_log_level(LogLevel::Error);
        else
          throw Error(
              str_cat("log level must be debug, info, warning or error; got '", level, "'"));
      },
      "the engine's messages on standard error");

  python::bind_engine(m);
}
