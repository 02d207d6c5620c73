#!/usr/bin/env bash
# The replication soak: CYCLES rounds of load, SIGKILL of the master and read-back from the
# slave (crates/apogee/tests/replication.rs), then a summary of the cycles' figures.
#
#   CYCLES=100 ./scripts/ha-soak.sh                  # SYNC_MASTER (every SEND_OK must survive)
#   CYCLES=20 TEST=an_async_master ./scripts/ha-soak.sh   # ASYNC_MASTER: the loss window
#   CYCLES=100 TEST=with_controllers ./scripts/ha-soak.sh  # controller mode: failover time
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-100}
TEST=${TEST:-a_sync_master_killed_under_load}
log=$(mktemp "${TMPDIR:-/tmp}/apogee-ha-soak.XXXXXX")
status=0
APOGEE_HA_CYCLES=$CYCLES cargo test -q -p apogee --test replication "$TEST" -- --nocapture > "$log" 2>&1 || status=$?
python3 - "$log" <<'PY'
import json, statistics, sys
cycles = [json.loads(line.split(" ", 1)[1]) for line in open(sys.argv[1]) if line.startswith("ha-cycle ")]
if not cycles:
    sys.exit("no cycle ran")
acked = sum(c["acked"] for c in cycles)
missing = sum(c["missing"] for c in cycles)
print(f"{len(cycles)} cycles ({cycles[0]['role']}): {acked:,} acknowledged, {missing:,} missing after the kill, "
      f"{sum(c['duplicates'] for c in cycles)} duplicates, {sum(c['misplaced'] for c in cycles)} misplaced")
for key, what in [("slave_route_ms", "slave routed alone after the kill"),
                  ("failover_ms", "new master took a write after the kill"),
                  ("rejoin_ms", "killed broker back in the SyncStateSet after its restart")]:
    times = sorted(c[key] for c in cycles if key in c)
    if times:
        print(f"{what}: p50 {statistics.median(times):.0f} ms, max {times[-1]} ms")
worst = max(cycles, key=lambda c: c["missing"])
if worst["missing"]:
    print(f"most missing in one cycle: {worst['missing']} of {worst['acked']} (cycle {worst['cycle']})")
PY
[[ $status == 0 ]] || { echo "the soak failed; log: $log" >&2; tail -40 "$log" >&2; }
exit "$status"
