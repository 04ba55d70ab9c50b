#!/usr/bin/env bash
# A real single-node SLURM cluster for the tests: slurmctld + slurmd + munge, one partition
# `debug` on this host with two GPU gres (plain files: they schedule, they compute nothing).
#   tests/slurm/start.sh DIR   install the packages where missing (Debian/Ubuntu, as root),
#                              write DIR/slurm.conf and start the daemons; prints
#                              `export SLURM_CONF=DIR/slurm.conf` (the clients need it)
#   tests/slurm/stop.sh DIR    stop them
set -euo pipefail
dir=$(realpath -m "${1:?usage: start.sh DIR}")
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "start.sh: SLURM is not installed and cannot be (needs root and apt-get)" >&2
    exit 3
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi
mkdir -p "$dir"/state "$dir"/spool "$dir"/munge
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
: > "$dir/gpu0"; : > "$dir/gpu1"
sed -e "s|@DIR@|$dir|g" -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM@|$mem|g" \
  "$here/slurm.conf.in" > "$dir/slurm.conf"
sed -e "s|@DIR@|$dir|g" -e "s|@HOST@|$host|g" "$here/gres.conf.in" > "$dir/gres.conf"
# munge: its own key and socket under DIR, so a system munged is left alone
if [ ! -f "$dir/munge/munge.key" ]; then
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$dir/munge/munge.key"
fi
chmod 700 "$dir/munge"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
  --seed-file="$dir/munge/munged.seed"
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$dir/slurm.conf" -i
slurmd -f "$dir/slurm.conf"
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "^idle"; then
    echo "export SLURM_CONF=$dir/slurm.conf"
    exit 0
  fi
  sleep 0.5
done
echo "start.sh: the node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
sinfo >&2 || true
exit 1
