#!/usr/bin/env bash
# Two simulated hosts on this machine: two network namespaces joined by a veth pair, each with
# its own hostname, for running paradiff across "hosts" over OpenMPI's TCP transport without a
# second machine (docs/parallelism.md, "Running on real hosts"). Needs root (CAP_NET_ADMIN),
# `ip` (iproute2) and `unshare` (util-linux).
#
#   scripts/simulated-hosts.sh [--slots N] [--rate RATE] COMMAND [ARGS...]
#
# creates hosts pd<pid>a (10.77.0.1/24, veth pd<pid>a0) and pd<pid>b (10.77.0.2/24, veth
# pd<pid>b0), caps the link at RATE in each direction when --rate is given (tc's token-bucket
# filter on both veth ends; RATE as tc writes it: 1gbit, 100mbit, 500kbit; needs `tc`), writes a
# hostfile naming them with N slots each (default 2), runs COMMAND inside
# host A (where mpirun is started) with, in its environment:
#   SIM_HOST_A, SIM_HOST_B      host (and namespace) names
#   SIM_VETH_A, SIM_VETH_B      the two ends of the link
#   SIM_HOSTFILE                the hostfile
#   SIM_SUBNET                  10.77.0.0/24
#   SIM_RATE                    the cap (RATE), or empty for an uncapped link
#   OMPI_MCA_plm_rsh_agent      scripts/netns-rsh (starts the remote daemon in host B, no ssh)
#   OMPI_MCA_plm_rsh_no_tree_spawn=1
# and removes everything on exit, failure or interruption included: every process still running
# in either namespace is killed, then the namespaces (and with them the veth pair) are deleted.
# Exit status: COMMAND's, 77 (the tests' "skipped") when the namespaces cannot be made (or --rate
# is given without `tc`), 2 for bad arguments.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
slots=2
rate=
usage() {
  echo "usage: simulated-hosts.sh [--slots N] [--rate RATE] COMMAND [ARGS...]" >&2
  exit 2
}
while [[ "${1:-}" == "--slots" || "${1:-}" == "--rate" ]]; do
  [[ $# -ge 2 ]] || { echo "simulated-hosts: $1 needs a value" >&2; usage; }
  if [[ "$1" == "--slots" ]]; then slots=$2; else rate=$2; fi
  shift 2
done
[[ $# -gt 0 ]] || usage
if ! [[ "$slots" =~ ^[1-9][0-9]*$ ]]; then
  echo "simulated-hosts: --slots needs a positive number, got '$slots'" >&2
  exit 2
fi
# The token bucket's depth: 1 ms at the rate, at least 64 KiB (one segmentation-offloaded TCP
# packet must fit or tbf drops it); packets queue at most 50 ms before being dropped.
burst_bytes=0
if [[ -n "$rate" ]]; then
  if ! [[ "$rate" =~ ^([1-9][0-9]{0,8})(bit|kbit|mbit|gbit)$ ]]; then
    echo "simulated-hosts: --rate '$rate' is not a rate such as 1gbit, 100mbit or 500kbit" >&2
    exit 2
  fi
  case ${BASH_REMATCH[2]} in
    bit) scale=1 ;;
    kbit) scale=1000 ;;
    mbit) scale=1000000 ;;
    gbit) scale=1000000000 ;;
  esac
  burst_bytes=$(( BASH_REMATCH[1] * scale / 8 / 1000 ))
  (( burst_bytes >= 65536 )) || burst_bytes=65536
fi
skip() {
  echo "simulated-hosts: SKIPPED: $*" >&2
  exit 77
}
[[ $(id -u) -eq 0 ]] || skip "network namespaces need root (running as uid $(id -u))"
command -v ip >/dev/null || skip "no 'ip' command (install iproute2)"
command -v unshare >/dev/null || skip "no 'unshare' command (install util-linux)"
command -v mpirun >/dev/null || skip "no mpirun (install openmpi-bin)"
[[ -z "$rate" ]] || command -v tc >/dev/null ||
  skip "--rate $rate needs the 'tc' command (install iproute2)"

host_a=pd$$a
host_b=pd$$b
veth_a=${host_a}0
veth_b=${host_b}0
subnet=10.77.0.0/24
workdir=$(mktemp -d /tmp/simulated-hosts.XXXXXX)

teardown() {
  local ns pid
  for ns in "$host_a" "$host_b"; do
    # Processes outlive their namespace: end whatever the run left behind (a hung rank, an
    # orphaned daemon) before deleting it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for ns in "$host_a" "$host_b"; do
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$workdir"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Namespaces left by a run that was killed outright (SIGKILL gives no chance to clean up): their
# creator's pid is in the name.
for ns in $(ip netns list 2>/dev/null | grep -oE '^pd[0-9]+[ab]'); do
  owner=${ns:2:-1}
  if ! kill -0 "$owner" 2>/dev/null; then
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  fi
done
ip netns add "$host_a" 2>"$workdir/err" ||
  skip "cannot create a network namespace: $(cat "$workdir/err") (needs CAP_NET_ADMIN)"
ip netns add "$host_b" 2>"$workdir/err" ||
  skip "cannot create a network namespace: $(cat "$workdir/err")"
set -e
ip link add "$veth_a" netns "$host_a" type veth peer name "$veth_b" netns "$host_b"
ip -n "$host_a" addr add 10.77.0.1/24 dev "$veth_a"
ip -n "$host_b" addr add 10.77.0.2/24 dev "$veth_b"
for ns in "$host_a" "$host_b"; do
  ip -n "$ns" link set lo up
done
ip -n "$host_a" link set "$veth_a" up
ip -n "$host_b" link set "$veth_b" up
set +e
if [[ -n "$rate" ]]; then
  for end in "$host_a $veth_a" "$host_b $veth_b"; do
    read -r ns dev <<<"$end"
    tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst_bytes" latency 50ms \
      2>"$workdir/err" || skip "cannot cap $dev at $rate: $(cat "$workdir/err") (sch_tbf?)"
  done
fi
printf '%s slots=%s\n%s slots=%s\n' "$host_a" "$slots" "$host_b" "$slots" >"$workdir/hostfile"

export SIM_HOST_A=$host_a SIM_HOST_B=$host_b SIM_VETH_A=$veth_a SIM_VETH_B=$veth_b
export SIM_HOSTFILE=$workdir/hostfile SIM_SUBNET=$subnet SIM_RATE=$rate
export OMPI_MCA_plm_rsh_agent=$here/netns-rsh OMPI_MCA_plm_rsh_no_tree_spawn=1
# shellcheck disable=SC2016  # $0 and $@ are expanded by the inner sh
# In the background and waited for, so that a signal runs the traps at once, not after COMMAND.
ip netns exec "$host_a" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$host_a" "$@" <&0 &
wait $!
