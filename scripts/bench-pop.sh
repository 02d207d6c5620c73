#!/usr/bin/env bash
# POP + ack throughput next to PULL on the same data: starts `apogee standalone` (release
# build) on a fresh data directory and loopback ports, fills a topic for $FILL, then drains it
# once with PULL (`bench consume`), once with POP and one BATCH_ACK per pop, once with POP and
# one ACK per message (`bench pop`), each as its own group from the first message, and prints
# a markdown table.
#
#   ./scripts/bench-pop.sh
#   FILL=20s QUEUES=16 ./scripts/bench-pop.sh
#   APOGEE_BIN=path/to/apogee ./scripts/bench-pop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FILL=${FILL:-10s}
QUEUES=${QUEUES:-8}
LIMIT=${LIMIT:-120s}
source scripts/lib/standalone.sh
start_bench apogee-bench-pop

"$bin" bench produce -n "$NAMESRV" -t PopBench --queues "$QUEUES" -s 128 -c 4 -i 32 -d "$FILL" --quiet \
  | grep '"kind"' > "$work/fill.json"
filled=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['messages'] if 'messages' in r else int(r['msgs_per_s']*r['elapsed_s']))" "$work/fill.json")
echo "# $(run_stamp), topic of $QUEUES queues filled for $FILL ($filled messages, 128 B)"
echo
table_header "consumer" "messages" "msgs/s" "MB/s" "broker CPU (cores)" "bench CPU (cores)"

row() { # $1 = label, rest = apogee bench arguments
  local label=$1
  shift
  timed_bench "$bin" "$@" -t PopBench -d "$LIMIT"
  python3 - "$label" "$work/bench.out" "$broker_cores" "$bench_cores" <<'PY'
import json, sys
label, out, broker, bench = sys.argv[1:]
r = next(json.loads(line) for line in open(out) if '"kind"' in line)
messages = r.get('messages', round(r['msgs_per_s'] * r.get('elapsed_s', 0)))
print(f"| {label} | {messages:,} | {r['msgs_per_s']:,.0f} | {r['mb_per_s']:.1f} | {broker} | {bench} |")
PY
}

row "PULL (consume, 32 per pull, one task per queue)" consume --until-drained --pull-batch 32
row "POP 32 + one BATCH_ACK per pop, 8 in flight" pop --until-drained --pop-batch 32 --concurrency 8 --ack batch -g pop-batch
row "POP 32 + one ACK per message, 8 in flight" pop --until-drained --pop-batch 32 --concurrency 8 --ack single -g pop-single
