//! `check-model` (hidden): the child process in which the operator checks a model file, under
//! a memory limit, before loading it (see `models::ModelCheck`).

use std::io::Write;
use std::process::ExitCode;

/// Arguments of `swarmpilot check-model`; the model's bytes come on stdin.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model's name, for the diagnostic.
    #[arg(long)]
    pub name: String,
    /// Bytes of data segment this process may use.
    #[arg(long)]
    pub memory_limit: u64,
}

/// Prints the check's outcome on stdout: exit 0 when the model loads and runs, 1 with the
/// diagnostic when not. A process that ran out of memory aborts instead.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let outcome =
        crate::models::check_this_process(&args.name, args.memory_limit, std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    match outcome {
        Ok(passed) => {
            writeln!(stdout, "{passed}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            writeln!(stdout, "{problem}")?;
            Ok(ExitCode::FAILURE)
        }
    }
}
