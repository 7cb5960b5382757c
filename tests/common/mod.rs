//! The integration-test harness: a reachable local Swarm, a connected [`DockerSwarm`], a tiny
//! FROM-scratch test image, and uniquely named test services that are removed when dropped.
//!
//! Tests never skip: when no Swarm can be had they panic with what to do about it.
#![allow(dead_code)] // each test crate uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use swarmpilot::swarm::{DockerSwarm, Swarm, TaskInfo, TaskState};

/// The image every running test task uses: Debian's static busybox in a scratch image, so it
/// builds with no registry (`sleep`, `httpd`, `sh` are all in it).
pub const TEST_IMAGE: &str = "sp-test-busybox:1";
/// An attachable overlay network test tasks join, so they have addresses to discover.
pub const TEST_NETWORK: &str = "sp-test-net";

const BUSYBOX: &str = "/bin/busybox";

/// Makes sure a local Swarm answers, running `deploy/local-swarm.sh` once per process if not.
pub fn ensure_swarm() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if swarm_ready() && busybox_ready() {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local-swarm.sh");
        let status = Command::new("bash").arg(&script).status();
        if !matches!(status, Ok(s) if s.success()) || !swarm_ready() || !busybox_ready() {
            unavailable(&format!(
                "{} did not give a working Swarm ({status:?})",
                script.display()
            ));
        }
    });
}

fn unavailable(why: &str) -> ! {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and no local Docker Swarm: {why}. CI must run the integration tests on a real Swarm.");
    }
    panic!(
        "no local Docker Swarm: {why}. Run `bash deploy/local-swarm.sh` (as root) and run the tests again."
    );
}

fn swarm_ready() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "active")
        .unwrap_or(false)
}

fn busybox_ready() -> bool {
    Command::new("dpkg")
        .args(["-s", "busybox-static"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A connected adapter to the local Swarm.
pub async fn swarm() -> DockerSwarm {
    ensure_swarm();
    match DockerSwarm::connect().await {
        Ok(swarm) => swarm,
        Err(e) => unavailable(&e.to_string()),
    }
}

/// The engine a docker CLI command goes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// The host's own engine (`DOCKER_HOST`, else the default socket): the local Swarm.
    #[default]
    Host,
    /// The engine listening on this unix socket: a node of the local cluster (see `cluster.rs`).
    Socket(PathBuf),
}

impl Engine {
    /// A `docker` command aimed at this engine.
    pub fn command(&self) -> Command {
        let mut command = Command::new("docker");
        if let Engine::Socket(socket) = self {
            command.env("DOCKER_HOST", format!("unix://{}", socket.display()));
        }
        command
    }
}

/// Runs the docker CLI on the host's engine, panicking with its stderr on failure; returns
/// trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    docker_on(&Engine::Host, args)
}

/// Runs the docker CLI on `engine`, panicking with its stderr on failure; returns trimmed stdout.
pub fn docker_on(engine: &Engine, args: &[&str]) -> String {
    let output = engine
        .command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?} on {engine:?}: {e}"));
    assert!(
        output.status.success(),
        "docker {args:?} on {engine:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Builds [`TEST_IMAGE`] and creates [`TEST_NETWORK`], once per process.
pub fn ensure_test_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        ensure_swarm();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(BUSYBOX, dir.path().join("busybox")).expect("copy busybox");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n",
        )
        .expect("write Dockerfile");
        let context = dir.path().to_str().expect("utf-8 temp path");
        docker(&["build", "-q", "-t", TEST_IMAGE, context]);
        ensure_test_network(&Engine::Host);
    });
}

/// Copies the shared libraries `binary` loads (as `ldd` lists them) into the image root `root`,
/// each at its own path, so a dynamically linked binary runs in a FROM-scratch image.
pub fn copy_libraries(binary: &Path, root: &Path) {
    let ldd = Command::new("ldd").arg(binary).output().expect("run ldd");
    for library in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
    {
        let inside = root.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(inside.parent().expect("a library has a directory"))
            .expect("library directory");
        std::fs::copy(library, &inside)
            .unwrap_or_else(|e| panic!("copy {library} into an image: {e}"));
    }
}

/// Creates [`TEST_NETWORK`] on the swarm `engine` manages, unless it exists.
pub fn ensure_test_network(engine: &Engine) {
    // Other test processes may create it at the same time: only its existence matters.
    let exists = engine
        .command()
        .args(["network", "inspect", TEST_NETWORK])
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let _ = engine
            .command()
            .args([
                "network",
                "create",
                "-d",
                "overlay",
                "--attachable",
                TEST_NETWORK,
            ])
            .output();
        docker_on(engine, &["network", "inspect", TEST_NETWORK]);
    }
}

/// GET `url` with `token` as the bearer: the decoded JSON body of a success, or `None` while
/// the server does not answer, answers with an error status or with a body that does not decode.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    url: &str,
    token: &str,
    timeout: Duration,
) -> Option<T> {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .timeout(timeout)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// A name no other test (in this or a concurrent process) uses: `sp-test-{prefix}-{pid}-{n}`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "sp-test-{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Swarm service made for one test, removed when dropped.
pub struct TestService {
    pub name: String,
    pub id: String,
    /// The manager it was created on.
    pub engine: Engine,
}

impl TestService {
    /// A replicated service with no task: any image name does, nothing is pulled or run.
    pub fn idle(prefix: &str, extra: &[&str]) -> TestService {
        ensure_swarm();
        Self::create(
            &Engine::Host,
            prefix,
            &["--replicas", "0"],
            extra,
            &["sp-test-none:0"],
        )
    }

    /// A replicated service of `replicas` busybox tasks sleeping on [`TEST_NETWORK`].
    pub fn sleeping(prefix: &str, replicas: u32, extra: &[&str]) -> TestService {
        ensure_test_image();
        Self::sleeping_on(&Engine::Host, prefix, replicas, extra)
    }

    /// [`TestService::sleeping`] on the swarm `engine` manages, which must have the test image
    /// and network (the cluster harness loads them).
    pub fn sleeping_on(
        engine: &Engine,
        prefix: &str,
        replicas: u32,
        extra: &[&str],
    ) -> TestService {
        let replicas = replicas.to_string();
        let mode = [
            "--replicas",
            replicas.as_str(),
            "--network",
            TEST_NETWORK,
            "--endpoint-mode",
            "dnsrr",
        ];
        Self::create(
            engine,
            prefix,
            &mode,
            extra,
            &[TEST_IMAGE, "sleep", "86400"],
        )
    }

    /// A global-mode service with no task (no node matches its constraint).
    pub fn global(prefix: &str) -> TestService {
        ensure_swarm();
        let mode = [
            "--mode",
            "global",
            "--constraint",
            "node.labels.sp-test-none==1",
        ];
        Self::create(&Engine::Host, prefix, &mode, &[], &["sp-test-none:0"])
    }

    /// A service of `image` (with its command) on `engine`'s swarm.
    pub fn create(
        engine: &Engine,
        prefix: &str,
        mode: &[&str],
        extra: &[&str],
        image: &[&str],
    ) -> TestService {
        let name = unique_name(prefix);
        let mut args = vec!["service", "create", "--detach", "--quiet", "--name", &name];
        args.extend_from_slice(mode);
        args.extend_from_slice(extra);
        args.extend_from_slice(image);
        let id = docker_on(engine, &args);
        TestService {
            name,
            id,
            engine: engine.clone(),
        }
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        let _ = self
            .engine
            .command()
            .args(["service", "rm", &self.id])
            .output();
    }
}

/// A Docker secret made for a test, removed when dropped once no service uses it any more (a
/// struct that declares its services before the secret drops them first).
pub struct TestSecret {
    pub name: String,
    engine: Engine,
}

impl TestSecret {
    /// A secret holding `contents` on `engine`'s swarm.
    pub fn create(engine: &Engine, prefix: &str, contents: &[u8]) -> TestSecret {
        use std::io::Write;
        let name = unique_name(prefix);
        let mut child = engine
            .command()
            .args(["secret", "create", &name, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run docker secret create");
        let written = child.stdin.take().expect("its stdin").write_all(contents);
        let created = child.wait_with_output().expect("docker secret create");
        assert!(
            written.is_ok() && created.status.success(),
            "docker secret create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        TestSecret {
            name,
            engine: engine.clone(),
        }
    }
}

impl Drop for TestSecret {
    fn drop(&mut self) {
        // Refused while a task of a removed service still holds it: try for ten seconds.
        for _ in 0..50 {
            let removed = self
                .engine
                .command()
                .args(["secret", "rm", &self.name])
                .output();
            if removed.is_ok_and(|o| o.status.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Waits until `count` tasks of the service run, and returns them. Panics after a minute.
pub async fn running_tasks(swarm: &DockerSwarm, service_id: &str, count: usize) -> Vec<TaskInfo> {
    for _ in 0..300 {
        let tasks = swarm.list_tasks(service_id).await.expect("list tasks");
        let running: Vec<TaskInfo> = tasks
            .into_iter()
            .filter(|t| t.state == TaskState::Running && t.desired_running)
            .collect();
        if running.len() == count {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("service {service_id} did not get {count} running tasks within a minute");
}

/// The service's `Spec` as the docker CLI reads it, as JSON.
pub fn spec_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec}}",
        name,
    ]))
    .expect("spec JSON")
}

/// Polls the service's replica count for up to two minutes until it is `expected`.
pub async fn replicas_reach<S: Swarm>(swarm: &S, service: &TestService, expected: u64) {
    replicas_reach_watching(swarm, service, expected, || {}).await;
}

/// [`replicas_reach`], calling `watch` before each look (to collect what changes meanwhile).
pub async fn replicas_reach_watching<S: Swarm>(
    swarm: &S,
    service: &TestService,
    expected: u64,
    mut watch: impl FnMut(),
) {
    let mut replicas = None;
    for _ in 0..1200 {
        watch();
        replicas = swarm
            .inspect_service(&service.id)
            .await
            .ok()
            .and_then(|s| s.replicas);
        if replicas == Some(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} has {replicas:?} replicas, not {expected}, after two minutes",
        service.name
    );
}
