//! Each model loaded and optimized once per process, shared by every service that names it.
//!
//! Policies are written by whoever can label a service, so the operator loads only the shipped
//! models and files under the model directory it was started with (`--model-dir`). A load runs
//! on a blocking thread, never under the cache's lock nor on the async threads, and is given
//! [`LOAD_TIMEOUT`]. A model file is first checked in a child process under a memory limit
//! ([`ModelCheck`]), one file at a time, so a crafted graph cannot make the operator allocate
//! without bound. A failed load is remembered: it is tried again after a backoff that doubles
//! up to [`MAX_RETRY`], or as soon as the file changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;

use super::check::ModelCheck;
use super::error::ModelError;
use super::load::{read_model_file, shipped, shipped_names, Model};

/// The longest a model may take to read, decode and optimize.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The first pause before a failed load is tried again; it doubles with each failure.
const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest pause between tries of a failing model.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Models by the name or path policies use; loading happens on first use.
#[derive(Debug)]
pub struct ModelCache {
    /// Where model files may be loaded from; `None`: only the shipped models.
    dir: Option<PathBuf>,
    timeout: Duration,
    check: ModelCheck,
    /// One model file checked and loaded at a time, so the memory of loads does not add up.
    file_loads: Arc<Semaphore>,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
enum Entry {
    Ready(Arc<Model>),
    /// A load in flight since then; one older than the timeout was abandoned and is retried.
    Loading(Instant),
    Failed(Failure),
}

#[derive(Debug)]
struct Failure {
    error: String,
    failures: u32,
    retry_at: Instant,
    /// The file as it was when the load failed; a change retries at once.
    file: Option<FileStamp>,
}

/// What tells one version of a file from the next without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// Where a policy's model comes from.
enum Source {
    Shipped(&'static [u8]),
    File { path: PathBuf, stamp: FileStamp },
}

impl Default for ModelCache {
    fn default() -> Self {
        Self::new(None)
    }
}

impl ModelCache {
    /// A cache loading the shipped models, and files under `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            timeout: LOAD_TIMEOUT,
            check: ModelCheck::default(),
            file_loads: Arc::new(Semaphore::new(1)),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The same cache checking model files with `check` (another memory limit, or in tests
    /// the built `swarmpilot` rather than the test binary).
    pub fn with_check(mut self, check: ModelCheck) -> Self {
        self.check = check;
        self
    }

    /// The same cache with another load timeout (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The model for `spec` (a shipped name, or a file under the model directory), loading it
    /// the first time. While another caller loads it, or while a failed load waits for its
    /// retry, this answers at once with an error saying so.
    pub async fn get(&self, spec: &str) -> Result<Arc<Model>, ModelError> {
        let source = self.resolve(spec)?;
        let file = match &source {
            Source::Shipped(_) => None,
            Source::File { stamp, .. } => Some(stamp.clone()),
        };
        let failures = {
            let mut entries = self.lock();
            let now = Instant::now();
            let failures = match entries.get(spec) {
                Some(Entry::Ready(model)) => return Ok(Arc::clone(model)),
                Some(Entry::Loading(since)) if now.duration_since(*since) < self.timeout => {
                    return Err(ModelError::Loading {
                        model: spec.to_owned(),
                    })
                }
                Some(Entry::Failed(failed)) if now < failed.retry_at && failed.file == file => {
                    return Err(ModelError::Remembered {
                        error: failed.error.clone(),
                        failures: failed.failures,
                        retry_in: failed.retry_at - now,
                    })
                }
                Some(Entry::Failed(failed)) => failed.failures,
                _ => 0,
            };
            entries.insert(spec.to_owned(), Entry::Loading(now));
            failures
        };
        let result = self.load(spec, source).await;
        let mut entries = self.lock();
        match result {
            Ok(model) => {
                entries.insert(spec.to_owned(), Entry::Ready(Arc::clone(&model)));
                Ok(model)
            }
            Err(error) => {
                let failures = failures.saturating_add(1);
                let failure = Failure {
                    error: error.to_string(),
                    failures,
                    retry_at: Instant::now() + retry_after(failures),
                    file,
                };
                entries.insert(spec.to_owned(), Entry::Failed(failure));
                Err(error)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads, checks, decodes and optimizes, all within the timeout: a file is read on a
    /// blocking thread, checked in a child process (killed at the timeout), then loaded on a
    /// blocking thread. A load that times out in process cannot be stopped; its thread
    /// finishes on its own, holding the one file-load permit, and the backoff keeps a slow
    /// model from occupying more than one thread at a time.
    async fn load(&self, spec: &str, source: Source) -> Result<Arc<Model>, ModelError> {
        let name = spec.to_owned();
        let timed_out = || ModelError::Timeout {
            model: spec.to_owned(),
            limit: self.timeout,
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let work = match source {
            Source::Shipped(bytes) => {
                tokio::task::spawn_blocking(move || Model::from_bytes(&name, bytes))
            }
            Source::File { path, .. } => {
                let permit =
                    tokio::time::timeout_at(deadline, Arc::clone(&self.file_loads).acquire_owned())
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(|_| timed_out())?;
                let read_name = name.clone();
                let bytes = tokio::task::spawn_blocking(move || read_model_file(&read_name, &path));
                let bytes = match tokio::time::timeout_at(deadline, bytes).await {
                    Ok(Ok(bytes)) => bytes?,
                    Ok(Err(panicked)) => return Err(panicked_load(spec, panicked)),
                    Err(_) => return Err(timed_out()),
                };
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                self.check.run(spec, &bytes, left).await?;
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    Model::from_bytes(&name, &bytes)
                })
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(loaded)) => loaded.map(Arc::new),
            Ok(Err(panicked)) => Err(panicked_load(spec, panicked)),
            Err(_) => Err(timed_out()),
        }
    }

    /// Where `spec` is loaded from, or why it may not be.
    fn resolve(&self, spec: &str) -> Result<Source, ModelError> {
        if let Some(bytes) = shipped(spec) {
            return Ok(Source::Shipped(bytes));
        }
        let refused = |reason: String| ModelError::Refused {
            model: spec.to_owned(),
            reason,
        };
        let Some(dir) = &self.dir else {
            return Err(refused(format!(
                "is not a shipped model ({}); the operator loads model files only from the directory given with --model-dir, and none was given",
                shipped_names()
            )));
        };
        let path = within(dir, spec).map_err(refused)?;
        let metadata = std::fs::metadata(&path).map_err(|source| ModelError::Read {
            path: spec.to_owned(),
            source,
        })?;
        let stamp = FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        };
        Ok(Source::File { path, stamp })
    }
}

/// `spec` as a file under `dir` (relative to it, or absolute), after following symlinks, or
/// why it is not one.
fn within(dir: &Path, spec: &str) -> Result<PathBuf, String> {
    let outside = || {
        format!(
            "is not a shipped model ({}) nor a file under the model directory {}",
            shipped_names(),
            dir.display()
        )
    };
    let root = dir.canonicalize().map_err(|error| {
        format!(
            "the model directory {} cannot be read: {error}",
            dir.display()
        )
    })?;
    let path = dir
        .join(spec)
        .canonicalize()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => format!("no such file under {}", dir.display()),
            _ => format!("cannot be read: {error}"),
        })?;
    if path.starts_with(&root) && path != root {
        Ok(path)
    } else {
        Err(outside())
    }
}

fn panicked_load(spec: &str, panicked: tokio::task::JoinError) -> ModelError {
    ModelError::Refused {
        model: spec.to_owned(),
        reason: format!("loading it failed: {panicked}"),
    }
}

/// The pause after the `failures`-th failure in a row.
fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shipped_models_load_without_a_directory() {
        let cache = ModelCache::new(None);
        let first = cache.get("traffic-forecast").await.unwrap();
        let again = cache.get("traffic-forecast").await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[tokio::test]
    async fn a_path_needs_the_model_directory() {
        let cache = ModelCache::new(None);
        let error = cache.get("/dev/zero").await.unwrap_err().to_string();
        assert!(
            error.starts_with("model /dev/zero: is not a shipped model (traffic-forecast, traffic-states); the operator loads model files only from the directory given with --model-dir"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn files_outside_the_directory_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(Some(dir.path().to_owned()));
        let error = cache.get("/dev/zero").await.unwrap_err().to_string();
        assert!(
            error.contains("nor a file under the model directory"),
            "{error}"
        );
        let error = cache.get("../../etc/passwd").await.unwrap_err().to_string();
        assert!(
            error.contains("nor a file under the model directory"),
            "{error}"
        );
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.onnx")).unwrap();
        let error = cache.get("zero.onnx").await.unwrap_err().to_string();
        assert!(
            error.contains("nor a file under the model directory"),
            "{error}"
        );
        let fifo = dir.path().join("pipe.onnx");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let error = cache.get("pipe.onnx").await.unwrap_err().to_string();
        assert_eq!(
            error,
            "model pipe.onnx: is not a regular file (devices, pipes and directories are not models)"
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling() {
        assert_eq!(retry_after(1), FIRST_RETRY);
        assert_eq!(retry_after(2), FIRST_RETRY * 2);
        assert_eq!(retry_after(40), MAX_RETRY);
    }
}
