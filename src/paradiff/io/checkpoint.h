// A model's weights as one set of named tensors, whether stored in one .safetensors file or
// sharded across several with a "*.safetensors.index.json" naming each tensor's shard, as
// diffusers and transformers save large models.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "paradiff/io/safetensors.h"

namespace paradiff {

class Checkpoint {
 public:
  // Opens a single .safetensors file, or a sharded checkpoint when `path` ends in ".json" (an
  // index: {"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}). Shards
  // are resolved next to the index and validated: every shard exists and is a valid safetensors
  // file, every listed tensor is in its shard, no tensor is in two shards, and no shard holds a
  // tensor the index does not list.
  static Checkpoint open(const std::string& path);

  // Finds the checkpoint in a model folder: "<stem>.safetensors.index.json" (preferred, as
  // diffusers does) or "<stem>.safetensors", then the same for "model" (transformers' naming).
  // With a `variant` ("fp16"), only that variant's files, named as diffusers and transformers
  // save them: "<stem>.safetensors.index.<variant>.json" (shards as the index names them),
  // "<stem>.<variant>.safetensors", then diffusers' deprecated index name
  // "<stem>.safetensors.<variant>.index.json". The error lists every name it looked for.
  static Checkpoint open_folder(const std::string& dir,
                                const std::string& stem = "diffusion_pytorch_model",
                                const std::string& variant = {});
  // The file open_folder would open (a .safetensors file or an index), without opening it; the
  // same error when there is none.
  static std::string find_in_folder(const std::string& dir,
                                    const std::string& stem = "diffusion_pytorch_model",
                                    const std::string& variant = {});

  // Whether a model folder holds files of `variant`, by diffusers' rule for a pipeline's
  // component folders: some file whose name's second dot-separated part is the variant
  // ("model.fp16.safetensors", "model-00001-of-00002.fp16.safetensors") or starts with
  // "<variant>-" ("model.fp16-00001-of-00002.safetensors"). A component without them is loaded
  // from its non-variant files.
  static bool folder_has_variant(const std::string& dir, const std::string& variant);

  const std::string& path() const { return path_; }  // the file or index opened
  bool is_sharded() const { return sharded_; }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

  size_t size() const { return where_.size(); }  // number of tensors
  std::vector<std::string> names() const;        // sorted
  bool contains(const std::string& name) const;
  const SafetensorsTensorInfo& info(const std::string& name) const;
  // As SafetensorsFile::read: a zero-copy view when the stored dtype is `want`, else a copy.
  Tensor read(const std::string& name, DType want) const;
  // The shard holding a tensor.
  const SafetensorsFile& file_of(const std::string& name) const;

  // A single file's "__metadata__"; for an index, its "metadata" object with non-string values
  // written as JSON ("total_size" -> "123456").
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  bool sharded_ = false;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> index into shards_
  std::map<std::string, std::string> metadata_;
};

}  // namespace paradiff
