#!/usr/bin/env bash
# A private RabbitMQ node (Debian's rabbitmq-server, management plugin on) for the tests of the
# rabbitmq queue source: its own node name, ports, data, logs and epmd under one directory, so it
# never meets a RabbitMQ of the machine. Erlang starts slowly (a minute or more under load), so
# deploy/test.sh starts it before the build and the tests only wait for it.
#
#   deploy/rabbitmq.sh start    # in the background, unless it already runs; returns at once
#   deploy/rabbitmq.sh wait     # until the management API answers (starting it if needed)
#   deploy/rabbitmq.sh env      # SP_RABBITMQ_URL, SP_RABBITMQ_AMQP_PORT, SP_RABBITMQ_ADMIN_* lines
#   deploy/rabbitmq.sh stop     # by the PIDs it recorded (the node, then its own epmd)
#
# SWARMPILOT_RABBITMQ_DIR (default /tmp/swarmpilot-rabbitmq) holds it all; the ports are the
# management API on 35672, AMQP on 35673, Erlang distribution on 35674 and epmd on 35675.
set -euo pipefail

DIR="${SWARMPILOT_RABBITMQ_DIR:-/tmp/swarmpilot-rabbitmq}"
HTTP_PORT=35672
AMQP_PORT=35673
DIST_PORT=35674
EPMD_PORT=35675
NODE="sp-test-rabbit@localhost"
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server

log() { printf 'rabbitmq: %s\n' "$*" >&2; }

running() {
  [ -s "$DIR/launcher.pid" ] && kill -0 "$(cat "$DIR/launcher.pid")" 2>/dev/null
}

start() {
  if running; then
    return 0
  fi
  [ -x "$SERVER" ] || bash "$(dirname "$0")/local-swarm.sh"
  mkdir -p "$DIR/mnesia" "$DIR/log"
  if [ ! -s "$DIR/admin_password" ]; then
    # A password of this machine's run only: the tests read it from this file. The node sets
    # its admin user only when its database is new: a new password, a new database.
    rm -rf "$DIR/mnesia"
    mkdir -p "$DIR/mnesia"
    head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/admin_password"
    chmod 600 "$DIR/admin_password"
  fi
  cat >"$DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $HTTP_PORT
default_user = sp-admin
default_pass = $(cat "$DIR/admin_password")
loopback_users = none
# Queue counts in the management API refresh every second (5 by default): tests wait less.
collect_statistics_interval = 1000
EOF
  echo '[rabbitmq_management].' >"$DIR/enabled_plugins"
  log "starting $NODE in the background (management API on 127.0.0.1:$HTTP_PORT, log $DIR/log)"
  # setsid: the node outlives the shell that started it; its PID is recorded to stop it by.
  (
    export HOME="$DIR" RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_PORT="$AMQP_PORT" \
      RABBITMQ_DIST_PORT="$DIST_PORT" ERL_EPMD_PORT="$EPMD_PORT" \
      RABBITMQ_CONFIG_FILE="$DIR/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
      RABBITMQ_MNESIA_BASE="$DIR/mnesia" RABBITMQ_LOG_BASE="$DIR/log" \
      RABBITMQ_PID_FILE="$DIR/node.pid" RABBITMQ_CONF_ENV_FILE=/dev/null
    # Run from the state directory: the management API resolves paths against the node's
    # working directory, and every request fails (enoent) once a checkout it started in is gone.
    cd "$DIR"
    exec setsid "$SERVER" </dev/null >"$DIR/log/startup.log" 2>&1
  ) &
  echo $! >"$DIR/launcher.pid"
}

answers() {
  curl -fsS -m 5 -u "sp-admin:$(cat "$DIR/admin_password")" \
    "http://127.0.0.1:$HTTP_PORT/api/overview" >/dev/null 2>&1
}

wait_up() {
  start
  # Under a full build on two cores the node has taken over two minutes to boot.
  for _ in $(seq 1 600); do
    answers && return 0
    running || { log "the node exited; see $DIR/log"; tail -30 "$DIR/log/startup.log" >&2; exit 1; }
    sleep 1
  done
  log "the management API did not answer within 10 minutes; see $DIR/log"
  exit 1
}

stop() {
  running || { rm -f "$DIR/launcher.pid"; return 0; }
  local pid
  pid="$(cat "$DIR/launcher.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill -KILL "$pid" 2>/dev/null || true
  # Its own epmd, on its own port: the machine's epmd (if any) is not this one.
  ERL_EPMD_PORT="$EPMD_PORT" epmd -kill >/dev/null 2>&1 || true
  rm -f "$DIR/launcher.pid"
  log "stopped $NODE"
}

case "${1:-}" in
  start) start ;;
  wait) wait_up ;;
  env)
    echo "SP_RABBITMQ_URL=http://127.0.0.1:$HTTP_PORT"
    echo "SP_RABBITMQ_AMQP_PORT=$AMQP_PORT"
    echo "SP_RABBITMQ_ADMIN_USER=sp-admin"
    echo "SP_RABBITMQ_ADMIN_PASSWORD_FILE=$DIR/admin_password"
    ;;
  stop) stop ;;
  *) echo "usage: $0 start|wait|env|stop" >&2; exit 2 ;;
esac
