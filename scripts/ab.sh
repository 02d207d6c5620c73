#!/usr/bin/env bash
# Two builds of `apogee` side by side, the way the before/after figures of docs/benchmarks.md are
# measured: for each round, each build serves one run on a fresh `apogee standalone` and drives
# it with its own `apogee bench` (set CLIENT to drive both with one bench binary). Prints, per
# run: messages/s, latency p50/p99/p99.9 ms, and the cores used by broker and bench.
#
#   ./scripts/ab.sh OLD_BINARY NEW_BINARY                         # workload 2, 3 rounds of 6 s
#   ARGS="produce -t W6 -s 128 -c 4 -i 32 -r 67000" ROUNDS=2 DURATION=8s ./scripts/ab.sh A B
#   FLUSH=SYNC_FLUSH ./scripts/ab.sh A B                          # under SYNC_FLUSH
set -euo pipefail
cd "$(dirname "$0")/.."
(( $# == 2 )) || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
ARGS=${ARGS:-"produce -t W -s 128 -c 4 -i 32"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6s}
source scripts/lib/standalone.sh
standalone_init apogee-ab

for round in $(seq "$ROUNDS"); do
  for build in "$@"; do
    start_standalone "$build" "${FLUSH:-ASYNC_FLUSH}"
    timed_bench "${CLIENT:-$build}" $ARGS -d "$DURATION"
    stop_standalone
    python3 - "$round" "$build" "$work/bench.out" "$broker_cores" "$bench_cores" <<'PY'
import json, sys
round_, build, out, broker, bench = sys.argv[1:]
run = next(json.loads(line) for line in open(out) if '"kind"' in line)
ms = lambda key: f"{run[key]:.3f}" if key in run else "-"
print(f"round {round_} {build}: {run['msgs_per_s']:,.0f} msg/s, p50 {ms('p50_ms')} p99 {ms('p99_ms')} "
      f"p99.9 {ms('p99.9_ms')} ms, broker {broker} cores, bench {bench} cores")
PY
  done
done
