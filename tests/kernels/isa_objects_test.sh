#!/usr/bin/env bash
# The avx2 variants of the kernels (cmake/KernelIsa.cmake, paradiff_isa_kernel) hold no AVX-512
# instruction: no zmm register in any *_avx2.cc.o; and the check can see one: the avx512
# activations variant does use zmm. And no variant object defines a linker-visible symbol outside
# its level's namespace (one the linker could merge with another level's copy).
#   isa_objects_test.sh <folder of the generated variants' objects>
set -euo pipefail
dir=$1
shopt -s nullglob
avx2=("$dir"/*_avx2.cc.o)
if [ ${#avx2[@]} -eq 0 ]; then
  echo "no *_avx2.cc.o under $dir" >&2
  exit 1
fi
status=0
for f in "${avx2[@]}"; do
  n=$(objdump -d --no-show-raw-insn "$f" | grep -c zmm || true)
  echo "$(basename "$f"): $n zmm instruction(s)"
  [ "$n" -eq 0 ] || status=1
done
n=$(objdump -d --no-show-raw-insn "$dir/activations_avx512.cc.o" | grep -c zmm || true)
echo "activations_avx512.cc.o: $n zmm instruction(s)"
[ "$n" -gt 0 ] || status=1
for f in "$dir"/*.cc.o; do
  case $(basename "$f") in
    *_avx512_bf16.cc.o) ns=isa_avx512_bf16 ;;
    *_avx512.cc.o) ns=isa_avx512 ;;
    *_avx2.cc.o) ns=isa_avx2 ;;
    *) ns=isa_portable ;;
  esac
  # Global or weak definitions (T, W, V, u, B, D, R), except the C++ personality reference.
  outside=$(nm -C --defined-only "$f" | awk '$2 ~ /^[TWVuBDR]$/' |
            grep -v "paradiff::kernels::$ns::" | grep -v "DW.ref.__gxx_personality_v0" || true)
  if [ -n "$outside" ]; then
    echo "$(basename "$f") defines symbols outside paradiff::kernels::$ns:"
    echo "$outside"
    status=1
  fi
done
exit $status
