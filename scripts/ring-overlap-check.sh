#!/usr/bin/env bash
# Ring p2p overlap across two simulated hosts over a capped link (docs/benchmarks.md, "Overlap"):
# makes two hosts (scripts/simulated-hosts.sh: network namespaces joined by a veth pair whose rate
# tc's token bucket caps), runs `paradiff bench` with one rank per host over OpenMPI's TCP
# transport for Ulysses, ring p2p (progress thread), ring p2p (tests between chunks), ring
# alltoall and ring allgather (two bench runs, one per --ring-progress, each timing Ulysses too:
# a ring row's "vs Ulysses" is against its own run's), prints one markdown table, and removes the
# hosts on exit, failure or interruption. Needs root; exits 77 when the namespaces (or the rate cap) cannot be made.
#
#   scripts/ring-overlap-check.sh [--rate 1gbit] [--steps 3] [--dtype fp32] [--image-tokens 4096]
#       [--text-tokens 256] [--double-layers 2] [--single-layers 4]
#
# PARADIFF_BIN names the binary (default build/paradiff); one kernel thread per rank. Extra
# OpenMPI settings (OMPI_MCA_btl_tcp_*) may be set in the environment. The machine is shared:
# the load average before and after is printed with the table.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export PARADIFF_BIN=${PARADIFF_BIN:-$root/build/paradiff}

rate=1gbit steps=3 dtype=fp32 image=4096 text=256 double=2 single=4
inside=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --inside) inside=1; shift; continue ;;
    --rate | --steps | --dtype | --image-tokens | --text-tokens | --double-layers | --single-layers)
      if [[ $# -lt 2 ]]; then
        echo "ring-overlap-check: $1 needs a value" >&2
        exit 2
      fi ;;
    *)
      echo "ring-overlap-check: unknown argument '$1'" >&2
      echo "usage: ring-overlap-check.sh [--rate RATE] [--steps N] [--dtype fp32|bf16]" \
        "[--image-tokens N] [--text-tokens N] [--double-layers N] [--single-layers N]" >&2
      exit 2 ;;
  esac
  case $1 in
    --rate) rate=$2 ;;
    --steps) steps=$2 ;;
    --dtype) dtype=$2 ;;
    --image-tokens) image=$2 ;;
    --text-tokens) text=$2 ;;
    --double-layers) double=$2 ;;
    --single-layers) single=$2 ;;
  esac
  shift 2
done
for n in "$steps" "$image" "$text" "$double" "$single"; do
  if ! [[ "$n" =~ ^[0-9]+$ ]]; then
    echo "ring-overlap-check: '$n' is not a count" >&2
    exit 2
  fi
done
if [[ "$dtype" != fp32 && "$dtype" != bf16 ]]; then
  echo "ring-overlap-check: --dtype must be fp32 or bf16, got '$dtype'" >&2
  exit 2
fi
args=(--rate "$rate" --steps "$steps" --dtype "$dtype" --image-tokens "$image"
  --text-tokens "$text" --double-layers "$double" --single-layers "$single")

if [[ $inside -eq 0 ]]; then
  if [[ ! -x "$PARADIFF_BIN" ]]; then
    echo "ring-overlap-check: $PARADIFF_BIN not found: build first or set PARADIFF_BIN" >&2
    exit 2
  fi
  # One slot per host: rank 0 on host A, rank 1 on host B, every transfer crosses the link.
  exec "$here/simulated-hosts.sh" --slots 1 --rate "$rate" "$here/ring-overlap-check.sh" \
    --inside "${args[@]}"
fi

# Inside simulated host A.
export PARADIFF_NETWORK=$SIM_SUBNET PARADIFF_THREADS=1 OMP_NUM_THREADS=1
export OMPI_MCA_btl=${OMPI_MCA_btl:-vader,self,tcp}
tmp=$(mktemp -d /tmp/ring-overlap.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
link_bytes() {
  local stats=/sys/class/net/$SIM_VETH_A/statistics
  echo $(($(cat "$stats/tx_bytes") + $(cat "$stats/rx_bytes")))
}
bench() {  # bench OUTPUT RING_PROGRESS MODES
  local out=$1 progress=$2 modes=$3 before status
  before=$(link_bytes)
  timeout -k 5 1200 "$here/paradiff-run" --hostfile "$SIM_HOSTFILE" -n 2 bench --threads 1 \
    --dtype "$dtype" --image-tokens "$image" --text-tokens "$text" --double-layers "$double" \
    --single-layers "$single" --steps "$steps" --ring-progress "$progress" --modes "$modes" \
    >"$out" 2>"$out.err"
  status=$?
  if [[ $status -ne 0 ]]; then
    cat "$out" "$out.err" >&2
    echo "ring-overlap-check: bench ($progress, $modes) failed with status $status" >&2
    exit 1
  fi
  echo $(($(link_bytes) - before)) >"$out.link"
}
load_before=$(uptime)
bench "$tmp/thread" thread ulysses,ring
bench "$tmp/test" test ulysses,ring
load_after=$(uptime)

# A bench row's cells (| name | ms | steps/s | peak GB | sent MB | wait | ...): name, ms, MB, wait.
row() {
  awk -F'|' -v name="$2" '{ n = $2; gsub(/^ +| +$/, "", n) } n == name {
    for (i = 3; i <= 7; i++) gsub(/^ +| +$/, "", $i); print $3 "|" $6 "|" $7; exit }' "$1"
}
# Each run's own Ulysses row is the reference for its ring rows (the load changes between runs).
ulysses_ms() {
  local cells
  cells=$(row "$1" "ulysses 2")
  [[ -n "$cells" ]] || { cat "$1" >&2; echo "ring-overlap-check: no Ulysses row" >&2; exit 1; }
  echo "${cells%%|*}"
}

echo "model: $(sed -n 's/^model: //p' "$tmp/thread")"
cpu() { sed -n "s/^$1[[:space:]]*: //p" /proc/cpuinfo | head -1; }
echo "cpu: $(cpu 'model name'), family $(cpu 'cpu family') model $(cpu model)," \
  "$(nproc --all) cores"
echo "link: veth pair between two network namespaces, tc tbf rate $rate each way;" \
  "1 rank per host, OpenMPI btl $OMPI_MCA_btl"
echo "load before: ${load_before##*load average: }; after: ${load_after##*load average: }"
echo "link bytes (both directions, warm-up + $steps forwards per backend):" \
  "thread run $(cat "$tmp/thread.link"), test run $(cat "$tmp/test.link")"
echo "two bench runs (--ring-progress thread, then test), each with its own Ulysses reference:" \
  "ulysses 2 took $(ulysses_ms "$tmp/thread") ms in the first, $(ulysses_ms "$tmp/test") ms in" \
  "the second"
echo
echo "| Mode | Time / Step (ms) | vs Ulysses | Sent / Rank / Step (MB) | Comm Wait |"
echo "|---|---|---|---|---|"
print_row() {  # print_row LABEL FILE BENCH_ROW_NAME: time against FILE's Ulysses
  local cells ms mb wait reference
  reference=$(ulysses_ms "$2")
  cells=$(row "$2" "$3")
  if [[ -z "$cells" ]]; then
    cat "$2" >&2
    echo "ring-overlap-check: no row '$3'" >&2
    exit 1
  fi
  IFS='|' read -r ms mb wait <<<"$cells"
  printf '| %s | %s | %.2fx | %s | %s |\n' "$1" "$ms" "$(awk -v a="$ms" -v b="$reference" \
    'BEGIN { print a / b }')" "$mb" "$wait"
}
print_row "ulysses 2" "$tmp/thread" "ulysses 2"
print_row "ring 2 (p2p, progress thread)" "$tmp/thread" "ring 2 (p2p)"
print_row "ring 2 (p2p, tests between chunks)" "$tmp/test" "ring 2 (p2p)"
print_row "ring 2 (alltoall)" "$tmp/thread" "ring 2 (alltoall)"
print_row "ring 2 (allgather)" "$tmp/thread" "ring 2 (allgather)"
