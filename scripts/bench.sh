#!/usr/bin/env bash
# The standard broker workloads of docs/benchmarks.md: starts `apogee standalone` (release build)
# on a fresh data directory and loopback ports, runs each workload with `apogee bench`, records
# the broker's CPU time and RSS around each, and prints a markdown table.
#
#   ./scripts/bench.sh              # 20 s per workload
#   DURATION=60s ./scripts/bench.sh
#   WARMUP=0s ./scripts/bench.sh    # workloads 6 and 8 without their 2 s warm-up
#   APOGEE_BIN=path/to/apogee ./scripts/bench.sh   # another build, as it is
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-2s}
source scripts/lib/standalone.sh

bin=$(release_binary)
standalone_init apogee-bench

# The runs write several GB. Past 85 % disk use the store deletes old files early and past 90 %
# it refuses appends (as RocketMQ does), which would make every figure below meaningless.
used_percent=$(df --output=pcent "$work" | tail -1 | tr -dc '0-9')
if (( used_percent > 70 )); then
  echo "warning: the disk holding $work is ${used_percent}% full; the store throttles past 85%" >&2
fi

build=${APOGEE_BIN:-"commit $(git rev-parse --short HEAD)"}
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $build, $(nproc) cores, $DURATION per workload, warm-up $WARMUP"
echo
start_standalone "$bin" ASYNC_FLUSH
sleep 1
echo "broker idle RSS: $(broker_rss_mib) MiB"
echo
table_header "#" "workload" "msgs/s" "MB/s" "p50 ms" "p99 ms" "p99.9 ms" "broker CPU (cores)" "broker RSS MiB"

run() { # $1 = number, $2 = label, rest = apogee bench arguments
  local number=$1 label=$2
  shift 2
  timed_bench "$bin" "$@" -d "$DURATION"
  python3 - "$number" "$label" "$work/bench.out" "$broker_cores" "$(broker_rss_mib)" "$work/phases" <<'PY'
import json, sys
number, label, out, cpu, rss, phases_path = sys.argv[1:]
r = next(json.loads(line) for line in open(out) if '"kind"' in line)
fmt = lambda key: f"{r[key]:.3f}" if key in r else "–"
print(f"| {number} | {label} | {r['msgs_per_s']:,.0f} | {r['mb_per_s']:.1f} | {fmt('p50_ms')} | {fmt('p99_ms')} | {fmt('p99.9_ms')} | {cpu} | {rss} |")
if "round_trip_p99_ms" in r:
    # An open loop's latency in its two parts, printed under the table.
    with open(phases_path, "a") as phases:
        phases.write(f"workload {number}: sent late p99 {fmt('sent_late_p99_ms')} max {fmt('sent_late_max_ms')} ms, "
                     f"round trip p99 {fmt('round_trip_p99_ms')} p99.9 {fmt('round_trip_p99.9_ms')} max {fmt('round_trip_max_ms')} ms\n")
PY
}

run 1 "sync send 128 B, 1 conn × 1" produce -t W1 -s 128 -c 1 -i 1
rate2=$("$bin" bench produce -t W -s 128 -c 4 -i 32 -n "$NAMESRV" -d "$DURATION" --quiet | grep '"kind"' | python3 -c "import json,sys; print(int(json.load(sys.stdin)['msgs_per_s']))")
run 2 "sync send 128 B, 4 conns × 32" produce -t W -s 128 -c 4 -i 32
run 3 "sync send 1 KiB, 4 conns × 32" produce -t W -s 1024 -c 4 -i 32
run 4 "batch 32 × 128 B, 4 conns × 8" produce -t W -s 128 -c 4 -i 8 -b 32
run 5 "consume W2+W3+W4 (pull, long polling)" consume -t W --until-drained
run 6 "fixed rate $((rate2 / 2))/s, 128 B" produce -t W6 -s 128 -c 4 -i 32 -r $((rate2 / 2)) --warmup "$WARMUP"
run 8 "e2e at $((rate2 / 2))/s" e2e -t W8 -s 128 -c 4 -i 32 -r $((rate2 / 2)) --warmup "$WARMUP"
start_standalone "$bin" SYNC_FLUSH
run 7 "SYNC_FLUSH, sync send 128 B, 4 conns × 32" produce -t W7 -s 128 -c 4 -i 32
# The group commit of workload 7: the store logs its totals when it shuts down.
stop_standalone
if [[ -s $work/phases ]]; then
  echo
  cat "$work/phases"
fi
flushes=$(grep -o 'group commit totals flushes=[0-9]*' "$work/standalone.err" | grep -o '[0-9]*$' || true)
appends=$(grep -o 'group commit totals.*appends=[0-9]*' "$work/standalone.err" | grep -o '[0-9]*$' || true)
if [[ -n $flushes && -n $appends && $flushes -gt 0 ]]; then
  echo
  echo "workload 7 group commit: $flushes fdatasyncs, $appends appends, $((appends / flushes)) appends per fdatasync"
fi
