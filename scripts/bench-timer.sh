#!/usr/bin/env bash
# Timer messages at scale: starts `apogee standalone` (release build) on a fresh data directory
# and loopback ports, schedules $COUNT timers all due $DUE_IN after the start (`apogee bench
# timer`), and prints the scheduling rate, the broker's RssAnon and VmRSS once every timer is
# pending in the wheel, and the delivery rate when they come due. Also reports the broker's
# RSS before scheduling, for comparison, and the timer store's size on disk.
#
#   ./scripts/bench-timer.sh
#   COUNT=200000 DUE_IN=40s ./scripts/bench-timer.sh
#   APOGEE_BIN=path/to/apogee ./scripts/bench-timer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
DUE_IN=${DUE_IN:-120s}
CONNECTIONS=${CONNECTIONS:-4}
IN_FLIGHT=${IN_FLIGHT:-64}
source scripts/lib/standalone.sh
start_bench apogee-bench-timer
echo "# $(run_stamp), $COUNT timers of 128 B due in $DUE_IN"
awk '/RssAnon|VmRSS/ {printf "broker memory before: %s %s kB\n", $1, $2}' "/proc/$broker_pid/status"
"$bin" bench timer -n "$NAMESRV" -t TimerBench --count "$COUNT" --due-in "$DUE_IN" \
  -c "$CONNECTIONS" -i "$IN_FLIGHT" --broker-pid "$broker_pid" --delivery-limit 300s
awk '/RssAnon|VmRSS/ {printf "broker memory after delivery: %s %s kB\n", $1, $2}' "/proc/$broker_pid/status"
echo "timer store on disk: timerlog $(du -sh "$work/data/store/timerlog" | cut -f1), timerwheel $(du -sh "$work/data/store/timerwheel" | cut -f1)"
