#!/usr/bin/env bash
# A multi-node Docker Swarm on this one machine: each node is its own dockerd in its own network
# namespace, joined to a private bridge. The host's own dockerd and its swarm are left alone.
#
#   deploy/local-cluster.sh up [--managers M] [--workers W]   # default 1 manager, 2 workers
#   deploy/local-cluster.sh images IMAGE...    # copy host images into every node
#   deploy/local-cluster.sh status             # one line a node: name role address pid socket state
#   deploy/local-cluster.sh env                # DOCKER_HOST=... of the first manager
#   deploy/local-cluster.sh down               # remove everything `up` made
#
# `up` is idempotent: it creates or restarts only what is missing, and prints the DOCKER_HOST of
# each manager on stdout. Everything it makes is recorded in one state directory
# ($SWARMPILOT_CLUSTER_DIR, default /var/lib/swarmpilot-cluster), which `down` and the tests read:
#   nodes               one line a node: NAME ROLE ADDRESS, in creation order
#   NAME/docker.sock    the node's engine
#   NAME/dockerd.pid    its dockerd's PID (written by dockerd)
#   NAME/dockerd.log    its log
#   NAME/data           its --data-root
# `down` stops each process by the PID it recorded and deletes each namespace, link, rule and
# directory by its own name: never by a broad pattern that could reach the host's engine.
set -euo pipefail
cd "$(dirname "$0")/.."

# The cluster's private network, named in this one place: the host end of the bridge is .1,
# managers are .11, .12, ..., workers .21, .22, ...
SUBNET_PREFIX=192.168.213
BRIDGE=spc-br0
STATE="${SWARMPILOT_CLUSTER_DIR:-/var/lib/swarmpilot-cluster}"
# Every node name, namespace, cgroup and containerd namespace starts with this.
NODE_PREFIX=spc
# The rule that lets nodes reach each other across the bridge: the host's dockerd sets the
# FORWARD policy to DROP, which would cut swarm (2377), gossip (7946) and VXLAN (4789) traffic.
FORWARD_RULE=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment swarmpilot-local-cluster -j ACCEPT)

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

ensure_packages() {
  local need=()
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v iptables >/dev/null 2>&1 || need+=(iptables)
  command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
  command -v pgrep >/dev/null 2>&1 || need+=(procps)
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  [ "${#need[@]}" -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "missing ${need[*]} and not root: install them and run again"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# --- the state directory -----------------------------------------------------------------------

node_dir() { printf '%s/%s' "$STATE" "$1"; }
node_socket() { printf '%s/docker.sock' "$(node_dir "$1")"; }
node_pidfile() { printf '%s/dockerd.pid' "$(node_dir "$1")"; }
# Short, outside the state directory: containerd's socket lives under it, and a unix socket path
# may not exceed 108 bytes.
node_exec_root() { printf '/run/%s' "$1"; }
node_docker() { local name="$1"; shift; docker -H "unix://$(node_socket "$name")" "$@"; }

# The recorded nodes, one "NAME ROLE ADDRESS" a line.
nodes() { [ -f "$STATE/nodes" ] && cat "$STATE/nodes" || true; }
nodes_with_role() { nodes | awk -v role="$1" '$2 == role { print $1 }'; }

# The PID of the node's dockerd if it is alive and really is a dockerd, else nothing.
node_pid() {
  local pidfile pid
  pidfile="$(node_pidfile "$1")"
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    printf '%s' "$pid"
  fi
}

node_answers() { node_docker "$1" info --format '{{.ID}}' >/dev/null 2>&1; }
swarm_state() {
  local state
  state="$(node_docker "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" || state=
  printf '%s\n' "${state:-unreachable}"
}

# --- up --------------------------------------------------------------------------------------------

ensure_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "creating bridge $BRIDGE ($SUBNET_PREFIX.0/24)"
    ip link add "$BRIDGE" type bridge
  fi
  # (Matched on the captured text: `cmd | grep -q` fails under pipefail when grep stops early.)
  [[ "$(ip addr show dev "$BRIDGE")" == *"inet $SUBNET_PREFIX.1/24"* ]] ||
    ip addr add "$SUBNET_PREFIX.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  iptables -C "${FORWARD_RULE[@]}" 2>/dev/null || iptables -I "${FORWARD_RULE[@]}"
}

# Records a node in the state directory before anything of it exists, so `down` finds whatever
# part of it a failed `up` made.
record_node() {
  local name="$1" role="$2" address="$3"
  mkdir -p "$(node_dir "$name")"
  grep -q "^$name " "$STATE/nodes" 2>/dev/null || printf '%s %s %s\n' "$name" "$role" "$address" >>"$STATE/nodes"
}

ensure_namespace() {
  local name="$1" address="$2" veth="v-$1"
  [ -e "/var/run/netns/$name" ] || ip netns add "$name"
  if ! ip netns exec "$name" ip link show eth0 >/dev/null 2>&1; then
    ip link del "$veth" 2>/dev/null || true
    ip link add "$veth" type veth peer name "$veth-n"
    ip link set "$veth-n" netns "$name"
    ip netns exec "$name" ip link set "$veth-n" name eth0
  fi
  ip link set "$veth" master "$BRIDGE" up
  [[ "$(ip netns exec "$name" ip addr show dev eth0)" == *"inet $address/24"* ]] ||
    ip netns exec "$name" ip addr add "$address/24" dev eth0
  ip netns exec "$name" ip link set lo up
  ip netns exec "$name" ip link set eth0 up
  # No default route: a node reaches the bridge and nothing else, so a pull fails at once
  # ("network unreachable") instead of waiting on a DNS server it cannot reach.
}

# Starts the node's dockerd unless it runs, and waits until it answers.
ensure_dockerd() {
  local name="$1" dir
  dir="$(node_dir "$name")"
  if [ -z "$(node_pid "$name")" ]; then
    log "starting dockerd of $name"
    mkdir -p "$dir/data" "$(node_exec_root "$name")"
    [ -f "$dir/daemon.json" ] || echo '{}' >"$dir/daemon.json"
    rm -f "$(node_socket "$name")"
    # nsenter, not `ip netns exec`: the latter remounts /sys, and dockerd then fails with
    # "Devices cgroup isn't mounted". A UTS namespace of its own gives the node its own hostname,
    # so `docker node ls` tells the nodes apart. setsid: the engine outlives this script's session;
    # 9>&-: nor does it hold this script's lock.
    # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: tasks run the image loaded with `images` without
    # trying a registry first (the nodes have none).
    DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nsenter --net="/var/run/netns/$name" -- unshare --uts -- \
      setsid sh -c 'echo "$1" >/proc/sys/kernel/hostname; shift; exec "$@"' sh "$name" \
      dockerd \
      --config-file "$dir/daemon.json" \
      --data-root "$dir/data" \
      --exec-root "$(node_exec_root "$name")" \
      --pidfile "$(node_pidfile "$name")" \
      -H "unix://$(node_socket "$name")" \
      --containerd-namespace "$name" \
      --containerd-plugins-namespace "$name-plugins" \
      --cgroup-parent "/$name" \
      --log-level warn \
      </dev/null >>"$dir/dockerd.log" 2>&1 9>&- &
  fi
  for _ in $(seq 1 120); do
    node_answers "$name" && return 0
    sleep 0.5
  done
  tail -20 "$dir/dockerd.log" >&2
  die "dockerd of $name did not answer within a minute; see $dir/dockerd.log"
}

# Whether the node is an active swarm member managed from `manager_address`.
joined_to() {
  local name="$1" manager_address="$2"
  [ "$(swarm_state "$name")" = active ] || return 1
  [[ " $(node_docker "$name" info --format '{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}')" == *" $manager_address:2377 "* ]]
}

ensure_swarm() {
  local first="$1" first_address="$2" name role address token
  if [ "$(swarm_state "$first")" != active ]; then
    log "initialising the swarm on $first"
    node_docker "$first" swarm init --advertise-addr "$first_address" --listen-addr "$first_address:2377" >/dev/null
  fi
  while read -r name role address; do
    [ "$name" = "$first" ] && continue
    joined_to "$name" "$first_address" && continue
    if [ "$(swarm_state "$name")" != inactive ]; then
      # A member of an earlier swarm (its first manager was made anew): leave it first.
      node_docker "$name" swarm leave --force >/dev/null 2>&1 || true
    fi
    token="$(node_docker "$first" swarm join-token -q "$role")"
    log "joining $name to the swarm as a $role"
    node_docker "$name" swarm join --token "$token" \
      --advertise-addr "$address" --listen-addr "$address:2377" "$first_address:2377" >/dev/null
  done < <(nodes)
  # Nodes that left (an earlier incarnation of a node re-joined) stay listed as down: drop them.
  local stale
  stale="$(node_docker "$first" node ls --format '{{.ID}} {{.Status}} {{.Hostname}}' |
    awk '$2 == "Down" { print $1 }')"
  for id in $stale; do
    local host
    host="$(node_docker "$first" node inspect --format '{{.Description.Hostname}}' "$id")"
    # Only when another, live node of the same name exists: a stopped node stays listed.
    if [[ $'\n'"$(node_docker "$first" node ls --format '{{.Status}} {{.Hostname}}')"$'\n' == *$'\n'"Ready $host"$'\n'* ]]; then
      node_docker "$first" node rm --force "$id" >/dev/null 2>&1 || true
    fi
  done
}

# Whether the manager `first` sees as many Ready nodes of each role as are recorded.
all_ready() {
  local role ready
  for role in manager worker; do
    ready="$(node_docker "$1" node ls --filter "role=$role" --format '{{.Status}}' | grep -c '^Ready$' || true)"
    [ "$ready" -ge "$(nodes_with_role "$role" | wc -l)" ] || return 1
  done
}

cmd_up() {
  # Without flags: the recorded cluster's size (so `up` restarts a stopped node of any cluster),
  # or 1 manager and 2 workers.
  local managers workers
  managers="$(nodes_with_role manager | wc -l)"
  workers="$(nodes_with_role worker | wc -l)"
  [ "$managers" -gt 0 ] || { managers=1; workers=2; }
  while [ $# -gt 0 ]; do
    case "$1" in
      --managers) managers="${2:?--managers needs a number}"; shift 2 ;;
      --workers) workers="${2:?--workers needs a number}"; shift 2 ;;
      *) usage ;;
    esac
  done
  [[ "$managers" =~ ^[1-9]$ ]] || die "--managers must be 1 to 9, not '$managers'"
  [[ "$workers" =~ ^[0-9]$ ]] || die "--workers must be 0 to 9, not '$workers'"
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, bridge, iptables)"
  ensure_packages
  mkdir -p "$STATE"
  local have_managers have_workers
  have_managers="$(nodes_with_role manager | wc -l)"
  have_workers="$(nodes_with_role worker | wc -l)"
  if [ "$have_managers" -gt "$managers" ] || [ "$have_workers" -gt "$workers" ]; then
    die "the cluster has $have_managers manager(s) and $have_workers worker(s); run 'down' first to make a smaller one"
  fi
  local i
  for i in $(seq 1 "$managers"); do record_node "$NODE_PREFIX-m$i" manager "$SUBNET_PREFIX.$((10 + i))"; done
  for i in $(seq 1 "$workers"); do record_node "$NODE_PREFIX-w$i" worker "$SUBNET_PREFIX.$((20 + i))"; done

  ensure_bridge
  local name role address
  while read -r name role address; do
    ensure_namespace "$name" "$address"
    ensure_dockerd "$name"
  done < <(nodes)
  local first first_address
  read -r first _ first_address < <(nodes)
  ensure_swarm "$first" "$first_address"
  # Ready: the manager hears from every node (after a restart, workers take a few seconds).
  for _ in $(seq 1 120); do
    all_ready "$first" && break
    sleep 0.5
  done
  log "$(node_docker "$first" node ls --format '{{.Hostname}}:{{.Status}}:{{.ManagerStatus}}' | tr '\n' ' ')"
  for name in $(nodes_with_role manager); do
    printf 'DOCKER_HOST=unix://%s\n' "$(node_socket "$name")"
  done
}

# --- images ----------------------------------------------------------------------------------------

# Loads host images into every node whose copy is missing or differs.
cmd_images() {
  [ $# -gt 0 ] || die "images: name at least one image"
  [ -s "$STATE/nodes" ] || die "no cluster: run 'up' first"
  local image id archive name
  archive="$(mktemp "${TMPDIR:-/tmp}/local-cluster-images.XXXXXX")"
  trap 'rm -f "$archive"' RETURN
  for image in "$@"; do
    id="$(docker image inspect --format '{{.Id}}' "$image")" || die "no image $image on the host"
    : >"$archive"
    for name in $(nodes | awk '{ print $1 }'); do
      [ "$(node_docker "$name" image inspect --format '{{.Id}}' "$image" 2>/dev/null)" = "$id" ] && continue
      [ -s "$archive" ] || docker save -o "$archive" "$image"
      log "loading $image into $name"
      node_docker "$name" load -q -i "$archive" >/dev/null
    done
  done
}

# --- status, env -----------------------------------------------------------------------------------

cmd_status() {
  [ -s "$STATE/nodes" ] || { log "no cluster (state directory $STATE)"; exit 1; }
  local name role address
  while read -r name role address; do
    printf '%s %s %s pid=%s %s %s\n' "$name" "$role" "$address" "$(node_pid "$name")" \
      "unix://$(node_socket "$name")" "$(swarm_state "$name")"
  done < <(nodes)
}

cmd_env() {
  local first
  first="$(nodes_with_role manager | head -1)"
  [ -n "$first" ] || die "no cluster: run 'up' first"
  printf 'DOCKER_HOST=unix://%s\n' "$(node_socket "$first")"
}

# --- down ------------------------------------------------------------------------------------------

# Sends `signal` to the PIDs and waits up to `seconds` for them to go.
stop_pids() {
  local signal="$1" seconds="$2"; shift 2
  [ $# -gt 0 ] || return 0
  kill "-$signal" "$@" 2>/dev/null || true
  local pid
  for _ in $(seq 1 $((seconds * 5))); do
    local alive=0
    for pid in "$@"; do [ -d "/proc/$pid" ] && alive=1; done
    [ "$alive" -eq 0 ] && return 0
    sleep 0.2
  done
  return 1
}

# The processes left in the node's cgroups (container processes, shims), by PID.
node_cgroup_pids() {
  local name="$1"
  find /sys/fs/cgroup -path "*/$name/*" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

remove_node() {
  local name="$1" pid dir
  dir="$(node_dir "$name")"
  pid="$(node_pid "$name")"
  if [ -n "$pid" ]; then
    log "stopping dockerd of $name (PID $pid)"
    # dockerd stops its containers, then its containerd, before it exits.
    stop_pids TERM 90 "$pid" || stop_pids KILL 10 "$pid" || die "dockerd $pid of $name will not stop"
  fi
  # Whatever outlived the engine (a container of a killed engine) in the node's own cgroups.
  local left
  left="$(node_cgroup_pids "$name" | tr '\n' ' ')"
  # shellcheck disable=SC2086
  [ -z "${left// /}" ] || stop_pids KILL 10 $left || true
  # And any process still in the node's network namespace.
  if [ -e "/var/run/netns/$name" ]; then
    left="$(ip netns pids "$name" 2>/dev/null | tr '\n' ' ')"
    # shellcheck disable=SC2086
    [ -z "${left// /}" ] || stop_pids KILL 10 $left || true
    ip netns del "$name"
  fi
  ip link del "v-$name" 2>/dev/null || true
  # Mounts a killed engine left under its directories (overlays, network namespaces), deepest first.
  local root
  for root in "$dir" "$(node_exec_root "$name")"; do
    awk -v root="$root" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/self/mounts |
      sort -r | while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
  done
  rm -rf "$(node_exec_root "$name")" "$dir"
  find /sys/fs/cgroup -depth -type d \( -path "*/$name" -o -path "*/$name/*" \) -exec rmdir {} + 2>/dev/null || true
}

cmd_down() {
  [ "$(id -u)" -eq 0 ] || die "must run as root"
  local name pid
  # Every engine stops its containers at the same time; each is then waited for in turn.
  for name in $(nodes | awk '{ print $1 }'); do
    pid="$(node_pid "$name")"
    [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
  done
  for name in $(nodes | awk '{ print $1 }'); do remove_node "$name"; done
  while iptables -C "${FORWARD_RULE[@]}" 2>/dev/null; do iptables -D "${FORWARD_RULE[@]}"; done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
  rm -rf "$STATE" "$STATE.lock"
  log "down: no node, namespace, bridge, rule or state directory left"
}

# One command at a time: tests of several processes may run `up` or `images` together.
lock() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock 9
}

case "${1:-}" in
  up) lock; shift; cmd_up "$@" ;;
  images) lock; shift; cmd_images "$@" ;;
  down) lock; cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) usage ;;
esac
