#!/usr/bin/env bash
# Workload 2 (128 B, 4 connections × 32 in flight) against a master with one slave, under
# SYNC_MASTER, ASYNC_MASTER and controller mode (allAckInSyncStateSet: a send waits for the
# SyncStateSet), alternating in each round so all see the same machine.
# Prints, per run: messages/s and send latency p50/p99/p99.9 ms.
#
#   ./scripts/bench-ha.sh                       # 3 rounds of 6 s
#   ROUNDS=5 DURATION=10s ARGS="produce -t W -s 1024 -c 4 -i 32" ./scripts/bench-ha.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=${ARGS:-"produce -t W -s 128 -c 4 -i 32"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6s}
source scripts/lib/standalone.sh
source scripts/lib/group.sh
bin=$(release_binary)
group_init apogee-bench-ha

for round in $(seq "$ROUNDS"); do
  for role in ${ROLES:-SYNC_MASTER ASYNC_MASTER CONTROLLER}; do
    if [[ $role == CONTROLLER ]]; then
      start_controller_group "$bin"
      # The election, then the slave's catch-up into the SyncStateSet.
      sleep 6
    else
      start_group "$bin" "$role"
      # A SYNC_MASTER answers SLAVE_NOT_AVAILABLE until its slave is connected.
      sleep 2
    fi
    "$bin" bench $ARGS -d "$DURATION" -n "$NAMESRV" --quiet > "$work/bench.out"
    if [[ $role == CONTROLLER ]]; then
      # What the measurement waited for: the newest SyncStateSet the master logged.
      grep -ah "SyncStateSet changed" "$work"/master.* "$work"/slave.* | tail -1 | sed 's/^.*INFO/  /' || true
    fi
    stop_group
    python3 - "$round" "$role" "$work/bench.out" <<'PY'
import json, sys
round_, role, out = sys.argv[1:]
run = next(json.loads(line) for line in open(out) if '"kind"' in line)
ms = lambda key: f"{run[key]:.3f}" if key in run else "-"
errors = run.get("errors", run.get("failed", 0))
print(f"round {round_} {role}: {run['msgs_per_s']:,.0f} msg/s, p50 {ms('p50_ms')} p99 {ms('p99_ms')} "
      f"p99.9 {ms('p99.9_ms')} ms, errors {errors}")
PY
  done
done
