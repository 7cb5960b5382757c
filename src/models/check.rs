//! Checking a model file in a child process under a memory limit before the operator loads it.
//!
//! tract decodes and optimizes a graph by evaluating its constant parts, so a small file can
//! ask for any amount of memory (a `ConstantOfShape` of a huge constant shape, an `Expand`, a
//! giant initializer): a size cap on the file bounds nothing. Checking every tensor shape in the
//! proto would need to know what each of tract's optimizations allocates. Instead the operator
//! runs its own binary (`swarmpilot check-model`, hidden) on the file's bytes, with its data
//! segment limited by `RLIMIT_DATA` (the heap, and on Linux 4.7 and later every private
//! writable mapping, which is where every allocation lands; unlike `RLIMIT_AS` it does not count
//! the mapped executable). The child decodes, optimizes and runs the largest batch the operator
//! sends; an allocation past the limit fails there, and the child ends, not the operator. Only
//! bytes that passed are then loaded in process: the same bytes through the same code, so the
//! operator's load needs no more than the child did.

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ModelError;
use super::load::{Model, MAX_MODEL_BYTES};

/// The most rows the operator runs through a model at once; the check runs this many.
pub const MAX_BATCH_ROWS: usize = 1024;
/// The memory a model check may use, by default (`--model-memory-limit`).
pub const DEFAULT_MEMORY_LIMIT: u64 = 512 * 1024 * 1024;
/// The subcommand of the operator's binary that checks a model.
const CHECK_COMMAND: &str = "check-model";
/// What a passing check prints; anything else is a failure.
const PASSED: &str = "model check passed";
/// The most of the child's answer kept for a diagnostic.
const MAX_ANSWER: u64 = 4096;

/// How model files are checked: which program runs the check, under which memory limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelCheck {
    /// The operator's own binary (or, in tests, the built `swarmpilot`).
    pub program: PathBuf,
    /// Bytes of data segment the check may use.
    pub memory_limit: u64,
}

impl Default for ModelCheck {
    /// The running binary, under [`DEFAULT_MEMORY_LIMIT`].
    fn default() -> Self {
        Self {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

impl ModelCheck {
    /// Checks `bytes` (the model `name`) in a child process, within `timeout`; a child still
    /// running then is killed.
    pub async fn run(&self, name: &str, bytes: &[u8], timeout: Duration) -> Result<(), ModelError> {
        let failed = |problem: String| ModelError::Check {
            model: name.to_owned(),
            problem: format!("model {name}: {problem}"),
        };
        let mut child = tokio::process::Command::new(&self.program)
            .arg(CHECK_COMMAND)
            .arg("--name")
            .arg(name)
            .arg("--memory-limit")
            .arg(self.memory_limit.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                failed(format!(
                    "cannot start the check process {}: {error}",
                    self.program.display()
                ))
            })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(failed("the check process has no pipes".into()));
        };
        let exchange = async {
            // The child may stop reading early (it failed or aborted): its answer says why.
            let _ = stdin.write_all(bytes).await;
            drop(stdin);
            let mut answer = String::new();
            let _ = stdout.take(MAX_ANSWER).read_to_string(&mut answer).await;
            let status = child.wait().await;
            (answer, status)
        };
        let (answer, status) =
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| ModelError::Timeout {
                    model: name.to_owned(),
                    limit: timeout,
                })?;
        let status =
            status.map_err(|error| failed(format!("the check process was lost: {error}")))?;
        let answer = answer.trim();
        if status.success() && answer == PASSED {
            return Ok(());
        }
        if !answer.is_empty() && status.code() == Some(1) {
            // The child's own diagnostic, which names the model.
            return Err(ModelError::Check {
                model: name.to_owned(),
                problem: answer.to_owned(),
            });
        }
        Err(failed(format!(
            "checking it needed more than the {} MiB a model may use, or crashed: the check process ended with {status}",
            self.memory_limit / (1024 * 1024)
        )))
    }
}

/// The child's side, in the `check-model` command: limits this process's data segment to
/// `memory_limit` bytes, reads a model from `input`, loads it and runs a full batch. `Ok` is
/// the line to print on success; `Err` the diagnostic.
pub fn check_this_process(
    name: &str,
    memory_limit: u64,
    input: impl Read,
) -> Result<&'static str, String> {
    limit_data_segment(memory_limit)?;
    let mut bytes = Vec::new();
    input
        .take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("model {name}: cannot read it: {error}"))?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(format!(
            "model {name}: larger than the {MAX_MODEL_BYTES}-byte limit for a model file"
        ));
    }
    // tract panics when an allocation fails: that is the limit at work, and its message says
    // how much the graph asked for.
    std::panic::catch_unwind(|| load_and_run(name, &bytes)).unwrap_or_else(|panic| {
        let cause = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        Err(format!(
            "model {name}: loading it stopped under the {} MiB a model may use: {cause}",
            memory_limit / (1024 * 1024)
        ))
    })
}

/// Decodes and optimizes the model, then runs the largest batch the operator sends.
fn load_and_run(name: &str, bytes: &[u8]) -> Result<&'static str, String> {
    let model = Model::from_bytes(name, bytes).map_err(|error| error.to_string())?;
    let rows = vec![0.0; MAX_BATCH_ROWS * model.input_width];
    model
        .run_rows(MAX_BATCH_ROWS, rows)
        .map_err(|error| error.to_string())?;
    Ok(PASSED)
}

fn limit_data_segment(bytes: u64) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct it is given and changes only this process's limits.
    let result = unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) };
    if result == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot limit the check's memory to {bytes} bytes: {}",
            std::io::Error::last_os_error()
        ))
    }
}
