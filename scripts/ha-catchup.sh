#!/usr/bin/env bash
# An empty slave catching up with a master that already holds SIZE_MB of commit log: the
# replication rate next to the disk's own sequential write rate on the same file system.
#
#   SIZE_MB=10240 ./scripts/ha-catchup.sh          # the issue's 10 GB (needs 2×SIZE_MB of disk)
#   SIZE_MB=2048 DROP_CACHES=1 ./scripts/ha-catchup.sh   # the master reads from disk (root)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-2048}
source scripts/lib/standalone.sh
source scripts/lib/group.sh
bin=$(release_binary)
group_init apogee-ha-catchup
master=127.0.0.1:$MASTER_PORT
slave=127.0.0.1:$SLAVE_PORT
target=$((SIZE_MB * 1024 * 1024))

start_master "$bin" ASYNC_MASTER
# Fill with 4 KiB messages, 10 s at a time, until the log holds SIZE_MB (bounded: 1000 rounds).
for _ in $(seq 1000); do
  (( $(commit_log_end "$master") >= target )) && break
  "$bin" bench produce -t Fill -s 4096 -c 4 -i 32 -d 10s -n "$NAMESRV" --quiet > /dev/null
done
master_end=$(commit_log_end "$master")
echo "master holds $((master_end / 1024 / 1024)) MiB of commit log"
if [[ -n ${DROP_CACHES:-} ]]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi

started=$(date +%s.%N)
start_slave "$bin"
limit=$(( SIZE_MB / 5 + 120 ))  # seconds: far slower than 5 MB/s is a failure
for _ in $(seq $(( limit * 4 ))); do
  (( $(commit_log_end "$slave") >= master_end )) && break
  sleep 0.25
done
finished=$(date +%s.%N)
slave_end=$(commit_log_end "$slave")
(( slave_end >= master_end )) || { echo "the slave reached $slave_end of $master_end in ${limit}s" >&2; exit 1; }
stop_group

# The disk's own rate for the same amount written the way the slave writes (page cache, then
# flushed), capped at 4 GiB.
dd_mb=$(( SIZE_MB < 4096 ? SIZE_MB : 4096 ))
dd_started=$(date +%s.%N)
dd if=/dev/zero of="$work/dd" bs=1M count="$dd_mb" conv=fdatasync status=none
dd_finished=$(date +%s.%N)
rm -f "$work/dd"
python3 - "$master_end" "$started" "$finished" "$dd_mb" "$dd_started" "$dd_finished" <<'PY'
import sys
end, t0, t1, dd_mb, d0, d1 = sys.argv[1:]
mib = int(end) / 2**20
seconds = float(t1) - float(t0)
dd_rate = int(dd_mb) / (float(d1) - float(d0))
print(f"slave caught up {mib:,.0f} MiB in {seconds:.1f} s: {mib / seconds:,.0f} MiB/s "
      f"(disk: dd {dd_mb} MiB with fdatasync at {dd_rate:,.0f} MiB/s; ratio {mib / seconds / dd_rate:.2f})")
PY
