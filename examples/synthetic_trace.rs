//! Writes a synthetic labeled trace (flash crowds, a flood, or the demo's ramp and flood) in the `record` format, for
//! `swarmpilot replay` and model evaluation:
//! `cargo run --example synthetic_trace -- flood --seed 3 --hours 3 > flood.csv`.

use std::process::ExitCode;

use clap::Parser;
use swarmpilot::replay::synthetic::{generate, write_csv, Kind, Synthetic};

#[derive(Parser)]
struct Args {
    /// Which events the trace carries.
    #[arg(value_enum)]
    kind: Kind,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Baseline requests per second.
    #[arg(long, default_value_t = 100.0)]
    base_rps: f64,
    #[arg(long, default_value_t = 3.0)]
    hours: f64,
    /// The legitimate surges' peak multiplier (flash crowds: 5, 4 and 6; the demo ramp: 8).
    #[arg(long)]
    peak: Option<f64>,
    /// RFC 3339 start time.
    #[arg(long, default_value = "2024-05-01T00:00:00Z")]
    start: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let start = match chrono::DateTime::parse_from_rfc3339(&args.start) {
        Ok(start) => start.with_timezone(&chrono::Utc),
        Err(error) => {
            eprintln!("error: --start {}: {error}", args.start);
            return ExitCode::FAILURE;
        }
    };
    let trace = generate(&Synthetic {
        kind: args.kind,
        seed: args.seed,
        base_rps: args.base_rps,
        hours: args.hours,
        start,
        peak: args.peak,
    });
    match write_csv(&trace, std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
