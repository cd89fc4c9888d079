#!/usr/bin/env bash
# paradiff across two simulated hosts (scripts/simulated-hosts.sh: two network namespaces joined
# by a veth pair, OpenMPI over TCP between them, the remote daemon started by scripts/netns-rsh).
#
#   hosts_test.sh PARADIFF_BIN cp RANKS [MODE FLAGS...]   context parallel across the hosts equals
#                                                         the single process, bytes crossed the link
#                                                         (with --fully-shard-degree: the gathered
#                                                         block weights too)
#   hosts_test.sh PARADIFF_BIN kill-remote-rank           kill -9 of a rank on host B mid-run
#   hosts_test.sh PARADIFF_BIN cut-link                   host B's veth down mid-run
#   hosts_test.sh FAULT_INJECTION remote-rank-error       rank 1 (host B) fails with an error
#
# Exit 77 (skipped) where namespaces cannot be made.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [[ $# -lt 2 ]]; then
  echo "usage: hosts_test.sh PARADIFF_BIN cp|kill-remote-rank|cut-link|remote-rank-error [ARGS...]" >&2
  exit 2
fi
export PARADIFF_BIN=$1
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=vader,self,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none
export PARADIFF_THREADS=1 OMP_NUM_THREADS=1
fixture=$root/tests/fixtures/flux_transformer/guidance_batch2
export HOSTS_MODEL=$fixture/transformer HOSTS_INPUTS=$fixture/inputs.safetensors

case "$1" in
  cp)
    slots=$(( ($2 + 1) / 2 ))
    ;;
  kill-remote-rank | cut-link | remote-rank-error)
    slots=1
    ;;
  *)
    echo "hosts_test.sh: unknown case '$1'" >&2
    exit 2
    ;;
esac
exec "$root/scripts/simulated-hosts.sh" --slots "$slots" "$here/on_host_a.sh" "$@"
