#!/usr/bin/env bash
# Runs the full-disk test (crates/apogee/tests/full_disk.rs) many times, with the setup of the
# original report by default: a 300 MB ext4 volume, 64 MiB commit-log files, SYNC_FLUSH,
# forced cleaning off. Each run fills the volume at full speed, kills the broker with
# SIGKILL, fills the last byte, restarts it and reads back every acknowledged message.
# Prints each run's figures and a summary line. Needs root (mount).
#
#   RUNS=20 ./scripts/full-disk-campaign.sh
#   RUNS=5 FLUSH=ASYNC_FLUSH VOLUME_MB=64 COMMIT_LOG_MB=4 ./scripts/full-disk-campaign.sh
#   IMAGE_DIR=/dev/shm ./scripts/full-disk-campaign.sh    # loop image in memory: quick fsyncs
#   FS=tmpfs ./scripts/full-disk-campaign.sh              # tmpfs instead of a loop device
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-20}"
export APOGEE_FULL_DISK_VOLUME_MB="${VOLUME_MB:-300}"
export APOGEE_FULL_DISK_COMMIT_LOG_MB="${COMMIT_LOG_MB:-64}"
export APOGEE_FULL_DISK_FLUSH="${FLUSH:-SYNC_FLUSH}"
if [[ -n "${IMAGE_DIR:-}" ]]; then export APOGEE_FULL_DISK_IMAGE_DIR="$IMAGE_DIR"; fi
if [[ -n "${FS:-}" ]]; then export APOGEE_FULL_DISK_FS="$FS"; fi

cargo test --release -p apogee --test full_disk --no-run >/dev/null 2>&1
results="$(mktemp)"
passed=0
for run in $(seq 1 "$RUNS"); do
  if output="$(cargo test --release -p apogee --test full_disk -- --nocapture 2>&1)"; then
    passed=$((passed + 1))
  else
    echo "run $run FAILED:"; echo "$output" | tail -20
  fi
  line="$(echo "$output" | grep -o 'full-disk-run .*' | sed 's/^full-disk-run //' || true)"
  if [[ -n "$line" ]]; then echo "$line" | tee -a "$results"; fi
done
python3 - "$results" "$RUNS" "$passed" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
total, passed = int(sys.argv[2]), int(sys.argv[3])
if not runs:
    print(f"summary: {passed} passed, {total - passed} failed, no figures"); sys.exit(0)
def span(key):
    values = [run[key] for run in runs]
    return f"{min(values)}..{max(values)}"
print(f"summary: {passed} of {total} runs passed; acked {span('acked')}, refused {span('refused')}, "
      f"used % after fill {span('used_percent_after_fill')}, restart ms {span('restart_ms')}, "
      f"missing {sum(r['missing'] for r in runs)}, corrupt {sum(r['corrupt'] for r in runs)}, "
      f"duplicates {sum(r['duplicates'] for r in runs)}")
PY
rm -f "$results"
[[ "$passed" == "$RUNS" ]]
