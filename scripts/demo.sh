#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Sets up a fresh machine, builds, and runs the main job: 4 local ranks, dense allreduce
# against random-block sparse allreduce with error feedback, side by side over 1-64 MiB.
#   scripts/demo.sh                shared memory
#   scripts/demo.sh --net 1gbit    TCP over a loopback limited to 1 Gbit/s (slownet), a
#                                  cluster-like link where the network is the bottleneck
#   scripts/demo.sh --full         the whole performance suite (perf/run_suite)
# Extra arguments after -- go to the perf binary (e.g. -- -m dense,randomblock -D 0.01).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

net="" full=0 extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --net) net="$2"; shift 2 ;;
    --full) full=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [--net RATE] [--full] [-- perf args]" >&2; exit 2 ;;
  esac
done

spccl_install_packages "${spccl_apt_packages[@]}"
spccl_build
if [[ $full -eq 1 ]]; then
  exec "$SPCCL_ROOT/perf/run_suite" --build "$SPCCL_BUILD_DIR"
fi

perf="$SPCCL_BUILD_DIR/perf/sparse_all_reduce_perf"
mpirun=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 4)
args=(-b 1M -e 64M -f 4 -n 10 -w 2 -m dense,randomblock -D 0.015625 -F ef)
if [[ -z "$net" ]]; then
  echo "== 4 ranks, shared memory =="
  exec "${mpirun[@]}" "$perf" "${args[@]}" "${extra[@]}"
fi

tcp=(--mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
args=(-b 1M -e 64M -f 4 -n 3 -w 1 -m dense,randomblock -D 0.015625 -F ef)  # dense takes seconds at 1 Gbit/s
slownet=${SPCCL_SLOWNET:-$SPCCL_ROOT/scripts/slownet}
if [[ -x "$slownet" ]] && ip netns add spccl-probe$$ 2>/dev/null; then
  ip netns del spccl-probe$$
  echo "== 4 ranks, TCP over a $net loopback (slownet) =="
  exec "$slownet" "$net" -- "${mpirun[@]}" "${tcp[@]}" "$perf" "${args[@]}" "${extra[@]}"
fi
echo "== slownet is not available here (no $slownet, or 'ip netns' is not allowed):"
echo "== running over plain TCP loopback without a rate limit instead =="
exec "${mpirun[@]}" "${tcp[@]}" "$perf" "${args[@]}" "${extra[@]}"
