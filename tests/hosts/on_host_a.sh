#!/usr/bin/env bash
# The body of tests/hosts/hosts_test.sh, run inside simulated host A (see there).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$here/../../scripts/paradiff-run
export PARADIFF_NETWORK=$SIM_SUBNET
tmp=$(mktemp -d /tmp/hosts_test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "hosts_test: FAILED: $*" >&2
  exit 1
}
# Bytes that crossed the link, both directions (host A's end: sent + received).
link_bytes() {
  local stats=/sys/class/net/$SIM_VETH_A/statistics
  echo $(( $(cat "$stats/tx_bytes") + $(cat "$stats/rx_bytes") ))
}
# The pid of a paradiff rank running in host B, once there is one (empty after 30 s).
remote_rank_pid() {
  local pid
  for _ in $(seq 300); do
    for pid in $(ip netns pids "$SIM_HOST_B"); do
      if [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(readlink -f "$PARADIFF_BIN")" ]]; then
        echo "$pid"
        return
      fi
    done
    sleep 0.1
  done
}
# Milliseconds since the epoch.
now() { date +%s%3N; }
# The job that began at $2 (ms) ended with status $1: non-zero, within $3 s, output matching $4.
check_ended() {
  local status=$1 ms=$(( $(now) - $2 )) limit=$3 message=$4 seconds
  seconds=$((ms / 1000)).$(printf '%03d' $((ms % 1000)))
  cat "$tmp/out"
  echo "job_ended_after_s: $seconds (status $status, limit $limit s)"
  [[ $status -ne 0 ]] || fail "the job exited with status 0"
  [[ $status -ne 124 ]] || fail "the job hung (ended by timeout)"
  (( ms < limit * 1000 )) || fail "the job took $seconds s to end (limit $limit s)"
  grep -Eq "$message" "$tmp/out" || fail "no message matching /$message/"
}
forward=(transformer-forward --model "$HOSTS_MODEL" --inputs "$HOSTS_INPUTS")

case "$1" in
  cp)
    ranks=$2
    shift 2
    repeat=5
    "$PARADIFF_BIN" "${forward[@]}" --output "$tmp/sp.safetensors" >/dev/null ||
      fail "the single-process run failed"
    before=$(link_bytes)
    timeout -k 5 100 "$run" --hostfile "$SIM_HOSTFILE" -n "$ranks" "${forward[@]}" \
      --output "$tmp/cp.safetensors" --repeat "$repeat" "$@" >"$tmp/out" 2>&1
    status=$?
    crossed=$(( $(link_bytes) - before ))
    cat "$tmp/out"
    [[ $status -eq 0 ]] || fail "the run across the hosts exited with status $status"
    grep -q "sent_bytes_match_theory: yes" "$tmp/out" || fail "sent bytes differ from theory"
    expected=$(sed -n 's/^expected_sent_bytes_per_rank: \([0-9]*\).*/\1/p' "$tmp/out")
    [[ -n "$expected" && "$expected" -gt 0 ]] || fail "no theoretical volume printed"
    # Per forward (the warm-up and the timed ones), the link carries at least `expected`, the
    # largest rank's volume: with one rank per host all of it crosses; with unified 2x2 (ranks
    # 0, 1 on A and 2, 3 on B) the Ulysses exchange (S*H*D/2 elements per rank and attention
    # call) stays in a host but every rank's ring K/V block (also S*H*D/2) and 2/3 of its part
    # of the final gather cross, so the four ranks put >= 4 ring blocks on the link, more than
    # one rank's Ulysses + ring + gather. mpirun's own traffic is a few tens of kB.
    least=$(( (repeat + 1) * expected ))
    # --fully-shard-degree: every rank also gathers the others' shards of each block, and with
    # one rank of each shard group per host all of it crosses the link.
    gathered=$(sed -n 's/^fully_shard: .*gathered_bytes_per_rank \([0-9]*\).*/\1/p' "$tmp/out")
    if [[ " $* " == *" --fully-shard-degree "* ]]; then
      [[ -n "$gathered" && "$gathered" -gt 0 ]] || fail "no gathered block weights printed"
      least=$(( least + (repeat + 1) * gathered ))
    fi
    echo "link_bytes: $crossed (both directions, $((repeat + 1)) forwards; at least $least)"
    [[ $crossed -ge $least ]] || fail "only $crossed bytes crossed the link, expected >= $least"
    "$PARADIFF_BIN" compare "$tmp/cp.safetensors" "$tmp/sp.safetensors" --tolerance 1e-5 ||
      fail "the output across the hosts differs from the single process"
    ;;
  kill-remote-rank | cut-link)
    what=$1
    timeout -k 5 75 "$run" --hostfile "$SIM_HOSTFILE" -n 2 "${forward[@]}" \
      --output "$tmp/cp.safetensors" --repeat 100000 --ulysses-degree 2 >"$tmp/out" 2>&1 &
    job=$!
    pid=$(remote_rank_pid)
    [[ -n "$pid" ]] || fail "no paradiff rank appeared in host $SIM_HOST_B"
    # Mid-run: the ranks have loaded the model and are exchanging activations.
    start_bytes=$(link_bytes)
    for _ in $(seq 300); do
      (( $(link_bytes) - start_bytes > 1000000 )) && break
      kill -0 "$job" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$job" 2>/dev/null || { cat "$tmp/out"; fail "the job ended before the fault"; }
    t0=$(now)
    if [[ $what == kill-remote-rank ]]; then
      echo "killing rank process $pid in host $SIM_HOST_B"
      kill -9 "$pid" || fail "cannot kill $pid"
      limit=30
      message="rank 1 failed: killed by signal 9"
    else
      echo "cutting the link: $SIM_VETH_B down in host $SIM_HOST_B"
      ip -n "$SIM_HOST_B" link set "$SIM_VETH_B" down
      limit=60
      message="lost communication with a remote daemon"
    fi
    wait "$job"
    check_ended $? "$t0" "$limit" "$message"
    ;;
  remote-rank-error)
    # PARADIFF_BIN is tests/fault_injection: rank 1 (host B) throws while rank 0 waits.
    t0=$(now)
    timeout -k 5 75 "$run" --hostfile "$SIM_HOSTFILE" -n 2 throw >"$tmp/out" 2>&1
    check_ended $? "$t0" 30 "rank 1 failed: injected failure"
    ;;
esac
