#!/usr/bin/env bash
# Local AWS API emulator (moto's server, from .venv/ — run scripts/dev-tools.sh first).
#
#   scripts/moto-server.sh start   start on 127.0.0.1 on a free port, wait until it answers,
#                                  write .venv/moto.port and .venv/moto.pid, print the URL
#   scripts/moto-server.sh start --undo-log
#                                  the same, with TransactWriteItems rolled back from an undo log
#                                  instead of moto's copy of the whole table per item
#                                  (scripts/moto_server_undo_log.py; for benchmarks at scale)
#   scripts/moto-server.sh url     print http://127.0.0.1:PORT of the running server
#   scripts/moto-server.sh stop    stop it (only the pid this script recorded)
#   scripts/moto-server.sh status  exit 0 if it is running and answering
#
# One server serves every service (DynamoDB, SQS, S3, Secrets Manager…) at the same URL: point
# clients at it with AWS_ENDPOINT_URL=$(scripts/moto-server.sh url), any region, and dummy
# credentials (AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test). State is in memory: a restart
# starts empty; POST /moto-api/reset empties it without a restart. Log: .venv/moto.log.
# Environment: MSS_VENV overrides the venv directory (default <repo>/.venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MSS_VENV:-$ROOT/.venv}"
PORT_FILE="$VENV/moto.port"
PID_FILE="$VENV/moto.pid"
LOG_FILE="$VENV/moto.log"
PY="$VENV/bin/python"

die() { echo "moto-server: ERROR: $*" >&2; exit 1; }

answers() { # port -> 0 if moto answers HTTP on it
  "$PY" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json", timeout=1).read()
EOF
}

running_pid() { # prints the recorded pid if that process is alive and is a moto_server
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

cmd_start() {
  [ -x "$VENV/bin/moto_server" ] || die "$VENV/bin/moto_server not found: run scripts/dev-tools.sh first."
  if pid="$(running_pid)" && answers "$(cat "$PORT_FILE")"; then
    echo "moto-server: already running (pid $pid)" >&2
    cmd_url
    return 0
  fi
  rm -f "$PID_FILE" "$PORT_FILE"
  local port pid i
  local -a SERVER=("$VENV/bin/moto_server")
  [ "${1:-}" = "--undo-log" ] && SERVER=("$PY" "$ROOT/scripts/moto_server_undo_log.py")
  # A port free now; a tiny race with other programs remains, so retry a few times.
  for attempt in 1 2 3; do
    port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    # setsid: its own process group, so it outlives the calling shell's job control and `stop`
    # can end exactly this group.
    setsid "${SERVER[@]}" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 < /dev/null &
    pid=$!
    for i in $(seq 1 100); do # up to ~20 s
      if answers "$port"; then
        echo "$pid" > "$PID_FILE"
        echo "$port" > "$PORT_FILE"
        echo "http://127.0.0.1:$port"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "moto-server: attempt $attempt on port $port failed; log:" >&2
    tail -5 "$LOG_FILE" >&2 || true
  done
  die "moto_server did not start (see $LOG_FILE)."
}

cmd_url() {
  [ -f "$PORT_FILE" ] && running_pid >/dev/null || die "not running (scripts/moto-server.sh start)."
  echo "http://127.0.0.1:$(cat "$PORT_FILE")"
}

cmd_stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "moto-server: stopped (pid $pid)" >&2
  else
    echo "moto-server: not running" >&2
  fi
  rm -f "$PID_FILE" "$PORT_FILE"
}

cmd_status() {
  local pid
  pid="$(running_pid)" && answers "$(cat "$PORT_FILE")" || { echo "moto-server: not running" >&2; return 1; }
  echo "moto-server: running (pid $pid) at http://127.0.0.1:$(cat "$PORT_FILE")" >&2
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  url) cmd_url ;;
  status) cmd_status ;;
  *) echo "usage: $0 start [--undo-log]|stop|url|status" >&2; exit 2 ;;
esac
