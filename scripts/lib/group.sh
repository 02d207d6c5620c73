# Sourced by the replication scripts: a NameServer, a master and a slave of one broker group
# on loopback, in a scratch directory removed on exit.
#
#   group_init PREFIX                 makes $work and stops everything on exit
#   start_group BIN ROLE [EXTRA]      NameServer, master (ROLE) and slave on fresh data;
#                                     EXTRA is appended to both broker.conf files
#   start_master BIN ROLE [EXTRA]     the NameServer and the master only (fresh data)
#   start_slave BIN [EXTRA]           the slave (fresh data), following the master
#   start_controller_group BIN [EXTRA]  controller mode: a NameServer with an embedded
#                                     controller and two brokers (allAckInSyncStateSet) whose
#                                     master the controller elects
#   stop_group                        stops all three
#   commit_log_end ADDR               the broker's commitLogMaxOffset (GET_BROKER_RUNTIME_INFO), with $bin

NAMESRV_PORT=${NAMESRV_PORT:-29876}
MASTER_PORT=${MASTER_PORT:-30911}
SLAVE_PORT=${SLAVE_PORT:-31911}
CONTROLLER_PORT=${CONTROLLER_PORT:-29878}
NAMESRV=127.0.0.1:$NAMESRV_PORT
group_pids=()

group_init() { # $1 = prefix of the scratch directory
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap 'stop_group; rm -rf "$work"' EXIT
}

stop_group() {
  local pid
  for pid in "${group_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${group_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  group_pids=()
}

wait_for_line() { # $1 = log file, $2 = text, $3 = what
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done
  echo "$3 did not start" >&2; tail -20 "$1" >&2; exit 1
}

start_broker() { # $1 = bin, $2 = name (master/slave), $3 = port, $4 = conf text
  rm -rf "$work/$2"
  printf '%s\n' "$4" > "$work/$2.conf"
  "$1" broker -n "$NAMESRV" -c "$work/$2.conf" --listen-port "$3" --store-dir "$work/$2" --grpc-port 0 \
    > "$work/$2.out" 2> "$work/$2.err" &
  group_pids+=($!)
  wait_for_line "$work/$2.out" "broker listening" "$2"
}

start_master() { # $1 = bin, $2 = role, $3 = extra config lines
  stop_group
  "$1" namesrv --listen "$NAMESRV" > "$work/namesrv.out" 2> "$work/namesrv.err" &
  group_pids+=($!)
  wait_for_line "$work/namesrv.out" "listening" "namesrv"
  start_broker "$1" master "$MASTER_PORT" "brokerName=bench-ha
brokerId=0
brokerRole=$2
fastChannelEnable=false
${3:-}"
}

start_slave() { # $1 = bin, $2 = extra config lines
  start_broker "$1" slave "$SLAVE_PORT" "brokerName=bench-ha
brokerId=1
brokerRole=SLAVE
fastChannelEnable=false
${2:-}"
}

start_group() { # $1 = bin, $2 = role, $3 = extra config lines
  start_master "$1" "$2" "${3:-}"
  start_slave "$1" "${3:-}"
}

start_controller_group() { # $1 = bin, $2 = extra config lines
  stop_group
  printf 'enableControllerInNamesrv=true\ncontrollerDLegerPeers=n1-127.0.0.1:%s\ncontrollerDLegerSelfId=n1\ncontrollerStorePath=%s\n' \
    "$CONTROLLER_PORT" "$work/controller" > "$work/namesrv.conf"
  rm -rf "$work/controller"
  "$1" namesrv --listen "$NAMESRV" -c "$work/namesrv.conf" > "$work/namesrv.out" 2> "$work/namesrv.err" &
  group_pids+=($!)
  wait_for_line "$work/namesrv.out" "namesrv listening" "namesrv"
  local conf="brokerName=bench-ha
enableControllerMode=true
controllerAddr=127.0.0.1:$CONTROLLER_PORT
allAckInSyncStateSet=true
fastChannelEnable=false
${2:-}"
  start_broker "$1" master "$MASTER_PORT" "$conf"
  start_broker "$1" slave "$SLAVE_PORT" "$conf"
}

commit_log_end() { # $1 = broker address; prints its commitLogMaxOffset (0 when unknown)
  local end
  end=$("$bin" admin brokerStatus -n "$NAMESRV" -b "$1" 2>/dev/null | awk -F': ' '$1 ~ /^commitLogMaxOffset/ {print $2}')
  echo "${end:-0}"
}
