#!/usr/bin/env bash
# The 5.x gRPC endpoint beside the remoting port, in one run against one `apogee standalone`
# (release build, fresh data directory, loopback ports): sends with `bench produce` (remoting
# SEND_MESSAGE_V2) and `bench grpc-send` (SendMessage) at the same connection counts, windows
# and body size, each into its own topic; then the gRPC topic is drained three times, each by
# a new group from its first message: POP + one BATCH_ACK per pop over remoting (`bench pop`),
# ReceiveMessage + one AckMessage per receive, and ReceiveMessage + one AckMessage per message
# (`bench grpc-receive`). Prints a markdown table.
#
#   ./scripts/bench-grpc.sh
#   DURATION=20s WARMUP=3s ./scripts/bench-grpc.sh
#   APOGEE_BIN=path/to/apogee ./scripts/bench-grpc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
QUEUES=${QUEUES:-8}
LIMIT=${LIMIT:-120s}
source scripts/lib/standalone.sh
start_bench apogee-bench-grpc

echo "# $(run_stamp), $QUEUES queues, 128 B bodies, $DURATION per send row after $WARMUP of warm-up"
echo
table_header "workload" "messages" "msgs/s" "p50 ms" "p99 ms" "max ms" "broker CPU (cores)" "bench CPU (cores)"

row() { # $1 = label, rest = apogee bench arguments
  local label=$1
  shift
  timed_bench "$bin" "$@"
  python3 - "$label" "$work/bench.out" "$broker_cores" "$bench_cores" <<'PY'
import json, sys
label, out, broker, bench = sys.argv[1:]
r = next(json.loads(line) for line in open(out) if '"kind"' in line)
assert not r["errors"], f"{label}: errors {r['errors']}"
ms = lambda key: f"{r[key]:.3f}" if key in r else "–"
print(f"| {label} | {r['messages']:,} | {r['msgs_per_s']:,.0f} | {ms('p50_ms')} | {ms('p99_ms')} | {ms('max_ms')} | {broker} | {bench} |")
PY
}

send=(--queues "$QUEUES" -s 128 -d "$DURATION" --warmup "$WARMUP")
row "remoting produce, 1 connection × 1 in flight" produce -t RemotingSend "${send[@]}" -c 1 -i 1
row "gRPC SendMessage, 1 connection × 1 in flight" grpc-send --grpc "$GRPC" -t GrpcSend "${send[@]}" -c 1 -i 1
row "remoting produce, 4 connections × 32 in flight" produce -t RemotingSend "${send[@]}" -c 4 -i 32
row "gRPC SendMessage, 4 connections × 32 in flight" grpc-send --grpc "$GRPC" -t GrpcSend "${send[@]}" -c 4 -i 32
drain=(-t GrpcSend --until-drained -d "$LIMIT")
row "remoting POP 32 + BATCH_ACK per pop, 8 in flight" pop "${drain[@]}" --pop-batch 32 --concurrency 8 --ack batch -g pop-batch
row "gRPC ReceiveMessage 32 + AckMessage per receive, 8 in flight" grpc-receive --grpc "$GRPC" "${drain[@]}" --receive-batch 32 --concurrency 8 --ack batch -g grpc-batch
row "gRPC ReceiveMessage 32 + AckMessage per message, 8 in flight" grpc-receive --grpc "$GRPC" "${drain[@]}" --receive-batch 32 --concurrency 8 --ack single -g grpc-single
