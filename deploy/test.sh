#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run run it: a local Swarm (and Prometheus) and a
# five-node local cluster first, then every test, benchmark smoke run and doctest against them.
#
# The cluster (deploy/local-cluster.sh) is taken down at the end unless it was already up before
# the run or SWARMPILOT_KEEP_CLUSTER=1 asks to keep it; the tests' RabbitMQ node
# (deploy/rabbitmq.sh) is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/local-swarm.sh
# RabbitMQ boots slowly: started now, it is up by the time the build is done and its tests run.
cleanup=()
if bash deploy/rabbitmq.sh start; then cleanup+=("bash deploy/rabbitmq.sh stop"); fi
if [ "${SWARMPILOT_KEEP_CLUSTER:-0}" != 1 ] && ! bash deploy/local-cluster.sh status >/dev/null 2>&1; then
  cleanup+=("bash deploy/local-cluster.sh down")
fi
trap 'for step in "${cleanup[@]}"; do $step || true; done' EXIT
# Three managers (the operator's manager is killed in one test, with the quorum kept), two workers.
bash deploy/local-cluster.sh up --managers 3 --workers 2 >/dev/null
cargo test --locked --no-fail-fast --all-targets
cargo test --locked --doc
