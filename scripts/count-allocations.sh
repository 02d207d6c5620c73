#!/usr/bin/env bash
# Allocations the broker makes per message on the send path: builds `apogee` with the
# `count-allocations` feature, starts `apogee standalone` on a fresh data directory, reads its
# allocation count before and after a produce workload, and divides by the messages sent.
# Heartbeats and route registration during the run are included (a few hundred allocations).
#
#   ./scripts/count-allocations.sh                       # workload 2, 5 s
#   ARGS="-s 128 -c 4 -i 8 -b 32" ./scripts/count-allocations.sh   # workload 4
#   TOPIC=a_topic_name_longer_than_24_bytes ./scripts/count-allocations.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=${ARGS:-"-s 128 -c 4 -i 32"}
DURATION=${DURATION:-5s}
TOPIC=${TOPIC:-A}
source scripts/lib/standalone.sh
target=${CARGO_TARGET_DIR:-target}/count-allocations
CARGO_TARGET_DIR=$target cargo build --release -p apogee --features count-allocations >/dev/null
bin=$target/release/apogee
standalone_init apogee-alloc
start_standalone "$bin"
count() { sleep 1.2; grep '^allocations: ' "$work/standalone.err" | tail -1 | cut -d' ' -f2; }
# A first short run creates the topic and warms the connection pools.
"$bin" bench produce -t "$TOPIC" $ARGS -n "$NAMESRV" -d 1s --quiet >/dev/null
before=$(count)
json=$("$bin" bench produce -t "$TOPIC" $ARGS -n "$NAMESRV" -d "$DURATION" --quiet | grep '"kind"')
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
