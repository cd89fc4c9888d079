// Checks that a pipeline's components fit one another (a text encoder's width and the
// transformer's text input, the VAE's latent channels and the transformer's), from their
// config files alone, so an inconsistent folder is refused before any weight is read.
#pragma once

#include <cstdint>
#include <string>

namespace paradiff::pipeline {

// One side of a comparison: the config file, the key (or an expression of keys) and its value.
struct ConfigValue {
  std::string file;  // "<folder>/text_encoder_2/config.json"
  std::string key;   // "d_model"
  int64_t value = 0;
};

// Throws "<a.file>: a.key = a.value does not match <b.file>: b.key = b.value (why)" unless the
// two values are equal.
void check_components_match(const ConfigValue& a, const ConfigValue& b, const std::string& why);

}  // namespace paradiff::pipeline
