#!/usr/bin/env bash
# Builds the images of swarmpilot and its demo on this machine, with no registry and nothing
# pulled: static musl binaries (one cargo invocation, so dependencies compile once, with the
# quick-to-build `image` profile), then deploy/Dockerfile's four FROM-scratch targets.
#
#   deploy/build-images.sh            # tags swarmpilot:dev, swarmpilot-demo-app:dev, ...
#   SWARMPILOT_TAG=v1 deploy/build-images.sh
#
# Prints the four image names on stdout, one a line; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

# Run from `cargo test` (tests/e2e_demo.rs), the environment holds the variables cargo sets for
# the test; build scripts that watch them would see a change and rebuild every dependency.
for name in $(compgen -e | grep -E '^CARGO_(PKG_|MANIFEST_|CRATE_|BIN_|TARGET_TMPDIR|PRIMARY_PACKAGE)'); do
  unset "$name"
done

TAG="${SWARMPILOT_TAG:-dev}"
TRIPLE=x86_64-unknown-linux-musl
log() { printf 'build-images: %s\n' "$*" >&2; }

command -v musl-gcc >/dev/null 2>&1 || bash deploy/local-swarm.sh
rustup target add "$TRIPLE" >/dev/null 2>&1 || { log "rustup cannot add $TRIPLE"; exit 1; }

log "compiling swarmpilot, demo-app and loadgen for $TRIPLE (profile image)"
cargo build --locked --profile image --target "$TRIPLE" \
  --bin swarmpilot --example demo-app --example loadgen >&2

out="target/$TRIPLE/image"
# A context of its own, so builds running side by side (tests, the demo) do not share one.
context="$(mktemp -d target/image-context.XXXXXX)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/prometheus-root"
cp "$out/swarmpilot" "$out/examples/demo-app" "$out/examples/loadgen" "$context/"
cp /etc/ssl/certs/ca-certificates.crt "$context/"

# Prometheus: Debian's dynamically linked binary plus exactly the libraries it loads.
prometheus_bin="$(command -v prometheus || true)"
[ -n "$prometheus_bin" ] || { bash deploy/local-swarm.sh; prometheus_bin="$(command -v prometheus)"; }
root="$context/prometheus-root"
mkdir -p "$root/usr/bin" "$root/etc/prometheus" "$root/prometheus"
cp "$prometheus_bin" "$root/usr/bin/prometheus"
ldd "$prometheus_bin" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp -r /etc/prometheus/consoles /etc/prometheus/console_libraries "$root/etc/prometheus/" 2>/dev/null || true
[ -d /usr/share/prometheus ] && mkdir -p "$root/usr/share" && cp -r /usr/share/prometheus "$root/usr/share/"
# Debian's default configuration; the stack mounts its own over it.
cp /etc/prometheus/prometheus.yml "$root/etc/prometheus/prometheus.yml"

build() { # target image
  log "image $2"
  # Quiet unless it fails (the legacy builder also prints a deprecation notice).
  docker build --quiet --target "$1" -t "$2" -f deploy/Dockerfile "$context" >/dev/null 2>"$context/build.log" ||
    { cat "$context/build.log" >&2; exit 1; }
  echo "$2"
}
build operator "swarmpilot:$TAG"
build demo-app "swarmpilot-demo-app:$TAG"
build loadgen "swarmpilot-loadgen:$TAG"
build prometheus "swarmpilot-prometheus:$TAG"
