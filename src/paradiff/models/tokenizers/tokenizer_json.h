// tokenizer.json, the file of the HuggingFace `tokenizers` library, read as transformers 5 reads it
// for CLIPTokenizer, T5Tokenizer and Qwen2Tokenizer.
//
// These classes build their normalizer, pre-tokenizer and post-processor in code and take only
// the model's data from the file: the vocabulary and merges of a BPE model, the pieces and scores
// of a Unigram model, and SentencePiece's precompiled charsmap from the normalizer
// (TokenizersBackend.convert_to_native_format); the added tokens come from "added_tokens" (see
// tokenizer_folder.h). paradiff does the same, so a file whose declared pipeline differs from the
// class's (T5 files written by transformers 4 declare Metaspace without WhitespaceSplit, and strip
// and collapse spaces in the normalizer) gives transformers 5's ids.
//
// The declared components are still checked: each must be a JSON object whose "type" is one of the
// kinds these tokenizers' files use, so that a file written for another tokenizer, or damaged, is
// refused with the file, the key and the type instead of being half understood.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "paradiff/io/json_config.h"
#include "paradiff/models/tokenizers/byte_level_bpe.h"
#include "paradiff/models/tokenizers/unigram.h"

namespace paradiff::models::tokenizers {

struct TokenizerJsonModel {
  std::string type;                                 // model.type: "BPE" or "Unigram"
  std::shared_ptr<const BytePairEncoding> bpe;      // when "BPE"
  std::vector<Unigram::Piece> unigram_pieces;       // when "Unigram": model.vocab, in id order
  std::optional<std::string> precompiled_charsmap;  // the Precompiled normalizer's bytes
};

// Reads `file` (a parsed tokenizer.json) for `tokenizer_class` ("CLIPTokenizer", ...), whose model
// type must be `model_type`. BPE models use `bpe_options` (the class's, not the file's:
// transformers 5 passes its own suffix and unknown token). Unigram models keep every piece, as
// `tokenizers` does; the unknown id is the caller's. Errors name the file and the key.
TokenizerJsonModel read_tokenizer_json(const JsonConfig& file, const std::string& tokenizer_class,
                                       const std::string& model_type,
                                       const BpeOptions& bpe_options = {});

}  // namespace paradiff::models::tokenizers
