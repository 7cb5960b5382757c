//! Model files the operator loads from its model directory: each is checked in a child process
//! under a memory limit first, so a crafted graph fails there with a diagnostic naming the
//! model, and the operator's own memory stays small.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use swarmpilot::models::{ModelCache, ModelCheck, ModelError, DEFAULT_MEMORY_LIMIT};

use crate::counting::peak_of;
use crate::crafted_model::{crafted_model, forecaster};

fn check() -> ModelCheck {
    ModelCheck {
        program: PathBuf::from(env!("CARGO_BIN_EXE_swarmpilot")),
        memory_limit: DEFAULT_MEMORY_LIMIT,
    }
}

fn cache(dir: &Path) -> ModelCache {
    ModelCache::new(Some(dir.to_owned())).with_check(check())
}

fn run<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

#[test]
fn a_crafted_graph_fails_its_check_and_the_operator_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = crafted_model();
    std::fs::write(dir.path().join("crafted.onnx"), &bytes).unwrap();
    let cache = cache(dir.path());
    let started = Instant::now();
    let (error, peak) = peak_of(|| run(cache.get("crafted.onnx")).unwrap_err());
    println!(
        "{} bytes of model: {error} ({:?}; the operator's thread peaked at {peak} bytes)",
        bytes.len(),
        started.elapsed()
    );
    assert!(matches!(error, ModelError::Check { .. }), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("model crafted.onnx: "), "{message}");
    assert!(message.contains("512 MiB"), "{message}");
    assert!(peak < 16 * 1024 * 1024, "{peak} bytes");
    // Remembered, not checked again on the next pass.
    let again = run(cache.get("crafted.onnx")).unwrap_err();
    assert!(
        matches!(again, ModelError::Remembered { failures: 1, .. }),
        "{again}"
    );
}

#[test]
fn a_failed_load_is_remembered_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.onnx");
    std::fs::write(&path, b"not a model").unwrap();
    let cache = cache(dir.path());
    let first = run(cache.get("mine.onnx")).unwrap_err().to_string();
    assert!(
        first.starts_with("model mine.onnx: not a valid ONNX model"),
        "{first}"
    );
    let second = run(cache.get("mine.onnx")).unwrap_err();
    assert!(
        matches!(second, ModelError::Remembered { failures: 1, .. }),
        "{second}"
    );
    assert!(second.to_string().contains("tried again in"), "{second}");
    // A changed file is tried at once: here, the shipped forecaster copied in, which passes
    // its check and loads.
    std::fs::write(&path, forecaster()).unwrap();
    let model = run(cache.get("mine.onnx")).unwrap();
    assert_eq!(model.name, "mine.onnx");
}

#[test]
fn a_slow_load_times_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.onnx"), forecaster()).unwrap();
    let cache = cache(dir.path()).with_timeout(Duration::ZERO);
    let error = run(cache.get("f.onnx")).unwrap_err();
    assert!(matches!(error, ModelError::Timeout { .. }), "{error}");
}
