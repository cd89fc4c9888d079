#!/usr/bin/env bash
# Runs $PARADIFF_REAL_BIN with PARADIFF_BF16_ARITHMETIC=native on rank 0 and fp32 on the others:
# a job whose ranks would compute bf16 differently (tests/CMakeLists.txt,
# cli.mpi_ulysses_bf16_ranks_agree), as on hosts with unlike CPUs.
set -euo pipefail
if [[ "${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-0}}" == 0 ]]; then
  export PARADIFF_BF16_ARITHMETIC=native
else
  export PARADIFF_BF16_ARITHMETIC=fp32
fi
exec "$PARADIFF_REAL_BIN" "$@"
