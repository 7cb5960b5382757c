#!/usr/bin/env bash
# Gives this machine a local single-node Docker Swarm, idempotently.
# Installs what is missing (docker.io, musl-tools, prometheus, busybox-static, chromium, redis,
# rabbitmq-server, amqp-tools) from Debian's packages when run as root,
# starts dockerd in the background when no engine answers, and initialises the swarm.
set -euo pipefail

log() { printf 'local-swarm: %s\n' "$*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v musl-gcc >/dev/null 2>&1 || need_pkgs+=(musl-tools)
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v pgrep >/dev/null 2>&1 || need_pkgs+=(procps)
# jq and curl: deploy/demo.sh reads the operator's API with them.
command -v jq >/dev/null 2>&1 || need_pkgs+=(jq)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
# openssl: the TLS test makes its certificates with it.
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
# busybox-static: the one static binary the integration tests' FROM-scratch image needs.
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
# The dashboard test opens the page in headless Chromium.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
# redis-server and redis-cli: the redis queue source's tests start their own server.
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
# rabbitmq-server (deploy/rabbitmq.sh runs a private node of it) and amqp-tools (amqp-consume
# holds messages unacknowledged): the rabbitmq queue source's tests.
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_pkgs+=(rabbitmq-server)
command -v amqp-consume >/dev/null 2>&1 || need_pkgs+=(amqp-tools)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${need_pkgs[*]} and not root: install them and run again"; exit 1
  fi
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" iptables ca-certificates >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if pgrep -x dockerd >/dev/null 2>&1; then
    # Starting or stopping: a second dockerd would fail on the first one's pid file.
    log "dockerd is running but not answering yet; waiting for it"
  else
    log "starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
  # A node restoring many services on two busy cores can take minutes to answer.
  for _ in $(seq 1 300); do
    docker info >/dev/null 2>&1 && break
    if ! pgrep -x dockerd >/dev/null 2>&1; then
      log "starting dockerd"
      nohup dockerd >/var/log/dockerd.log 2>&1 &
    fi
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

state=$(docker info --format '{{.Swarm.LocalNodeState}}')
if [ "$state" != "active" ]; then
  log "initialising swarm"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi
log "swarm ready (engine $(docker version --format '{{.Server.Version}}'), API $(docker version --format '{{.Server.APIVersion}}'))"
