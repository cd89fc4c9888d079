// A model-level map that puts units on "disk" streams their weights from the model's own
// safetensors files at every step. Before anything is loaded, the files those units live in are
// checked readable (the index's weight_map says which shard holds which tensor; no shard is
// opened for it), so that a missing, dangling or unreadable shard is refused up front with its
// path instead of failing when a rank opens the checkpoint.
#pragma once

#include <string>

#include "paradiff/parallel/placement/model_device_map.h"

namespace paradiff::engine {

// `component_folder`: the model folder the map applies to (a pipeline's transformer/);
// `option`: the command-line option that gave the map, for the message; `when`: how often the
// units are streamed ("at every step", a text encoder's "at every encode"). Does nothing when no
// entry of `map` is "disk". Throws naming the disk units, the file and why it cannot be read.
// `variant`: the checkpoint variant the units are read from ("" for the default files).
void check_disk_weights_readable(const std::string& component_folder,
                                 const parallel::DeviceMap& map, const std::string& option,
                                 const std::string& when = "at every step",
                                 const std::string& variant = {});

}  // namespace paradiff::engine
