# Sourced by the benchmark scripts: a scratch directory, one `apogee standalone` on loopback
# ports in it, and cleanup on exit.
#
#   NAMESRV_PORT / BROKER_PORT / GRPC_PORT   loopback ports (default 29876 / 30911 / 28081)
#   standalone_init PREFIX        makes $work and removes it (and the broker) on exit
#   start_standalone BIN [TYPE]   (re)starts BIN on a fresh data dir, flushDiskType TYPE
#                                 (ASYNC_FLUSH by default); sets $broker_pid, logs in
#                                 $work/standalone.out and $work/standalone.err
#   stop_standalone               stops it and waits
#   timed_bench BIN ARGS...       runs `BIN bench ARGS` against it: the report in $work/bench.out,
#                                 the cores used in $broker_cores and $bench_cores (lib/cores.py)
#   broker_cpu_ticks, broker_rss_mib
#   start_bench PREFIX            what a benchmark starts with: $bin from release_binary,
#                                 standalone_init PREFIX, start_standalone on ASYNC_FLUSH, 1 s to
#                                 settle
#   run_stamp                     "date, commit, cores" for a report's first line
#   table_header COLUMN...        a markdown table's header row and the separator under it

NAMESRV_PORT=${NAMESRV_PORT:-29876}
BROKER_PORT=${BROKER_PORT:-30911}
GRPC_PORT=${GRPC_PORT:-28081}
NAMESRV=127.0.0.1:$NAMESRV_PORT
GRPC=127.0.0.1:$GRPC_PORT
broker_pid=

release_binary() { # the binary to measure: $APOGEE_BIN, else a release build of this tree
  if [[ -n ${APOGEE_BIN:-} ]]; then
    echo "$APOGEE_BIN"
  else
    cargo build --release -p apogee >/dev/null
    echo "${CARGO_TARGET_DIR:-target}/release/apogee"
  fi
}

standalone_init() { # $1 = prefix of the scratch directory
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap 'stop_standalone; rm -rf "$work"' EXIT
}

stop_standalone() {
  if [[ -n $broker_pid ]]; then
    { kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null; } || true
    broker_pid=
  fi
  return 0
}

start_standalone() { # $1 = apogee binary, $2 = flushDiskType
  stop_standalone
  rm -rf "$work/data"
  printf 'flushDiskType=%s\n' "${2:-ASYNC_FLUSH}" > "$work/broker.conf"
  "$1" standalone --data-dir "$work/data" --namesrv-listen "$NAMESRV" --broker-port "$BROKER_PORT" \
    --grpc-port "$GRPC_PORT" -c "$work/broker.conf" > "$work/standalone.out" 2> "$work/standalone.err" &
  broker_pid=$!
  for _ in $(seq 100); do grep -q "broker listening" "$work/standalone.out" 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start" >&2; cat "$work/standalone.err" >&2; exit 1
}

broker_cpu_ticks() { awk '{print $14 + $15}' "/proc/$broker_pid/stat"; }
broker_rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$broker_pid/status"; }

timed_bench() { # $1 = apogee binary, rest = bench arguments
  local bin=$1 before after TIMEFORMAT='%U %S %R'
  shift
  before=$(broker_cpu_ticks)
  # `time` reports the bench's user and system seconds and its wall time on stderr.
  { time "$bin" bench "$@" -n "$NAMESRV" --quiet > "$work/bench.out"; } 2> "$work/time"
  after=$(broker_cpu_ticks)
  read -r broker_cores bench_cores < <(python3 "$(dirname "${BASH_SOURCE[0]}")/cores.py" \
    "$work/bench.out" "$(tail -1 "$work/time")" "$before" "$after")
}

start_bench() { # $1 = prefix of the scratch directory
  bin=$(release_binary)
  standalone_init "$1"
  start_standalone "$bin" ASYNC_FLUSH
  sleep 1
}

run_stamp() { echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) cores"; }

table_header() { # the column titles; the separator gets one cell per column, so the two rows agree
  local column
  printf '|'
  for column in "$@"; do printf ' %s |' "$column"; done
  printf '\n|'
  for column in "$@"; do printf -- '---|'; done
  printf '\n'
}
