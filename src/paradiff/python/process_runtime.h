// The Python package's process: its distributed runtime (MPI when `mpirun -n N python ...`
// started it, a world of one otherwise), the engines opened in it, and what a failure does.
// MPI lives from the first use to interpreter exit; at exit every engine still open is closed
// (its communicators freed) before MPI is finalised, so no Python object outlives MPI.
#pragma once

#include <memory>
#include <string>

#include "paradiff/dist/communicator.h"
#include "paradiff/engine/engine.h"

namespace paradiff::python {

// The world communicator, starting the runtime on first use.
dist::Communicator& process_world();

// Ends the process's runtime: closes every open engine, then finalises MPI. Idempotent; after
// it, opening an engine is an error.
void shutdown_runtime();

// Prints "paradiff: rank R failed: <message>" and ends the whole job (MPI_Abort) when this
// process is one of several; returns when it is alone (the caller then raises).
void abort_job_if_parallel(const std::string& message);

// An engine and the world it runs on: the process's world (a parallel pipeline, every rank a
// part of one job) or a world of its own (an independent pipeline per process, as each
// accelerate process holds its own diffusers pipeline).
struct EngineHandle {
  std::unique_ptr<dist::Communicator> own_world;
  std::unique_ptr<engine::Engine> engine;

  engine::Engine& get();  // throws when the runtime has shut down
};

// Opens an engine registered for shutdown.
std::shared_ptr<EngineHandle> open_engine(const engine::EngineOptions& options, bool independent);

}  // namespace paradiff::python
