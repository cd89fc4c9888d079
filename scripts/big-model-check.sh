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
# "a b a8 b8 c").
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
#    a8, b8. As a and b, all in memory instead: --storage-dtype fp8 (diffusers'
#       enable_layerwise_casting(float8_e4m3fn, bfloat16): the GEMM weights in float8 e4m3, the
#       layers diffusers skips in bf16), b8's output compared with a8's;
#    c. the 5x10 model on two simulated hosts (scripts/simulated-hosts.sh), Ulysses 2 with
#       --fully-shard-degree 2: each host holds half of the blocks' weights and gathers the other
#       half block by block; compared with one process on the same model.
# 3. For each case: forward time, load time, weights held, peak RSS and PSS per rank and per
#    host (PSS split into the weights, the mapped checkpoint pages the kernel may drop, and the
#    rest), sampled every 0.5 s from start to end (the load included): the job's own memory that
#    the kernel cannot drop (anon + shmem PSS summed over its processes) and the machine's memory
#    in use (MemTotal - MemAvailable, other users' processes included), the kernel's OOM-kill count
#    (must not grow), and what a replicated design would hold. The table is printed and written
#    to SCRATCH/big-model-check.md (docs/memory.md quotes it).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
scratch=${1:-/var/tmp/paradiff-big}
bin=${PARADIFF_BIN:-$root/build/paradiff}
python=${PYTHON:-$root/.venv-tools/bin/python}
cases=${CASES:-a b a8 b8 c}
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
# Every 0.5 s until killed: the job's own memory, summed over every running process of the
# paradiff binary (Pss_Anon + Pss_Shmem of smaps_rollup: what the kernel cannot drop, shared
# pages divided among their processes), largest value into $1; and MemTotal - MemAvailable
# (everything on the machine, other users' processes included) into $2. Bytes.
sample_memory() {
  local job_file=$1 host_file=$2 job_high=0 host_high=0 job host pid exe
  local real_bin
  real_bin=$(readlink -f "$bin")
  while :; do
    job=0
    for pid in $(pgrep -x "$(basename "$real_bin")"); do
      exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
      [[ "$exe" == "$real_bin" ]] || continue
      job=$((job + $(awk '/^Pss_(Anon|Shmem):/ { s += $2 } END { printf "%.0f", s * 1024 }' \
        "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
    done
    host=$(awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 }
                END { printf "%.0f\n", (t - a) * 1024 }' /proc/meminfo)
    ((job > job_high)) && job_high=$job && echo "$job_high" >"$job_file"
    ((host > host_high)) && host_high=$host && echo "$host_high" >"$host_file"
    sleep 0.5
  done
}
gb() { awk -v b="${1:-0}" 'BEGIN { printf "%.2f", b / 1e9 }'; }
field() {  # log, regex with one group
  sed -n "s/$2/\1/p" "$1" | head -1
}

rows=()
run_case() {  # name, description, replicated-GB note (or copies:N), command...
  local name=$1 what=$2 replicated=$3
  shift 3
  local log=$out/$name.log high=$out/$name.memory job_high=$out/$name.job-memory kills status
  local start seconds
  echo 0 >"$high"
  echo 0 >"$job_high"
  echo "== case $name: $what"
  echo "   $*"
  kills=$(oom_kills)
  sample_memory "$job_high" "$high" &
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
  local fwd load pss pssw pssf host hostw hostf rss used job
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
  job=$(cat "$job_high")
  if [[ "$replicated" == copies:* ]]; then  # N copies of the weights this run prepared
    local copies=${replicated#copies:} weights
    weights=$(field "$log" '^weights: \([0-9]*\) bytes.*')
    replicated="$(gb $((copies * weights))) ($copies copies of $(gb "$weights"))"
  fi
  rows+=("| $name | $what | $(awk -v m="$fwd" 'BEGIN { printf "%.1f", m / 1000 }') | $(awk -v s="${load:-0}" 'BEGIN { printf "%.0f", s }') | \
$(gb "$pss") = $(gb "$pssw") + $(gb "$pssf") + $(gb $((pss - pssw - pssf))) | \
$(gb "$host") = $(gb "$hostw") + $(gb "$hostf") + $(gb $((host - hostw - hostf))) | $(gb "$rss") | \
$(gb "$job") | $(gb "$used") | $oom | $replicated |")
  echo "   case $name: ${seconds} s in all, the job's anon + shmem PSS at most $(gb "$job") GB," \
    "machine memory in use at most $(gb "$used") GB, OOM kills $oom"
}

compare() {  # a, b, tolerance, what
  local result
  result=$("$bin" compare "$1" "$2" --tolerance "$3" 2>&1) || fail "$4: $result"
  echo "   $4: $result"
  rows+=("|  | $4: ${result#sample: } |  |  |  |  |  |  |  |  |  |")
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
    a8)
      run_case a8 "1 rank, --storage-dtype fp8, all in memory" copies:1 \
        "$bin" "${forward[@]}" --model "$full" --inputs "$full-inputs.safetensors" \
        --output "$out/a8.safetensors" --threads "${THREADS:-$cores}" --storage-dtype fp8
      ;;
    b8)
      run_case b8 "2 ranks Ulysses, one host, shared copy, --storage-dtype fp8, all in memory" \
        copies:2 \
        "${mpi_env[@]}" PARADIFF_BIN="$bin" "$here/paradiff-run" -n 2 "${forward[@]}" \
        --model "$full" --inputs "$full-inputs.safetensors" --output "$out/b8.safetensors" \
        --threads "${THREADS:-$((cores > 1 ? cores / 2 : 1))}" --ulysses-degree 2 \
        --share-weights on --storage-dtype fp8
      [[ -f "$out/a8.safetensors" ]] &&
        compare "$out/b8.safetensors" "$out/a8.safetensors" 2e-2 "b8 against a8 (bf16, fp8 weights)"
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
    *) fail "unknown case '$c' in CASES (a, b, a8, b8, c)" ;;
  esac
done

{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $cores cores, $total_gb GB;" \
    "$(date -u +%Y-%m-%d). Full model: $full_gb GB of bf16 weights; 5x10 model: $small_gb GB."
  echo
  echo "| case | run | forward (s) | load (s) | PSS / rank (GB) = weights + mapped checkpoint + rest" \
    "| PSS / host (GB), same split | peak RSS / rank (GB) | job's anon + shmem PSS, peak (GB)" \
    "| machine memory in use, peak (GB) | OOM kills | replicated design would hold (GB) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$scratch/big-model-check.md"
