//! `swarmpilot validate -f FILE|DIR|-`: checks policy files offline and reports every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::files::load_policies;
use super::{print_structured, Output};
use crate::policy::Diagnostic;

/// Arguments of `swarmpilot validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A policy file, a directory of *.yaml/*.yml files, or `-` for stdin; may be repeated.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    valid: bool,
    files: Vec<FileReport>,
}

#[derive(Debug, Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<PolicyRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Serialize)]
struct PolicyRef {
    name: String,
    service: String,
}

/// Prints `ok FILE: policy NAME -> service SVC` or `FILE: PATH: PROBLEM` lines (or the same
/// as YAML/JSON); exit code 1 when any file is invalid.
pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let files: Vec<FileReport> = load_policies(&args.files)?
        .into_iter()
        .map(|file| match file.policies {
            Ok(policies) => FileReport {
                file: file.name,
                valid: true,
                policies: policies
                    .iter()
                    .map(|p| PolicyRef {
                        name: p.metadata.name.clone(),
                        service: p.service().to_owned(),
                    })
                    .collect(),
                diagnostics: Vec::new(),
            },
            Err(found) => FileReport {
                file: file.name,
                valid: false,
                policies: Vec::new(),
                diagnostics: found.0,
            },
        })
        .collect();
    let report = Report {
        valid: files.iter().all(|f| f.valid),
        files,
    };
    if output == Output::Table {
        for file in &report.files {
            for policy in &file.policies {
                println!(
                    "ok {}: policy {} -> service {}",
                    file.file, policy.name, policy.service
                );
            }
            for diagnostic in &file.diagnostics {
                println!("{}: {diagnostic}", file.file);
            }
        }
    } else {
        print_structured(&report, output)?;
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
