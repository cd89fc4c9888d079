#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++ with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer) into build-fuzz/ and runs each for a bounded time.
#
#   scripts/fuzz.sh                       # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh      # every target, 10 minutes each
#   scripts/fuzz.sh tokenizer_json        # one target
#   scripts/fuzz.sh tokenizer_json build-fuzz/crash-<hash>   # replay one input
#
# Targets (fuzz/<name>_fuzz.cc):
#   safetensors_header    the safetensors reader, any bytes as a whole file
#   tokenizer_json        tokenizer.json as CLIP, Qwen2 (BPE) and T5 (Unigram) read it
#   precompiled_charsmap  SentencePiece's charsmap normalizer, any blob and text
#   tokenizer_text        the fixture tokenizers' text path, any bytes as a prompt
#   png                   PNG reading, any bytes as a whole file
#   tokenizer_files       the legacy vocab.json + merges.txt (split at the first NUL) as CLIP
#                         and Qwen2 read them
#   config_json           config.json as every component's config reads it (transformers, VAEs,
#                         text encoders, the scheduler)
#
# Only the sources the targets need are compiled (core without threads.cc, io/json_config.cc,
# io/safetensors.cc, models/tokenizers/, the components' *_config.cc, the scheduler): the full library needs OpenMP, oneDNN and MPI, which
# the fuzzers do not. Seeds: fuzz/corpus/<target>/ (committed), plus inputs generated here from
# the test fixtures; inputs the fuzzer finds interesting accumulate in build-fuzz/corpus/<target>/
# across runs. Exits non-zero, with the reproducer saved as build-fuzz/crash-*, leak-* or
# timeout-*, when a fuzzer finds a problem.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
out=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
cxx=${FUZZ_CXX:-clang++}
command -v "$cxx" >/dev/null || {
  echo "fuzz.sh: $cxx not found: install the Debian packages clang and libclang-rt-dev" >&2
  exit 1
}
targets=(safetensors_header tokenizer_json precompiled_charsmap tokenizer_text config_json png
         tokenizer_files)

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Wno-unknown-pragmas
       -fsanitize=address,undefined -fno-sanitize-recover=undefined -I"$root/src")
libs=(-licuuc -licudata -lsentencepiece -lpng)
sources=(io/base64.cc io/json_config.cc io/safetensors.cc io/png.cc pipeline/flow_match_euler_scheduler.cc)
for f in "$root"/src/paradiff/core/*.cc "$root"/src/paradiff/models/tokenizers/*.cc \
    "$root"/src/paradiff/models/*/*_config.cc; do
  [[ $f == */core/threads.cc ]] || sources+=("${f#"$root"/src/paradiff/}")
done
mkdir -p "$out/objects" "$out/seeds"

# Compile what changed (a source newer than its object, or any header of these folders newer),
# two at a time.
newest_header=$(ls -t "$root"/src/paradiff/{core,io,models/*,pipeline}/*.h | head -1)
objects=()
pids=()
for src in "${sources[@]}"; do
  obj="$out/objects/${src//\//_}.o"
  objects+=("$obj")
  if [[ ! -f $obj || $root/src/paradiff/$src -nt $obj || $newest_header -nt $obj ]]; then
    "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$root/src/paradiff/$src" -o "$obj" &
    pids+=($!)
    if (( ${#pids[@]} >= 2 )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
build() {
  "$cxx" "${flags[@]}" -fsanitize=fuzzer -DPARADIFF_SOURCE_DIR="\"$root\"" \
    "$root/fuzz/$1_fuzz.cc" "${objects[@]}" "${libs[@]}" -o "$out/$1_fuzz"
}

if (( $# > 0 )); then
  [[ " ${targets[*]} " == *" $1 "* ]] || {
    echo "fuzz.sh: unknown target '$1' (targets: ${targets[*]})" >&2
    exit 1
  }
  selected=("$1")
  shift
else
  selected=("${targets[@]}")
fi
for t in "${selected[@]}"; do build "$t"; done
if (( $# > 0 )); then
  exec "$out/${selected[0]}_fuzz" "$@"
fi

# seed NAME HEADER [DATA_BYTES]: a safetensors image with DATA_BYTES bytes of data ('?', 0x3f).
seed() {
  local n=${#2}
  {
    printf "$(printf '\\%03o' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) \
      $((n >> 24 & 255)) 0 0 0 0)"
    printf '%s' "$2"
    head -c "${3:-0}" /dev/zero | tr '\0' '?'
  } >"$out/seeds/safetensors_header/$1"
}
mkdir -p "$out/seeds/safetensors_header"
seed valid '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}}' 14
seed every_dtype '{"bool":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]},"u8":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"i8":{"dtype":"I8","shape":[1],"data_offsets":[2,3]},"i16":{"dtype":"I16","shape":[1],"data_offsets":[3,5]},"u16":{"dtype":"U16","shape":[1],"data_offsets":[5,7]},"i32":{"dtype":"I32","shape":[1],"data_offsets":[7,11]},"u32":{"dtype":"U32","shape":[1],"data_offsets":[11,15]},"i64":{"dtype":"I64","shape":[1],"data_offsets":[15,23]},"u64":{"dtype":"U64","shape":[1],"data_offsets":[23,31]},"f16":{"dtype":"F16","shape":[1],"data_offsets":[31,33]},"bf16":{"dtype":"BF16","shape":[1],"data_offsets":[33,35]},"f32":{"dtype":"F32","shape":[1],"data_offsets":[35,39]},"f64":{"dtype":"F64","shape":[1],"data_offsets":[39,47]},"e4m3":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[47,48]},"e5m2":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[48,49]}}' 49
seed metadata '{"__metadata__":{"format":"pt"},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}   ' 4
seed empty_tensors '{"e":{"dtype":"F16","shape":[0,3],"data_offsets":[0,0]},"w":{"dtype":"I64","shape":[1,1,1,1,1,1,1],"data_offsets":[0,8]}}' 8
seed no_tensors '{}      '
seed overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
seed array '[{"dtype":"F32"}]'

# The charsmap of the T5 fixture (nmt_nfkc), behind a first byte that keeps a short text ahead of
# it: a real trie for the fuzzer to damage. Decoded from the fixture's tokenizer.json here, so no
# binary file lives in the repository.
mkdir -p "$out/seeds/precompiled_charsmap"
{
  printf '\002'
  printf 'A photo of caf\xc3\xa9 \xef\xbc\xa1\xc2\xbd\xcc\x88 \xe2\x91\xa0 xyz'
  sed -n 's/.*"precompiled_charsmap": *"\([^"]*\)".*/\1/p' \
    "$root/tests/fixtures/tokenizers/t5_json/tokenizer.json" | head -1 | base64 -d
} >"$out/seeds/precompiled_charsmap/t5_nmt_nfkc"

# Every config.json of the fixtures and the bundled model: real configs to mutate.
mkdir -p "$out/seeds/config_json"
while IFS= read -r -d '' config; do
  cp "$config" "$out/seeds/config_json/$(echo "${config#"$root"/}" | tr / _)"
done < <(find "$root/tests/fixtures" "$root/models" -name '*config*.json' -print0)

# The repository's small PNGs (the docs' images are larger than max_len), as seeds.
mkdir -p "$out/seeds/png"
while IFS= read -r -d '' image; do
  cp "$image" "$out/seeds/png/$(echo "${image#"$root"/}" | tr / _)"
done < <(find "$root/docs" "$root/tests" "$root/models" -name '*.png' -size -64k -print0)

# The legacy BPE fixtures (CLIP's and Qwen2's vocab.json + NUL + merges.txt).
mkdir -p "$out/seeds/tokenizer_files"
for dir in "$root/tests/fixtures/flux_pipeline/tiny/tokenizer" "$root/tests/fixtures/tokenizers/qwen2_legacy"; do
  { cat "$dir/vocab.json"; printf '\0'; cat "$dir/merges.txt"; } \
    >"$out/seeds/tokenizer_files/$(basename "$(dirname "$dir")")_$(basename "$dir")"
done

declare -A max_len=([safetensors_header]=4096 [tokenizer_json]=16384
                    [precompiled_charsmap]=300000 [tokenizer_text]=2048 [config_json]=16384
                    [png]=65536 [tokenizer_files]=65536)
declare -A dict=([safetensors_header]=safetensors_header.dict [tokenizer_json]=tokenizer_json.dict)
status=0
for t in "${selected[@]}"; do
  mkdir -p "$out/corpus/$t" "$out/seeds/$t"
  dirs=("$out/corpus/$t" "$out/seeds/$t")
  [[ -d $root/fuzz/corpus/$t ]] && dirs+=("$root/fuzz/corpus/$t")
  extra=()
  [[ -n ${dict[$t]:-} ]] && extra+=(-dict="$root/fuzz/${dict[$t]}")
  echo "fuzz.sh: $t for ${seconds}s (corpus $out/corpus/$t)"
  "$out/${t}_fuzz" -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 \
    -rss_limit_mb=2048 "${extra[@]}" -artifact_prefix="$out/" -print_final_stats=1 \
    "${dirs[@]}" || status=$?
  (( status == 0 )) || break
done
exit "$status"
