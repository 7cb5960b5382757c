//! `swarmpilot agent` for tests: the test build's own binary in a FROM-scratch image (with the
//! libraries it loads), the agent token as a file and a Docker secret, and the agent deployed as
//! a global service publishing its port in host mode, removed when dropped.
//! Binaries using it declare `common` too.
#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use swarmpilot::metrics::{AgentConfig, AgentRoute};

use crate::common::{copy_libraries, docker_on, Engine, TestSecret, TestService};

/// The agent token the tests use (at least 16 bytes, as every swarmpilot secret).
pub const AGENT_TOKEN: &str = "sp-test-agent-token-0123456789abcdef";
/// The port the agent listens on inside its task.
pub const AGENT_PORT: u16 = 9323;

/// A file holding [`AGENT_TOKEN`], as the operator reads it.
pub fn token_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("sp-test-agent-token-{}", std::process::id()));
        std::fs::write(&path, format!("{AGENT_TOKEN}\n")).expect("write the agent token file");
        path
    })
}

/// The image `sp-test-agent:<size>-<mtime>`, built once per process from this build's binary, stripped,
/// with exactly the shared libraries it loads: the agent is the operator's binary.
pub fn agent_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let binary = env!("CARGO_BIN_EXE_swarmpilot");
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bin")).expect("image root");
        let stripped = root.join("bin/swarmpilot");
        let status = Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(binary)
            .status()
            .expect("run strip");
        assert!(status.success(), "strip {binary}: {status}");
        copy_libraries(Path::new(binary), &root);
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/bin/swarmpilot\"]\nCMD [\"agent\"]\n",
        )
        .expect("write Dockerfile");
        // Tagged by the binary's size and time: test binaries of one build share one image.
        let built = std::fs::metadata(binary).expect("the swarmpilot binary");
        let stamp = built
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |t| t.as_secs());
        let image = format!("sp-test-agent:{}-{stamp}", built.len());
        let context = dir.path().to_str().expect("utf-8 temp path");
        docker_on(&Engine::Host, &["build", "-q", "-t", &image, context]);
        image
    })
}

/// The agent as a global service on `engine`'s swarm, with the token as a Docker secret and its
/// port published in host mode on `published`; `socket` is the engine socket each task mounts
/// (Swarm templates such as `{{.Node.Hostname}}` allowed).
pub struct AgentService {
    /// Declared before the secret: removed first.
    pub service: TestService,
    secret: TestSecret,
    pub published: u16,
}

impl AgentService {
    pub fn deploy(engine: &Engine, image: &str, published: u16, socket: &str) -> AgentService {
        let token = std::fs::read(token_file()).expect("read the token file");
        let secret = TestSecret::create(engine, "agent-token", &token);
        let secret_flag = format!("source={},target=sp_agent", secret.name);
        let mount = format!("type=bind,source={socket},target=/var/run/docker.sock");
        let publish = format!("mode=host,target={AGENT_PORT},published={published}");
        let service = TestService::create(
            engine,
            "agent",
            &["--mode", "global"],
            &[
                "--secret",
                &secret_flag,
                "--mount",
                &mount,
                "--publish",
                &publish,
                "--env",
                "SWARMPILOT_AGENT_TOKEN_FILE=/run/secrets/sp_agent",
            ],
            &[image, "agent"],
        );
        AgentService {
            service,
            secret,
            published,
        }
    }

    /// How the operator finds these agents.
    pub fn config(&self) -> AgentConfig {
        AgentConfig {
            service: self.service.name.clone(),
            port: AGENT_PORT,
            network: None,
            route: AgentRoute::Auto,
            token_file: token_file().to_owned(),
            timeout: Duration::from_secs(10),
            max_body_bytes: 4 << 20,
            refresh: Duration::from_secs(2),
        }
    }
}
