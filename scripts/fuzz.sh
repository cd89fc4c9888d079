#!/usr/bin/env bash
# Builds the safetensors header fuzzer (clang++ with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer) into build-fuzz/ and runs it for a bounded time.
#
#   scripts/fuzz.sh                 # 60 s
#   FUZZ_SECONDS=600 scripts/fuzz.sh
#   scripts/fuzz.sh build-fuzz/crash-<hash>   # replay one input
#
# Only the sources the reader needs are compiled (core without threads.cc, io/safetensors.cc,
# io/json_config.cc): the full library needs OpenMP and oneDNN, which the fuzzer does not. The
# seed corpus is generated here, so no binary files live in the repository; inputs the fuzzer
# finds interesting accumulate in build-fuzz/corpus/ across runs. Exits non-zero, with the
# reproducer saved as build-fuzz/crash-*, leak-* or timeout-*, when the fuzzer finds a problem.
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

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Wno-unknown-pragmas
       -fsanitize=address,undefined -fno-sanitize-recover=undefined -I"$root/src")
sources=(core/dtype.cc core/error.cc core/memory.cc core/shape.cc core/tensor.cc
         io/json_config.cc io/safetensors.cc)
mkdir -p "$out/objects" "$out/seeds" "$out/corpus"

# Compile what changed (a source newer than its object, or any core/io header newer), two at a
# time.
newest_header=$(ls -t "$root"/src/paradiff/core/*.h "$root"/src/paradiff/io/*.h | head -1)
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
"$cxx" "${flags[@]}" -fsanitize=fuzzer "$root/fuzz/safetensors_header_fuzz.cc" "${objects[@]}" \
  -o "$out/safetensors_header_fuzz"

if (( $# > 0 )); then
  exec "$out/safetensors_header_fuzz" "$@"
fi

# seed NAME HEADER [DATA_BYTES]: a safetensors image with DATA_BYTES bytes of data ('?', 0x3f).
seed() {
  local n=${#2}
  {
    printf "$(printf '\\%03o' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) \
      $((n >> 24 & 255)) 0 0 0 0)"
    printf '%s' "$2"
    head -c "${3:-0}" /dev/zero | tr '\0' '?'
  } >"$out/seeds/$1"
}
seed valid '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}}' 14
seed every_dtype '{"bool":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]},"u8":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"i8":{"dtype":"I8","shape":[1],"data_offsets":[2,3]},"i16":{"dtype":"I16","shape":[1],"data_offsets":[3,5]},"u16":{"dtype":"U16","shape":[1],"data_offsets":[5,7]},"i32":{"dtype":"I32","shape":[1],"data_offsets":[7,11]},"u32":{"dtype":"U32","shape":[1],"data_offsets":[11,15]},"i64":{"dtype":"I64","shape":[1],"data_offsets":[15,23]},"u64":{"dtype":"U64","shape":[1],"data_offsets":[23,31]},"f16":{"dtype":"F16","shape":[1],"data_offsets":[31,33]},"bf16":{"dtype":"BF16","shape":[1],"data_offsets":[33,35]},"f32":{"dtype":"F32","shape":[1],"data_offsets":[35,39]},"f64":{"dtype":"F64","shape":[1],"data_offsets":[39,47]},"e4m3":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[47,48]},"e5m2":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[48,49]}}' 49
seed metadata '{"__metadata__":{"format":"pt"},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}   ' 4
seed empty_tensors '{"e":{"dtype":"F16","shape":[0,3],"data_offsets":[0,0]},"w":{"dtype":"I64","shape":[1,1,1,1,1,1,1],"data_offsets":[0,8]}}' 8
seed no_tensors '{}      '
seed overlap '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
seed array '[{"dtype":"F32"}]'

echo "fuzz.sh: running for ${seconds}s (corpus $out/corpus, seeds $out/seeds)"
"$out/safetensors_header_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -dict="$root/fuzz/safetensors_header.dict" -artifact_prefix="$out/" \
  -print_final_stats=1 "$out/corpus" "$out/seeds"
