//! The local multi-node Swarm of `deploy/local-cluster.sh`, for tests: its nodes and their
//! engines (read from the script's state directory), a connected [`DockerSwarm`] for the
//! manager, the test image and network on every node, the spare managers drained unless a test
//! opens them, stopping or killing one node's dockerd by its PID and starting it again, and running code inside the network namespace of a container on the
//! overlay network, where the tasks' overlay addresses are reachable.
//!
//! Binaries using it declare `common` too. Tests never skip: when no cluster can be had they
//! panic with what to do about it.
#![allow(dead_code)] // each test binary uses part of it

use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use swarmpilot::swarm::DockerSwarm;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::common::{
    docker_on, ensure_test_image, ensure_test_network, unique_name, Engine, TEST_IMAGE,
};

/// Where `deploy/local-cluster.sh` keeps its state unless `SWARMPILOT_CLUSTER_DIR` says otherwise.
const DEFAULT_STATE_DIR: &str = "/var/lib/swarmpilot-cluster";

/// How long a stopped dockerd may take to exit: it stops its containers first (each gets its
/// stop grace period), on a machine other tests keep busy.
const STOP_DEADLINE: Duration = Duration::from_secs(180);

/// The cluster the tests ask for: three managers, so one can be lost with the quorum kept, and
/// two workers. The managers beyond the first are drained (they run no task) except while a
/// test opens them with [`Cluster::open_spare_managers`]: every other test places its tasks as
/// on one manager and two workers.
const MANAGERS: usize = 3;
const WORKERS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Manager,
    Worker,
}

/// One node of the cluster: a dockerd in its own network namespace.
#[derive(Clone, Debug)]
pub struct Node {
    /// The script's name for it, also its hostname in the swarm (`spc-m1`, `spc-w1`, ...).
    pub name: String,
    pub role: Role,
    /// Its address on the cluster's bridge, reachable from the host.
    pub address: IpAddr,
    dir: PathBuf,
}

impl Node {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The engine, for the docker CLI helpers of `common`.
    pub fn engine(&self) -> Engine {
        Engine::Socket(self.socket())
    }

    /// `unix://...`, as `DOCKER_HOST` or [`DockerSwarm::connect_to`] take it.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The PID of the node's dockerd, from the pidfile it wrote, while that process lives.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.dir.join("dockerd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        is_dockerd(pid).then_some(pid)
    }

    /// A connected adapter to this node's engine.
    pub async fn swarm(&self) -> DockerSwarm {
        DockerSwarm::connect_to(&self.docker_host())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to node {}: {e}", self.name))
    }

    /// The node's ID in the swarm, as tasks name it.
    pub fn swarm_id(&self) -> String {
        docker_on(&self.engine(), &["info", "--format", "{{.Swarm.NodeID}}"])
    }
}

/// Whether `pid` is a live dockerd (not a zombie, not a recycled PID).
fn is_dockerd(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (comm) STATE ...": the command is in parentheses, the state right after.
    let comm_and_rest = stat.split_once(" (").map(|(_, rest)| rest);
    match comm_and_rest.and_then(|rest| rest.rsplit_once(") ")) {
        Some((comm, rest)) => comm == "dockerd" && !rest.starts_with('Z'),
        None => false,
    }
}

/// The cluster `deploy/local-cluster.sh up` made.
#[derive(Debug)]
pub struct Cluster {
    /// In the script's order: managers first.
    pub nodes: Vec<Node>,
}

/// Tests that stop a node hold this exclusively; tests that need every node up share it.
static ACCESS: RwLock<()> = RwLock::const_new(());
/// Tests that stop the first manager hold this exclusively too (taken before [`ACCESS`]);
/// tests that need only the first manager (the engine they talk through, the node their tasks
/// are placed on) share it, and run beside tests that stop other nodes.
static FIRST_MANAGER: RwLock<()> = RwLock::const_new(());

impl Cluster {
    /// The cluster, brought up once per process (the script is idempotent: it starts only what
    /// is missing), with the test image loaded into every node and the test network created.
    pub fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            ensure_test_image();
            // At least the size the tests need; a larger recorded cluster is kept as it is.
            let recorded = Cluster::read_if_any(&state_dir());
            let count = |role| recorded.nodes.iter().filter(|n| n.role == role).count();
            let managers = count(Role::Manager).max(MANAGERS).to_string();
            let workers = count(Role::Worker).max(WORKERS).to_string();
            script(&["up", "--managers", &managers, "--workers", &workers]);
            script(&["images", TEST_IMAGE]);
            let cluster = Cluster::read(&state_dir());
            cluster.set_availability(&cluster.spare_managers(), "drain");
            ensure_test_network(&cluster.manager().engine());
            cluster
        })
    }

    /// The managers beyond the first: drained, so they run no task, unless opened.
    pub fn spare_managers(&self) -> Vec<&Node> {
        let first = self.manager();
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Manager && n.name != first.name)
            .collect()
    }

    /// The nodes tasks are placed on: every node but the drained spare managers.
    pub fn task_nodes(&self) -> Vec<&Node> {
        let spare = self.spare_managers();
        self.nodes
            .iter()
            .filter(|n| !spare.iter().any(|s| s.name == n.name))
            .collect()
    }

    /// Lets the spare managers run tasks until the guard is dropped (then they are drained
    /// again, their tasks moved or stopped). For a test that holds the cluster exclusively.
    pub fn open_spare_managers(&self) -> OpenSpareManagers<'_> {
        self.set_availability(&self.spare_managers(), "active");
        OpenSpareManagers { cluster: self }
    }

    fn set_availability(&self, nodes: &[&Node], availability: &str) {
        for node in nodes {
            docker_on(
                &self.manager().engine(),
                &["node", "update", "--availability", availability, &node.name],
            );
        }
    }

    /// The cluster for a test that needs every node up: any number of these run together.
    pub async fn shared() -> (&'static Cluster, RwLockReadGuard<'static, ()>) {
        let guard = ACCESS.read().await;
        (Cluster::get(), guard)
    }

    /// The cluster for a test that stops a node other than the first manager: it runs alone
    /// among this binary's tests but those that need only the first manager.
    pub async fn exclusive() -> (&'static Cluster, RwLockWriteGuard<'static, ()>) {
        let guard = ACCESS.write().await;
        (Cluster::get(), guard)
    }

    /// The cluster for a test that stops the first manager: it runs alone.
    pub async fn exclusive_with_first_manager() -> (
        &'static Cluster,
        (RwLockWriteGuard<'static, ()>, RwLockWriteGuard<'static, ()>),
    ) {
        let first = FIRST_MANAGER.write().await;
        let all = ACCESS.write().await;
        (Cluster::get(), (first, all))
    }

    /// The cluster for a test that uses only the first manager (talks through it, places its
    /// tasks on it): it runs beside tests that stop other nodes.
    pub async fn first_manager_only() -> (&'static Cluster, RwLockReadGuard<'static, ()>) {
        let guard = FIRST_MANAGER.read().await;
        (Cluster::get(), guard)
    }

    /// The recorded cluster, or none (no node) before the first `up`.
    fn read_if_any(dir: &Path) -> Cluster {
        if dir.join("nodes").exists() {
            Cluster::read(dir)
        } else {
            Cluster { nodes: Vec::new() }
        }
    }

    fn read(dir: &Path) -> Cluster {
        let listing = std::fs::read_to_string(dir.join("nodes"))
            .unwrap_or_else(|e| unavailable(&format!("{}/nodes: {e}", dir.display())));
        let nodes = listing
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [name, role, address] = fields[..] else {
                    unavailable(&format!("{}/nodes: bad line {line:?}", dir.display()))
                };
                Node {
                    name: name.to_owned(),
                    role: if role == "manager" {
                        Role::Manager
                    } else {
                        Role::Worker
                    },
                    address: address
                        .parse()
                        .unwrap_or_else(|e| unavailable(&format!("address {address:?}: {e}"))),
                    dir: dir.join(name),
                }
            })
            .collect();
        Cluster { nodes }
    }

    /// Loads `image` from the host's engine into every node that lacks it.
    pub fn load_image(&self, image: &str) {
        script(&["images", image]);
    }

    /// The first manager: the one the swarm was initialised on.
    pub fn manager(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.role == Role::Manager)
            .expect("the cluster has a manager")
    }

    pub fn workers(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Worker)
            .collect()
    }

    /// A connected adapter to the first manager, as the operator would use.
    pub async fn swarm(&self) -> DockerSwarm {
        self.manager().swarm().await
    }

    /// The node a task runs on, by the swarm node ID the task carries, among the nodes whose
    /// engine answers (a stopped node's tasks are found on no node).
    pub fn node_of(&self, swarm_id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| {
            n.engine()
                .command()
                .args(["info", "--format", "{{.Swarm.NodeID}}"])
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == swarm_id
                })
        })
    }

    /// Stops the node's dockerd with SIGTERM to the PID in its pidfile and waits until it has
    /// exited. The node comes back with [`StoppedNode::start`], or when the guard is dropped.
    pub fn stop<'a>(&'a self, node: &'a Node) -> StoppedNode<'a> {
        self.signal(node, libc::SIGTERM)
    }

    /// Kills the node's dockerd with SIGKILL, by the PID in its pidfile: the node dies without
    /// stopping anything (its containers are left without an engine). Comes back as after
    /// [`Cluster::stop`].
    pub fn kill<'a>(&'a self, node: &'a Node) -> StoppedNode<'a> {
        self.signal(node, libc::SIGKILL)
    }

    fn signal<'a>(&'a self, node: &'a Node, signal: libc::c_int) -> StoppedNode<'a> {
        let pid = node
            .pid()
            .unwrap_or_else(|| panic!("node {}: no running dockerd to stop", node.name));
        // SAFETY: kill(2) has no memory effects; `pid` was just read from the node's own pidfile
        // and checked to be a live dockerd.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "cannot signal dockerd {pid} of {}", node.name);
        let started = std::time::Instant::now();
        while is_dockerd(pid) {
            assert!(
                started.elapsed() < STOP_DEADLINE,
                "dockerd {pid} of {} did not exit within {STOP_DEADLINE:?} of SIGTERM",
                node.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        StoppedNode {
            node,
            started: false,
        }
    }

    /// Runs `work` on a thread of its own inside the network namespace of a container attached
    /// to `network` on the manager: what it connects to is what a process in that container
    /// (an operator deployed on the overlay, say) would reach, the tasks' overlay addresses on
    /// every node included; files and the engines' unix sockets are the host's as usual.
    pub fn on_overlay<F, Fut, T>(&self, network: &str, work: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        let engine = self.manager().engine();
        let name = unique_name("overlay-seat");
        let run = [
            "run",
            "--detach",
            "--rm",
            "--name",
            &name,
            "--network",
            network,
            TEST_IMAGE,
            "sleep",
            "86400",
        ];
        // A manager whose engine was just restarted, no longer the raft leader, may not find
        // the overlay for a container for a few seconds ("network ... not found"): retry then.
        for attempt in 0.. {
            let output = engine.command().args(run).output().expect("run docker");
            if output.status.success() {
                break;
            }
            let error = String::from_utf8_lossy(&output.stderr);
            assert!(
                attempt < 60 && error.contains("not found"),
                "docker {run:?} on {engine:?} failed: {error}"
            );
            let _ = engine.command().args(["rm", "--force", &name]).output();
            std::thread::sleep(Duration::from_secs(1));
        }
        let _removed = RemoveContainer {
            engine: engine.clone(),
            name: name.clone(),
        };
        let pid = docker_on(&engine, &["inspect", "--format", "{{.State.Pid}}", &name]);
        let namespace = File::open(format!("/proc/{pid}/ns/net"))
            .unwrap_or_else(|e| panic!("network namespace of container {name} (PID {pid}): {e}"));
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns(2) only changes this thread's network namespace; the file
                    // descriptor is a network namespace opened just above and still open.
                    let entered = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(
                        entered,
                        0,
                        "setns into {name}'s network namespace: {}",
                        std::io::Error::last_os_error()
                    );
                    // Every thread the runtime starts inherits this thread's namespace.
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the overlay thread")
                        .block_on(work())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// The spare managers opened to tasks; dropping it drains them again.
pub struct OpenSpareManagers<'a> {
    cluster: &'a Cluster,
}

impl Drop for OpenSpareManagers<'_> {
    fn drop(&mut self) {
        let spare = self.cluster.spare_managers();
        for node in spare {
            let _ = self
                .cluster
                .manager()
                .engine()
                .command()
                .args(["node", "update", "--availability", "drain", &node.name])
                .output();
        }
    }
}

/// A node whose dockerd was stopped; dropping it starts the node again.
pub struct StoppedNode<'a> {
    pub node: &'a Node,
    started: bool,
}

impl StoppedNode<'_> {
    /// Starts the node's dockerd again (with the script, which waits until it answers).
    pub fn start(mut self) {
        self.started = true;
        script(&["up"]);
        assert!(
            self.node.pid().is_some(),
            "node {} did not start",
            self.node.name
        );
    }
}

impl Drop for StoppedNode<'_> {
    fn drop(&mut self) {
        if !self.started {
            let _ = script_status(&["up"]);
        }
    }
}

struct RemoveContainer {
    engine: Engine,
    name: String,
}

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = self
            .engine
            .command()
            .args(["rm", "--force", &self.name])
            .output();
    }
}

fn state_dir() -> PathBuf {
    std::env::var_os("SWARMPILOT_CLUSTER_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from)
}

fn script_status(args: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local-cluster.sh");
    // In the host's network namespace (the process's main thread's) even when called from a
    // thread of `Cluster::on_overlay`, whose children would inherit the container's.
    let host_namespace = format!("--net=/proc/{}/ns/net", std::process::id());
    Command::new("nsenter")
        .arg(host_namespace)
        .arg("bash")
        .arg(script)
        .args(args)
        .status()
}

/// Runs `deploy/local-cluster.sh` with `args`; a failure means no cluster.
fn script(args: &[&str]) {
    match script_status(args) {
        Ok(status) if status.success() => {}
        other => unavailable(&format!("deploy/local-cluster.sh {args:?}: {other:?}")),
    }
}

fn unavailable(why: &str) -> ! {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and no local cluster: {why}. CI must run the cluster tests on a real multi-node Swarm.");
    }
    panic!(
        "no local cluster: {why}. Run `bash deploy/local-cluster.sh up` (as root) and run the tests again."
    );
}
