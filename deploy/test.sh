#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run run it: a local Swarm (and Prometheus) first,
# then every test, benchmark smoke run and doctest against it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/local-swarm.sh
cargo test --locked --no-fail-fast --all-targets
cargo test --locked --doc
