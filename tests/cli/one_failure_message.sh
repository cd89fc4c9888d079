#!/usr/bin/env bash
# Runs a job in which a rank fails and checks what the user sees: a non-zero status, exactly one
# "paradiff: rank R failed: ..." line matching <regex>, and none of OpenMPI's noise (help
# banners, ORTE_ERROR_LOG, "Data unpack would read past end of buffer", the "mpirun has exited
# due to process rank ..." and "MPI_ABORT was invoked" banners).
#   one_failure_message.sh <regex> <command> [args...]
pattern=$1
shift
output=$("$@" 2>&1)
status=$?
echo "$output"
fail() {
  echo "one_failure_message.sh: $*" >&2
  exit 1
}
[[ $status -ne 0 ]] || fail "exit status 0, expected a failure"
count=$(grep -c "paradiff: rank [0-9]* failed: " <<<"$output")
[[ $count -eq 1 ]] || fail "$count 'paradiff: rank R failed' lines, expected exactly 1"
grep -Eq -- "paradiff: rank [0-9]+ failed: .*$pattern" <<<"$output" ||
  fail "the failure line does not match /$pattern/"
for noise in ORTE_ERROR_LOG "Data unpack would read past end of buffer" "mpirun has exited" \
  "MPI_ABORT was invoked" "Primary job" "mpirun noticed" "mpirun detected" "sent help message" \
  "^-----"; do
  if grep -Eq -- "$noise" <<<"$output"; then fail "OpenMPI noise in the output: /$noise/"; fi
done
echo "one_failure_message.sh: one failure line, no OpenMPI noise (exit status $status)"
