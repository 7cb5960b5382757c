//! The built binary under a reader that goes away (`swarmpilot ... | head -1`): a printing
//! command stops quietly, and the operator still ignores SIGPIPE.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

const POLICY: &str = "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
spec:\n  maxReplicas: 4\n  metrics:\n  - name: cpu\n    docker: {resource: cpu}\n    target: {utilization: 70}\n";

/// More than a pipe's buffer (64 KiB on Linux) plus what the reader buffers: the command is
/// still writing when the reader goes, whatever the scheduling.
const OUTPUT_BYTES: usize = 256 * 1024;

#[test]
fn a_printing_command_stops_quietly_when_its_reader_goes() {
    let dir = tempfile::tempdir().unwrap();
    // A long name makes long lines: `validate` prints one per file it is given, and parsing the
    // file again is the slow part.
    let file = dir.path().join(format!("{}.yaml", "w".repeat(200)));
    std::fs::write(&file, POLICY).unwrap();
    let line = format!("ok {}: policy web -> service web\n", file.display());
    let repeats = OUTPUT_BYTES / line.len() + 1;
    let mut args = vec!["validate".to_owned()];
    for _ in 0..repeats {
        args.extend(["-f".to_owned(), file.display().to_string()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(&args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(first, line);
    drop(reader);

    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "", "nothing on stderr: no panic, no error");
    // As `cat` under `head`: ended by SIGPIPE, which shells count as a normal end of a pipeline.
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

/// The operator serves sockets for as long as it runs: a client that hangs up must cost it a
/// write error, never the process. It waits for an engine that is not there, so it can be read.
#[test]
fn the_operator_keeps_sigpipe_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .arg("run")
        .env(
            "DOCKER_HOST",
            format!("unix://{}/absent.sock", dir.path().display()),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its first warning comes from inside the runtime, well after start-up set the signals.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut warning = String::new();
    stderr.read_line(&mut warning).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        warning.contains("cannot reach the Docker engine"),
        "{warning}"
    );
    let ignored = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
        .unwrap();
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_ne!(ignored & sigpipe, 0, "SigIgn {ignored:#x}");
}
