#!/usr/bin/env bash
# Latency against load: one fixed-rate run per rate, each on a fresh `apogee standalone`, with
# the cores the broker and the bench used (as scripts/lib/cores.py counts them). Shows where on
# this machine's cores a latency target stops holding (docs/benchmarks.md, "Latency against load").
#
#   ./scripts/rate-sweep.sh BINARY                                   # workload 6's shape
#   RATES="50000 150000" ARGS="e2e -t W8 -s 128 -c 4 -i 32" ./scripts/rate-sweep.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
(( $# == 1 )) || { echo "usage: $0 BINARY" >&2; exit 2; }
bin=$1
ARGS=${ARGS:-"produce -t W6 -s 128 -c 4 -i 32"}
RATES=${RATES:-"50000 100000 125000 150000 175000"}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
source scripts/lib/standalone.sh
standalone_init apogee-sweep

for rate in $RATES; do
  start_standalone "$bin"
  timed_bench "$bin" $ARGS -r "$rate" --warmup "$WARMUP" -d "$DURATION"
  stop_standalone
  python3 - "$work/bench.out" "$broker_cores" "$bench_cores" <<'PY'
import json, sys
out, broker, bench = sys.argv[1:]
run = next(json.loads(line) for line in open(out) if '"kind"' in line)
ms = lambda key: f"{run[key]:.3f}" if key in run else "-"
print(f"rate {run['parameters']['rate']:>7,}: {run['msgs_per_s']:,.0f} msg/s, p50 {ms('p50_ms')} p99 {ms('p99_ms')} "
      f"p99.9 {ms('p99.9_ms')} ms (round trip p99 {ms('round_trip_p99_ms')}, sent late p99 {ms('sent_late_p99_ms')}); "
      f"broker {broker} cores, bench {bench}")
PY
done
