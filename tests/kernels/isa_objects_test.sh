#!/usr/bin/env bash
# The avx2 variants of the kernels (cmake/KernelIsa.cmake, paradiff_isa_kernel) hold no AVX-512
# instruction: no zmm register in any *_avx2.cc.o; and the check can see one: the avx512
# activations variant does use zmm.
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
exit $status
