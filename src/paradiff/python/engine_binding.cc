#include "paradiff/python/engine_binding.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

#include "paradiff/core/error.h"
#include "paradiff/engine/progress_printer.h"
#include "paradiff/kernels/weight_storage.h"
#include "paradiff/python/process_runtime.h"

namespace py = pybind11;

namespace paradiff::python {

namespace {

// A fresh float32 numpy array holding `t` (converted from bf16/f16; int64 kept as int64).
py::array to_numpy(const Tensor& t) {
  std::vector<py::ssize_t> shape;
  for (int d = 0; d < t.ndim(); ++d) shape.push_back(t.dim(d));
  if (t.dtype() == DType::I64) {
    py::array_t<int64_t> out(shape);
    if (t.numel() > 0) std::memcpy(out.mutable_data(), t.raw_data(), t.nbytes());
    return out;
  }
  const Tensor f = t.as(DType::F32);
  py::array_t<float> out(shape);
  if (f.numel() > 0) std::memcpy(out.mutable_data(), f.raw_data(), f.nbytes());
  return out;
}

// An F32 tensor copied from any numeric numpy array (or anything numpy can read as one).
Tensor from_numpy(const py::handle& value, const char* what) {
  py::array_t<float, py::array::c_style | py::array::forcecast> a;
  try {
    a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(value);
  } catch (const py::error_already_set&) {
  }
  PARADIFF_CHECK(a, what, " must be a numeric array (numpy or anything numpy reads), got ",
                 std::string(py::str(py::type::handle_of(value).attr("__name__"))));
  std::vector<int64_t> dims(a.shape(), a.shape() + a.ndim());
  Tensor t = Tensor::empty(Shape(dims), DType::F32);
  if (t.numel() > 0) std::memcpy(t.raw_data(), a.data(), t.nbytes());
  return t;
}

// (3, H, W) -> (H, W, 3), diffusers' numpy layout.
py::array image_to_hwc(const Tensor& chw) {
  const Tensor f = chw.as(DType::F32);
  const int64_t c = f.dim(0), h = f.dim(1), w = f.dim(2);
  py::array_t<float> out({h, w, c});
  float* dst = out.mutable_data();
  const float* src = f.data<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k) dst[(y * w + x) * c + k] = src[(k * h + y) * w + x];
  return out;
}

// How a Python callback's exception leaves the C++ loop: the callback stores it and cancels;
// the binding raises it once the engine has unwound.
struct CallbackError {
  std::unique_ptr<py::error_already_set> error;
};

// The engine's per-step callback for a call: the progress line (rank 0 of the engine's world,
// unless disabled) and the user's Python callback, which returns False to stop.
engine::ProgressCallback step_callback(bool progress, const py::object& callback,
                                       CallbackError& failure) {
  engine::ProgressCallback printer = progress ? engine::progress_printer() : nullptr;
  if (callback.is_none()) return printer;
  // The engine copies its callback without the GIL: hold the Python object by address (it
  // outlives the call) and touch it only with the GIL.
  const py::object* user = &callback;
  return [printer, user, &failure](const pipeline::StepProgress& p,
                                   const std::vector<int64_t>& prompts) {
    if (printer) printer(p, prompts);
    py::gil_scoped_acquire gil;
    try {
      const py::object keep = (*user)(p.step, p.steps, prompts);
      return keep.is_none() || keep.cast<bool>();
    } catch (py::error_already_set& e) {
      failure.error = std::make_unique<py::error_already_set>(std::move(e));
      return false;
    }
  };
}

class PyEngine {
 public:
  PyEngine(const std::string& model, const std::string& dtype,
           std::optional<parallel::ParallelConfig> parallel, bool keep_loaded,
           const std::string& variant, const std::string& device_map,
           const std::string& transformer_device_map, const std::string& max_memory,
           const std::string& text_encoder_device_map, const std::string& text_encoder_2_device_map,
           const std::string& vae_device_map, const std::string& transformer_storage) {
    engine::EngineOptions options;
    options.model = model;
    options.variant = variant;
    options.device_map = device_map;
    options.transformer_device_map = transformer_device_map;
    options.max_memory = max_memory;
    options.text_encoder_device_map = text_encoder_device_map;
    options.text_encoder_2_device_map = text_encoder_2_device_map;
    options.vae_device_map = vae_device_map;
    options.transformer_storage = kernels::parse_weight_storage(transformer_storage);
    options.compute = parse_dtype(dtype);
    PARADIFF_CHECK(options.compute == DType::F32 || options.compute == DType::BF16,
                   "torch_dtype must be float32 or bfloat16, got '", dtype, "'");
    // No parallel config: this process's own pipeline (diffusers' default: every process holds
    // the whole pipeline and runs what it is given).
    const bool independent = !parallel.has_value();
    if (parallel) options.parallel = *parallel;
    options.cache_policy = keep_loaded ? pipeline::ComponentCache::Policy::KeepLoaded
                                       : pipeline::ComponentCache::Policy::ReleaseAfterStage;
    handle_ = open_engine(options, independent);
    independent_ = independent;
  }

  std::string class_name() { return engine().pipeline().class_name(); }
  int64_t vae_scale_factor() { return engine().pipeline().vae_scale_factor(); }
  int world_rank() { return engine().world().rank(); }
  int world_size() { return engine().world().size(); }
  int replicas() { return engine().replicas(); }
  std::string describe_parallel() { return engine().options().parallel.describe(); }
  std::string placement_report() { return engine().placement_report(); }

  py::dict resolve(const engine::GenerationRequest& request) {
    const auto o = engine().resolve(request);
    py::dict d;
    d["height"] = o.height;
    d["width"] = o.width;
    d["num_inference_steps"] = o.num_inference_steps;
    d["max_sequence_length"] = o.max_sequence_length;
    return d;
  }

  uint64_t shared_random_seed() {
    return collective([&] { return engine().shared_random_seed(); });
  }

  py::dict run(const engine::GenerationRequest& request, bool progress,
               const py::object& callback) {
    engine().resolve(request);  // the same checks fail the same way on every rank: an exception
    CallbackError failure;
    const auto on_step = step_callback(progress && engine().world().rank() == 0, callback, failure);
    engine().mesh().reset_comm_stats();
    engine::GenerationResult result = collective(
        [&] {
          auto r = engine().run(request, on_step);
          engine().share_results(r);
          return r;
        },
        &failure);
    const auto& s = result.stats;
    py::dict stats;
    stats["encode_seconds"] = s.encode_seconds;
    stats["denoise_seconds"] = s.denoise_seconds;
    stats["decode_seconds"] = s.decode_seconds;
    stats["total_seconds"] = s.total_seconds;
    stats["steps"] = s.steps;
    stats["peak_bytes"] = s.peak_bytes;
    stats["replicas"] = s.replicas;
    stats["images_here"] = s.prompts_here;
    // What this rank sent over its mesh's communicators in the run (0 for one process): the
    // context-parallel exchanges, the conditioning broadcast and the results sent to rank 0.
    stats["bytes_sent"] = engine().mesh().comm_stats().bytes_sent;
    py::list images;
    for (const auto& image : result.images) {
      py::dict d;
      d["index"] = image.index;
      d["image_index"] = image.image_index;
      d["latents"] = to_numpy(image.latents.select(0));
      d["image"] = image.image.defined() ? py::object(image_to_hwc(image.image)) : py::none();
      images.append(d);
    }
    py::dict out;
    out["images"] = images;
    out["stats"] = stats;
    return out;
  }

  py::dict encode_prompt(const engine::GenerationRequest& request) {
    engine().resolve(request);
    auto conditioning = collective([&] {
      auto c = engine().encode_prompt(request);
      engine().share_from_root(c);
      return c;
    });
    py::dict out;
    for (const auto& [name, tensor] : conditioning) out[py::str(name)] = to_numpy(tensor);
    return out;
  }

  py::array denoise(const py::dict& conditioning, const py::object& latents,
                    const engine::GenerationRequest& request, bool progress,
                    const py::object& callback) {
    engine().resolve(request);
    pipeline::Conditioning c;
    for (const auto& [name, value] : conditioning) {
      const std::string key = py::str(name);
      c[key] = from_numpy(value, key.c_str());
    }
    const Tensor start = latents.is_none() ? Tensor() : from_numpy(latents, "latents");
    CallbackError failure;
    const auto on_step = step_callback(progress && engine().world().rank() == 0, callback, failure);
    const Tensor out = collective(
        [&] {
          parallel::NamedTensors result{{"latents", engine().denoise(c, start, request, on_step)}};
          engine().share_from_root(result);
          return result.at("latents");
        },
        &failure);
    return to_numpy(out);
  }

  py::array decode(const py::object& latents, const engine::GenerationRequest& request) {
    engine().resolve(request);
    const Tensor packed = from_numpy(latents, "latents");
    const Tensor images = collective([&] {
      parallel::NamedTensors result{{"images", engine().decode(packed, request)}};
      engine().share_from_root(result);
      return result.at("images");
    });
    py::list out;
    for (int64_t b = 0; b < images.dim(0); ++b) out.append(image_to_hwc(images.select(b)));
    return py::array(out);
  }

 private:
  engine::Engine& engine() { return handle_->get(); }

  // Runs a collective engine call without the GIL. A failure there may be this rank's alone
  // (the others then wait in a collective): in a job of several processes it ends the job with
  // one message; alone, it raises. A cancellation is every rank's (the callback contract) and
  // raises everywhere; a Python callback's own exception is re-raised as it was.
  template <typename F>
  auto collective(F&& body, CallbackError* failure = nullptr) -> decltype(body()) {
    try {
      py::gil_scoped_release release;
      return body();
    } catch (const pipeline::GenerationCancelled& e) {
      if (failure && failure->error) {
        if (!independent_) abort_job_if_parallel(failure->error->what());
        throw *failure->error;
      }
      throw;
    } catch (const std::exception& e) {
      if (!independent_) abort_job_if_parallel(e.what());
      throw;
    }
  }

  std::shared_ptr<EngineHandle> handle_;
  bool independent_ = false;
};

}  // namespace

void bind_engine(py::module_& m) {
  py::enum_<engine::OutputType>(m, "OutputType")
      .value("pil", engine::OutputType::Pil)
      .value("np", engine::OutputType::Np)
      .value("latent", engine::OutputType::Latent);
  py::enum_<engine::LatentDraw>(m, "LatentDraw")
      .value("per_prompt", engine::LatentDraw::PerPrompt)
      .value("one_batch", engine::LatentDraw::OneBatch);

  py::class_<engine::GenerationRequest>(m, "GenerationRequest")
      .def(py::init<>())
      .def_readwrite("prompt", &engine::GenerationRequest::prompt)
      .def_readwrite("negative_prompt", &engine::GenerationRequest::negative_prompt)
      .def_readwrite("height", &engine::GenerationRequest::height)
      .def_readwrite("width", &engine::GenerationRequest::width)
      .def_readwrite("num_inference_steps", &engine::GenerationRequest::num_inference_steps)
      .def_readwrite("guidance_scale", &engine::GenerationRequest::guidance_scale)
      .def_readwrite("true_cfg_scale", &engine::GenerationRequest::true_cfg_scale)
      .def_readwrite("seed", &engine::GenerationRequest::seed)
      .def_readwrite("seeds", &engine::GenerationRequest::seeds)
      .def_readwrite("num_images_per_prompt", &engine::GenerationRequest::num_images_per_prompt)
      .def_readwrite("latent_draw", &engine::GenerationRequest::latent_draw)
      .def_readwrite("max_sequence_length", &engine::GenerationRequest::max_sequence_length)
      .def_readwrite("output_type", &engine::GenerationRequest::output_type)
      .def_readwrite("apply_padding", &engine::GenerationRequest::apply_padding);

  py::class_<parallel::ContextParallelConfig>(m, "ContextParallelConfig")
      .def(py::init<>())
      .def_readwrite("ring_degree", &parallel::ContextParallelConfig::ring_degree)
      .def_readwrite("ulysses_degree", &parallel::ContextParallelConfig::ulysses_degree)
      .def_readwrite("convert_to_fp32", &parallel::ContextParallelConfig::convert_to_fp32)
      .def_readwrite("rotate_method", &parallel::ContextParallelConfig::rotate_method)
      .def("validate", &parallel::ContextParallelConfig::validate)
      .def("describe", &parallel::ContextParallelConfig::describe);

  py::class_<parallel::ParallelConfig>(m, "ParallelConfig")
      .def(py::init<>())
      .def_readwrite("context_parallel_config", &parallel::ParallelConfig::context_parallel_config)
      .def_readwrite("cfg_degree", &parallel::ParallelConfig::cfg_degree)
      .def_property(
          "ring_progress",
          [](const parallel::ParallelConfig& c) {
            return std::string(parallel::ring_progress_name(c.ring_progress));
          },
          [](parallel::ParallelConfig& c, const std::string& name) {
            c.ring_progress = parallel::parse_ring_progress(name);
          })
      .def("validate", &parallel::ParallelConfig::validate)
      .def("describe", &parallel::ParallelConfig::describe);

  py::class_<PyEngine>(m, "Engine")
      .def(py::init<const std::string&, const std::string&, std::optional<parallel::ParallelConfig>,
                    bool, const std::string&, const std::string&, const std::string&,
                    const std::string&, const std::string&, const std::string&, const std::string&,
                    const std::string&>(),
           py::arg("model"), py::arg("dtype"), py::arg("parallel_config"), py::arg("keep_loaded"),
           py::arg("variant") = "", py::arg("device_map") = "",
           py::arg("transformer_device_map") = "", py::arg("max_memory") = "",
           py::arg("text_encoder_device_map") = "", py::arg("text_encoder_2_device_map") = "",
           py::arg("vae_device_map") = "", py::arg("transformer_storage") = "fp32")
      .def_property_readonly("placement_report", &PyEngine::placement_report)
      .def_property_readonly("class_name", &PyEngine::class_name)
      .def_property_readonly("vae_scale_factor", &PyEngine::vae_scale_factor)
      .def_property_readonly("world_rank", &PyEngine::world_rank)
      .def_property_readonly("world_size", &PyEngine::world_size)
      .def_property_readonly("replicas", &PyEngine::replicas)
      .def("describe_parallel", &PyEngine::describe_parallel)
      .def("resolve", &PyEngine::resolve)
      .def("shared_random_seed", &PyEngine::shared_random_seed)
      .def("run", &PyEngine::run, py::arg("request"), py::arg("progress"), py::arg("callback"))
      .def("encode_prompt", &PyEngine::encode_prompt)
      .def("denoise", &PyEngine::denoise, py::arg("conditioning"), py::arg("latents"),
           py::arg("request"), py::arg("progress"), py::arg("callback"))
      .def("decode", &PyEngine::decode);
}

}  // namespace paradiff::python
