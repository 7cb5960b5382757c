#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run run it: a local Swarm (and Prometheus) and a
# five-node local cluster first, then every test, benchmark smoke run and doctest against them.
#
# The suite's time goes mostly to waiting on real time (scenarios on Swarm, Prometheus and the
# models), not to the CPU, and two binaries that share nothing take most of it. So once every
# target is built, `e2e_demo` (it builds the musl images, then runs the demo stack on the host's
# one-node swarm) runs in the background while `cluster` runs on the local cluster's own
# dockerds; every other target and the doctests run after both. Every part runs even when
# another failed (as --no-fail-fast does); the script fails if any did and names it at the end.
# e2e_demo's output is printed when it ends; each part's time goes to stderr.
#
# The cluster (deploy/local-cluster.sh) is taken down at the end unless it was already up before
# the run or SWARMPILOT_KEEP_CLUSTER=1 asks to keep it; the tests' RabbitMQ node
# (deploy/rabbitmq.sh) is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'test.sh: %s (%ss since the start)\n' "$*" "$SECONDS" >&2; }

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
log "swarm, RabbitMQ and cluster up"

cargo test --locked --no-run --all-targets
log "every target built"

failed=()
# part NAME COMMAND...: runs one part of the suite, noting it when it fails.
part() {
  local name="$1"
  shift
  if "$@"; then log "$name passed"; else failed+=("$name"); log "$name FAILED"; fi
}

# e2e_demo in a session of its own (so a stopped run ends it and its children by its PID), at a
# lower priority: its image build is CPU work, and the cluster tests beside it wait on leases and
# timeouts that want the CPU when they wake.
e2e_log="$(mktemp "${TMPDIR:-/tmp}/swarmpilot-e2e.XXXXXX")"
cleanup+=("rm -f $e2e_log")
setsid nice -n 10 cargo test --locked --test e2e_demo >"$e2e_log" 2>&1 &
e2e_pid=$!
stop_e2e() { [ -z "$e2e_pid" ] || kill -- "-$e2e_pid" 2>/dev/null; }
cleanup=(stop_e2e "${cleanup[@]}")

part cluster cargo test --locked --test cluster
part e2e_demo wait "$e2e_pid"
e2e_pid=""
printf '\n---- e2e_demo (run in the background) ----\n'
cat "$e2e_log"

# Every other target: what --all-targets selects, with each test binary but the two above named.
tests="$(cargo metadata --locked --no-deps --format-version 1 |
  jq -r '.packages[].targets[] | select(.kind == ["test"]) | .name')"
others=()
for target in $tests; do
  case "$target" in cluster | e2e_demo) ;; *) others+=(--test "$target") ;; esac
done
part "the other targets" cargo test --locked --no-fail-fast --lib --bins --examples --benches "${others[@]}"
part doctests cargo test --locked --doc

if [ "${#failed[@]}" -gt 0 ]; then
  log "failed: ${failed[*]}"
  exit 1
fi
log "every part passed"
