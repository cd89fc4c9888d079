#!/usr/bin/env bash
# Runs $PARADIFF_REAL_BIN with PARADIFF_BF16_ARITHMETIC=$RANK0_BF16 (default native) on rank 0 and
# $OTHER_RANKS_BF16 (default fp32) on the others: a job whose ranks would compute bf16 differently,
# as on hosts with unlike CPUs, or where one rank's setting is wrong (tests/CMakeLists.txt).
set -euo pipefail
if [[ "${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-0}}" == 0 ]]; then
  export PARADIFF_BF16_ARITHMETIC=${RANK0_BF16:-native}
else
  export PARADIFF_BF16_ARITHMETIC=${OTHER_RANKS_BF16:-fp32}
fi
exec "$PARADIFF_REAL_BIN" "$@"
