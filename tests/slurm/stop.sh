#!/usr/bin/env bash
# Stop the cluster tests/slurm/start.sh DIR started (its daemons' pid files are under DIR).
set -uo pipefail
dir=$(realpath -m "${1:?usage: stop.sh DIR}")
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
exit 0
