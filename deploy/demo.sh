#!/usr/bin/env bash
# The swarmpilot demo, from one command on a fresh machine:
#   1. a local single-node Swarm (deploy/local-swarm.sh),
#   2. the images, built here with no registry (deploy/build-images.sh),
#   3. API tokens as Docker secrets, and the stack (deploy/stack.yml): the operator, Prometheus,
#      the demo app `web` (predictive policy) and its HPA-only twin `web-hpa`,
#   4. the load generator as a Swarm service sending both the same scenario: a warm-up (the
#      5 minutes of history the models need), ramp, flash crowd, flood, quiet,
#   5. what swarmpilot decides and why, live, until Ctrl-C or --duration.
#
# usage: deploy/demo.sh [up] [--duration 20m] [--time-scale 1.0] [--no-build]
#        deploy/demo.sh down        # removes the stack, the load generator and the tokens
#
# Settings: SP_STACK (stack name, default swarmpilot), SP_PORT (operator's host port, 8080),
# SP_PROM_PORT (Prometheus's host port, 9090), SWARMPILOT_TAG (image tag, dev).
set -euo pipefail
cd "$(dirname "$0")/.."

export SP_STACK="${SP_STACK:-swarmpilot}"
export SP_PORT="${SP_PORT:-8080}"
export SP_PROM_PORT="${SP_PROM_PORT:-9090}"
export SWARMPILOT_TAG="${SWARMPILOT_TAG:-dev}"
export SP_SECRETS="$PWD/target/demo/$SP_STACK"
API="http://127.0.0.1:$SP_PORT"
LOADGEN="${SP_STACK}_loadgen"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

down() {
  say "removing stack $SP_STACK"
  docker service rm "$LOADGEN" >/dev/null 2>&1 || true
  docker stack rm "$SP_STACK" >/dev/null 2>&1 || true
  # The network goes last, once its tasks are gone.
  for _ in $(seq 1 60); do
    docker network inspect "${SP_STACK}_swarmpilot" >/dev/null 2>&1 || break
    sleep 1
  done
  rm -rf "$SP_SECRETS"
  say "done"
}

token() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

wait_for() { # description seconds command...
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq 1 "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "$what did not happen within ${seconds}s (docker service ps ${SP_STACK}_operator; docker service logs ${SP_STACK}_operator)"
}

api() { curl -fsS --max-time 5 -H "Authorization: Bearer $(cat "$SP_SECRETS/read_token")" "$API$1"; }

# One line per decision that scales a service, or whose reason or traffic state differs from
# the last one shown: time, service, replicas current→desired, reason, state, metric values, and
# below them the decision's own sentence. Only decisions newer than the last poll's are looked at.
seen='{}'
show_decisions() {
  local body=$1
  while IFS=$'\x1f' read -r at service change reason state forecast metrics message; do
    key="$reason $state"
    if [ "${change%→*}" != "${change#*→}" ] || [ "${last_key[$service]:-}" != "$key" ]; then
      last_key[$service]=$key
      # The decision's sentence (at most 120 characters) on a line of its own, so no line
      # passes 160 columns and none is cut mid-reason.
      printf '%s  %-8s %-6s %-19s %-22s %s\n          %s\n' "$at" "$service" "$change" "$reason" \
        "$(printf '%s %s' "$state" "$forecast" | xargs)" "$metrics" "$message"
    fi
  done < <(jq -r --arg stack "${SP_STACK}_" --argjson seen "$seen" '
    def short: . * 1000 | round / 1000;
    .services[]
    | . as $s
    | ($s.decisions | map(.at) | index($seen[$s.service])) as $i
    | $s.decisions[(if $i == null then ($s.decisions | length) - 1 else $i + 1 end):][]
    | [ (.at | sub("\\.[0-9]+"; "") | sub("Z$"; "") | split("T") | .[1]),
        ($s.service | ltrimstr($stack)),
        "\(.current)→\(.desired)",
        .reason,
        (if $s.trafficState then "state=\($s.trafficState)" else "" end),
        (if $s.forecast then "forecast=\($s.forecast | short)" else "" end),
        ([$s.metrics[] | select(.value != null) | "\(.name)=\(.value | short)"] | join(" ")),
        (.message | gsub("[\n\r\t]"; " ")) ]
    | join("\u001f")' <<<"$body")
  seen=$(jq -c '[.services[] | select(.decisions | length > 0) | {(.service): (.decisions | last | .at)}] | add // {}' <<<"$body")
}

load_line() {
  docker service logs --raw --tail 1 "$LOADGEN" 2>&1 | tail -1 | cut -c1-160
}

up() {
  local duration="" time_scale=1 build=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --duration) duration=$2; shift 2 ;;
      --time-scale) time_scale=$2; shift 2 ;;
      --no-build) build=0; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage; die "unknown argument $1" ;;
    esac
  done
  say "local Swarm"
  bash deploy/local-swarm.sh
  command -v jq >/dev/null 2>&1 || die "jq is missing: apt-get install jq"
  command -v curl >/dev/null 2>&1 || die "curl is missing: apt-get install curl"
  if [ "$build" = 1 ]; then
    say "building images (the first build compiles for a while)"
    bash deploy/build-images.sh >/dev/null
  fi

  say "API tokens in $SP_SECRETS (Docker secrets of the stack)"
  mkdir -p "$SP_SECRETS"
  chmod 700 "$SP_SECRETS"
  for name in write_token read_token agent_token; do
    [ -s "$SP_SECRETS/$name" ] || (umask 077 && token >"$SP_SECRETS/$name")
  done

  say "deploying stack $SP_STACK"
  # Newer CLIs print a note about --detach, a flag older ones do not have: keep it off screen.
  local errors="$SP_SECRETS/deploy.log"
  docker stack deploy --prune --resolve-image never -c deploy/stack.yml "$SP_STACK" >/dev/null 2>"$errors" ||
    { cat "$errors" >&2; die "docker stack deploy failed"; }
  grep -v -e '--detach=false' -e 'in the background' "$errors" >&2 || true
  wait_for "the operator answering on $API" 120 curl -fsS --max-time 2 "$API/readyz"
  wait_for "Prometheus answering on :$SP_PROM_PORT" 120 curl -fsS --max-time 2 "http://127.0.0.1:$SP_PROM_PORT/-/ready"

  say "load generator: warm-up (5m30s of steady traffic: the models need 5 minutes of history), ramp, flash crowd, flood, quiet (time scale $time_scale)"
  docker service rm "$LOADGEN" >/dev/null 2>&1 || true
  docker service create --detach --quiet --no-resolve-image --name "$LOADGEN" \
    --label "com.docker.stack.namespace=$SP_STACK" \
    --network "${SP_STACK}_swarmpilot" --restart-condition none \
    "swarmpilot-loadgen:$SWARMPILOT_TAG" \
    --target http://web:8080/ --target http://web-hpa:8080/ \
    mixed --time-scale "$time_scale" >/dev/null

  cat >&2 <<EOF

  dashboard    $API/            (paste the read token: $(cat "$SP_SECRETS/read_token"))
  API          curl -H "Authorization: Bearer \$(cat $SP_SECRETS/read_token)" $API/v1/services
  metrics      $API/metrics     Prometheus: http://127.0.0.1:$SP_PROM_PORT/
  Grafana      import deploy/grafana/swarmpilot.json (see docs/deploy.md)
  stop         Ctrl-C, then deploy/demo.sh down

EOF
  printf '\033[1m%-8s  %-8s %-6s %-19s %-22s %s\033[0m\n' time service scale reason "state forecast" "metrics, then why" >&2

  local started=$SECONDS limit=0 last_load=$SECONDS
  if [ -n "$duration" ]; then
    limit=$(duration_seconds "$duration")
  fi
  trap 'echo; say "stopped; the stack keeps running — deploy/demo.sh down removes it"; exit 0' INT TERM
  declare -gA last_key=()
  while true; do
    if body=$(api /v1/services); then
      show_decisions "$body"
    else
      echo "$(date +%T)  (the operator does not answer; it may be restarting)" >&2
    fi
    if [ $((SECONDS - last_load)) -ge 15 ]; then
      last_load=$SECONDS
      line=$(load_line)
      [ -n "$line" ] && printf '\033[2m%s  load    %s\033[0m\n' "$(date +%T)" "$line"
    fi
    if [ "$limit" -gt 0 ] && [ $((SECONDS - started)) -ge "$limit" ]; then
      say "--duration $duration reached; the stack keeps running — deploy/demo.sh down removes it"
      break
    fi
    sleep 2
  done
}

duration_seconds() { # 90, 90s, 15m, 1h
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *[!0-9]*|"") die "--duration $1: use e.g. 90s, 15m or 1h" ;;
    *) echo "$1" ;;
  esac
}

case "${1:-up}" in
  up) shift || true; up "$@" ;;
  down) down ;;
  -h|--help|help) usage ;;
  -*) up "$@" ;;
  *) usage; exit 2 ;;
esac
