#!/usr/bin/env bash
# Allocations the broker makes per message on the send path: builds `apogee` with the
# `count-allocations` feature, starts `apogee standalone` on a fresh data directory, reads its
# allocation count before and after a produce workload, and divides by the messages sent.
# Heartbeats and route registration during the run are included (a few hundred allocations).
#
#   ./scripts/count-allocations.sh                       # workload 2, 5 s
#   ARGS="-s 128 -c 4 -i 8 -b 32" ./scripts/count-allocations.sh   # workload 4
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=${ARGS:-"-s 128 -c 4 -i 32"}
DURATION=${DURATION:-5s}
NAMESRV_PORT=${NAMESRV_PORT:-29876}
BROKER_PORT=${BROKER_PORT:-30911}
target=${CARGO_TARGET_DIR:-target}/count-allocations
CARGO_TARGET_DIR=$target cargo build --release -p apogee --features count-allocations >/dev/null
bin=$target/release/apogee
work=$(mktemp -d "${TMPDIR:-/tmp}/apogee-alloc.XXXXXX")
broker_pid=
cleanup() {
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" standalone --data-dir "$work/data" --namesrv-listen "127.0.0.1:$NAMESRV_PORT" \
  --broker-port "$BROKER_PORT" > "$work/out" 2> "$work/err" &
broker_pid=$!
for _ in $(seq 100); do grep -q "broker listening" "$work/out" 2>/dev/null && break; sleep 0.1; done
count() { sleep 1.2; grep '^allocations: ' "$work/err" | tail -1 | cut -d' ' -f2; }
# A first short run creates the topic and warms the connection pools.
"$bin" bench produce -t A $ARGS -n "127.0.0.1:$NAMESRV_PORT" -d 1s --quiet >/dev/null
before=$(count)
json=$("$bin" bench produce -t A $ARGS -n "127.0.0.1:$NAMESRV_PORT" -d "$DURATION" --quiet | grep '"kind"')
after=$(count)
python3 - "$json" "$before" "$after" "$ARGS" <<'PY'
import json, sys
run, before, after, args = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
messages = run["messages"]
requests = messages // max(1, run["parameters"]["batch"])
allocations = after - before
print(f"apogee bench produce {args}: {messages:,} messages in {requests:,} requests; "
      f"broker allocations {allocations:,} = {allocations / messages:.1f} per message, "
      f"{allocations / requests:.1f} per request")
PY
