#!/usr/bin/env bash
# Proof at scale (issue 13; not part of `make test`): a transformer of FLUX.1-dev's exact size
# (19 double + 38 single blocks, 3072 wide, 11.9 B parameters, 23.8 GB in bf16) run on a machine
# whose memory is smaller than its weights, and a smaller model of the same width sharded across
# two simulated hosts.
#
#   scripts/big-model-check.sh [SCRATCH]        (default SCRATCH: /var/tmp/paradiff-big)
#
# Environment: PARADIFF_BIN (default build/paradiff), PYTHON (default .venv-tools/bin/python, for
# the checkpoint writer only), THREADS (kernel threads per rank, default: cores / ranks),
# BUDGET_1 and BUDGET_2 (--max-memory of cases a and b, default 15GB and 13GB), CASES (default
# "a b c").
#
# 1. Writes, once, into SCRATCH (never into the repository): flux-dev-random/ (the full size,
#    sharded with an index, ~24 GB) and flux-5x10-random/ (5 double + 10 single blocks, ~6.4 GB),
#    each with its `-inputs.safetensors` for a 256x256 image (256 image + 512 text tokens), by
#    tools/big_model/write_random_flux_checkpoint.py.
# 2. Runs one `paradiff transformer-forward` (bf16 compute) per case:
#    a. 1 rank: the full model placed by accelerate's `auto` map with --max-memory BUDGET_1; what
#       does not fit is on "disk", streamed from the checkpoint at every forward with read-ahead;
#    b. 2 ranks, Ulysses on one host, one copy of the resident blocks shared by both ranks
#       (--share-weights on), the rest streamed from disk; its output is compared with a's;
#    c. the 5x10 model on two simulated hosts (scripts/simulated-hosts.sh), Ulysses 2 with
#       --fully-shard-degree 2: each host holds half of the blocks' weights and gathers the other
#       half block by block; compared with one process on the same model.
# 3. For each case: forward time, load time, weights held, peak RSS and PSS per rank and per
#    host (PSS split into the weights, the mapped checkpoint pages the kernel may drop, and the
#    rest), the host's largest memory in use (MemTotal - MemAvailable, sampled every 0.5 s), the
#    kernel's OOM-kill count (must not grow), and what a replicated design would hold. The table
#    is printed and written to SCRATCH/big-model-check.md (docs/memory.md quotes it).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
scratch=${1:-/var/tmp/paradiff-big}
bin=${PARADIFF_BIN:-$root/build/paradiff}
python=${PYTHON:-$root/.venv-tools/bin/python}
cases=${CASES:-a b c}
budget1=${BUDGET_1:-15GB}
budget2=${BUDGET_2:-13GB}
cores=$(nproc)

fail() {
  echo "big-model-check: FAILED: $*" >&2
  exit 1
}
[[ -x "$bin" ]] || fail "no paradiff binary at $bin (build it, or set PARADIFF_BIN)"
mkdir -p "$scratch" || fail "cannot create $scratch"
full=$scratch/flux-dev-random
small=$scratch/flux-5x10-random
out=$scratch/runs
mkdir -p "$out"

write_model() {  # folder, writer args...
  local folder=$1
  shift
  [[ -f "$folder-inputs.safetensors" ]] && return 0
  [[ -x "$python" ]] || fail "no Python at $python to write $folder (make .venv-tools, see README)"
  rm -rf "$folder"
  echo "writing $folder (once) ..."
  "$python" "$root/tools/big_model/write_random_flux_checkpoint.py" --out "$folder" "$@" ||
    fail "writing $folder"
}
write_model "$full"
write_model "$small" --double-layers 5 --single-layers 10

oom_kills() { awk '$1 == "oom_kill" { print $2 }' /proc/vmstat; }
# Samples MemTotal - MemAvailable every 0.5 s into $1 (largest value, bytes) until killed.
sample_memory() {
  local file=$1 high=0 used
  while :; do
    used=$(awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 } END { printf "%.0f\n", (t - a) * 1024 }' \
      /proc/meminfo)
    ((used > high)) && high=$used && echo "$high" >"$file"
    sleep 0.5
  done
}
gb() { awk -v b="${1:-0}" 'BEGIN { printf "%.2f", b / 1e9 }'; }
field() {  # log, regex with one group
  sed -n "s/$2/\1/p" "$1" | head -1
}

rows=()
run_case() {  # name, description, replicated-GB note, command...
  local name=$1 what=$2 replicated=$3
  shift 3
  local log=$out/$name.log high=$out/$name.memory kills status start seconds
  echo 0 >"$high"
  echo "== case $name: $what"
  echo "   $*"
  kills=$(oom_kills)
  sample_memory "$high" &
  local sampler=$!
  start=$(date +%s)
  "$@" >"$log" 2>&1
  status=$?
  seconds=$(($(date +%s) - start))
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
  local oom=$(($(oom_kills) - kills))
  grep -E "placement|loaded|forward_ms|weights:|fully_shard|pss_bytes|peak_rss|context_parallel|error" \
    "$log" | sed 's/^/   /'
  [[ $status -eq 0 ]] || fail "case $name exited with status $status (log: $log)"
  ((oom == 0)) || fail "case $name: the kernel killed $oom process(es) for memory"
  local fwd load pss pssw pssf host hostw hostf rss used
  fwd=$(field "$log" '^forward_ms: \([0-9.]*\).*')
  load=$(field "$log" '.*loaded .* in \([0-9.]*\) s .*')
  pss=$(field "$log" '^pss_bytes_per_rank: \([0-9]*\) .*')
  pssw=$(field "$log" '^pss_bytes_per_rank: [0-9]* (weights \([0-9]*\),.*')
  pssf=$(field "$log" '^pss_bytes_per_rank: .*file pages \([0-9]*\);.*')
  host=$(field "$log" '^pss_bytes_per_host: \([0-9]*\) .*')
  hostw=$(field "$log" '^pss_bytes_per_host: [0-9]* (weights \([0-9]*\),.*')
  hostf=$(field "$log" '^pss_bytes_per_host: .*file pages \([0-9]*\);.*')
  rss=$(field "$log" '^peak_rss_bytes_per_rank: \([0-9]*\) .*')
  used=$(cat "$high")
  rows+=("| $name | $what | $(awk -v m="$fwd" 'BEGIN { printf "%.1f", m / 1000 }') | $(awk -v s="${load:-0}" 'BEGIN { printf "%.0f", s }') | \
$(gb "$pss") = $(gb "$pssw") + $(gb "$pssf") + $(gb $((pss - pssw - pssf))) | \
$(gb "$host") = $(gb "$hostw") + $(gb "$hostf") + $(gb $((host - hostw - hostf))) | $(gb "$rss") | \
$(gb "$used") | $oom | $replicated |")
  echo "   case $name: ${seconds} s in all, host memory in use at most $(gb "$used") GB, OOM kills $oom"
}

compare() {  # a, b, tolerance, what
  local result
  result=$("$bin" compare "$1" "$2" --tolerance "$3" 2>&1) || fail "$4: $result"
  echo "   $4: $result"
  rows+=("|  | $4: ${result#sample: } |  |  |  |  |  |  |  |  |")
}

mpi_env=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
full_gb=$(awk '/total_size/ { gsub(/[^0-9]/, "", $2); printf "%.1f", $2 / 1e9 }' \
  "$full/diffusion_pytorch_model.safetensors.index.json")
small_gb=$(awk '/total_size/ { gsub(/[^0-9]/, "", $2); printf "%.1f", $2 / 1e9 }' \
  "$small/diffusion_pytorch_model.safetensors.index.json")
total_gb=$(awk '/^MemTotal:/ { printf "%.1f", $2 * 1024 / 1e9 }' /proc/meminfo)
forward=(transformer-forward --dtype bf16)

for c in $cases; do
  case $c in
    a)
      run_case a "1 rank, --max-memory 0=$budget1, the rest on disk" \
        "$full_gb + activations, of $total_gb in all" \
        "$bin" "${forward[@]}" --model "$full" --inputs "$full-inputs.safetensors" \
        --output "$out/a.safetensors" --threads "${THREADS:-$cores}" \
        --transformer-device-map auto --max-memory "0=$budget1"
      ;;
    b)
      run_case b "2 ranks Ulysses, one host, shared copy, --max-memory 0=$budget2, rest on disk" \
        "$(awk -v g="$full_gb" 'BEGIN { printf "%.1f", 2 * g }') (2 copies)" \
        "${mpi_env[@]}" PARADIFF_BIN="$bin" "$here/paradiff-run" -n 2 "${forward[@]}" \
        --model "$full" --inputs "$full-inputs.safetensors" --output "$out/b.safetensors" \
        --threads "${THREADS:-$((cores > 1 ? cores / 2 : 1))}" --ulysses-degree 2 \
        --share-weights on --transformer-device-map auto --max-memory "0=$budget2"
      [[ -f "$out/a.safetensors" ]] &&
        compare "$out/b.safetensors" "$out/a.safetensors" 2e-2 "b against a (bf16)"
      ;;
    c)
      run_case c1 "5x10 model, 1 rank (reference for c)" "$small_gb" \
        "$bin" "${forward[@]}" --model "$small" --inputs "$small-inputs.safetensors" \
        --output "$out/c1.safetensors" --threads "${THREADS:-$cores}"
      run_case c "5x10 model, 2 simulated hosts, Ulysses 2, --fully-shard-degree 2" \
        "$small_gb per host" \
        "$here/simulated-hosts.sh" --slots 1 bash -c "PARADIFF_NETWORK=\$SIM_SUBNET \
          ${mpi_env[*]} PARADIFF_BIN='$bin' '$here/paradiff-run' --hostfile \"\$SIM_HOSTFILE\" \
          -n 2 ${forward[*]} --model '$small' --inputs '$small-inputs.safetensors' \
          --output '$out/c.safetensors' --threads ${THREADS:-$((cores > 1 ? cores / 2 : 1))} \
          --ulysses-degree 2 --fully-shard-degree 2"
      compare "$out/c.safetensors" "$out/c1.safetensors" 2e-2 "c against c1 (bf16)"
      ;;
    *) fail "unknown case '$c' in CASES (a, b, c)" ;;
  esac
done

{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $cores cores, $total_gb GB;" \
    "$(date -u +%Y-%m-%d). Full model: $full_gb GB of bf16 weights; 5x10 model: $small_gb GB."
  echo
  echo "| case | run | forward (s) | load (s) | PSS / rank (GB) = weights + mapped checkpoint + rest" \
    "| PSS / host (GB), same split | peak RSS / rank (GB) | host memory in use, peak (GB)" \
    "| OOM kills | replicated design would hold (GB) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$scratch/big-model-check.md"
