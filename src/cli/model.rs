//! `swarmpilot model inspect|eval`: look at an ONNX traffic model, or judge it on a trace.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::{print_structured, Output};
use crate::models::eval::{eval_trace, EvalOptions, EvalReport};
use crate::models::{inspect, Model};
use crate::replay::observed;

/// Arguments of `swarmpilot model`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a model's metadata, inputs and outputs.
    Inspect {
        /// `traffic-forecast`, `traffic-states`, or a path to an .onnx file.
        model: String,
    },
    /// Run a model over a trace CSV (docs/trace-format.md) and print its accuracy: the MASE of
    /// each member of the forecast ensemble (combined, the model, the autoregression, Holt,
    /// seasonal naive, naive) and of the ensemble, or the traffic-state distribution (and a
    /// confusion matrix when the trace has a `label` column).
    Eval {
        /// `traffic-forecast`, `traffic-states`, or a path to an .onnx file.
        model: String,
        #[arg(long)]
        trace: PathBuf,
        /// Forecaster: the column to forecast (default `requests`, or the only column).
        #[arg(long)]
        column: Option<String>,
        /// Classifier: which column plays a role (requests, errors, latency, receive_bytes,
        /// transmit_bytes); by default the columns named like the roles.
        #[arg(long = "input", value_name = "ROLE=COLUMN")]
        inputs: Vec<String>,
        /// Forecaster: score only forecasts made at or after this time (RFC 3339); earlier rows
        /// are history, e.g. the days before a held-out day.
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Forecaster: read the column through this trailing window, as `replay
        /// --metric-window` does: at each row its mean over the window before, as `rate(x[1m])`
        /// reads a counter. Use it for an arrival trace (requests counted per second); the MASE
        /// is then that of the series a policy's forecaster sees live. At least the trace's row
        /// spacing.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        metric_window: Option<std::time::Duration>,
    },
}

/// The report as data for `-o json|yaml`: the confusion matrix as a list, since JSON keys are
/// strings only.
fn report_value(report: &EvalReport) -> serde_json::Value {
    match report {
        EvalReport::Forecast {
            column,
            origins,
            members,
            ensemble,
            ensemble_per_step,
            in_use,
            metric_window,
        } => {
            let mut value = serde_json::json!({
            "kind": "forecast",
            "column": column,
            "origins": origins,
            "mase": members
                .iter()
                .map(|m| (m.member.as_str(), m.mase))
                .chain([("ensemble", *ensemble)])
                .collect::<std::collections::BTreeMap<_, _>>(),
            "masePerStep": members
                .iter()
                .map(|m| (m.member.as_str(), &m.per_step))
                .chain([("ensemble", ensemble_per_step)])
                .collect::<std::collections::BTreeMap<_, _>>(),
            "originsScored": members
                .iter()
                .map(|m| (m.member.as_str(), m.origins))
                .collect::<std::collections::BTreeMap<_, _>>(),
            "inUse": in_use
                .iter()
                .map(|(member, n)| (member.as_str(), *n))
                .collect::<std::collections::BTreeMap<_, _>>(),
            });
            if let Some(window) = metric_window {
                value["metricWindow"] = observed::show(*window).into();
            }
            value
        }
        EvalReport::States {
            rows,
            distribution,
            confusion,
            skipped,
        } => serde_json::json!({
            "kind": "states",
            "rows": rows,
            "skipped": skipped,
            "distribution": distribution
                .iter()
                .map(|(state, count)| (state.as_str(), *count))
                .collect::<std::collections::BTreeMap<_, _>>(),
            "confusion": confusion.as_ref().map(|matrix| matrix
                .iter()
                .map(|((label, state), count)| serde_json::json!({
                    "label": label, "predicted": state.as_str(), "count": count,
                }))
                .collect::<Vec<_>>()),
        }),
    }
}

pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Inspect { model } => {
            let loaded = Model::load(model)?;
            print!("{}", inspect::report(&loaded));
        }
        Command::Eval {
            model,
            trace,
            column,
            inputs,
            from,
            metric_window,
        } => {
            let mut options = EvalOptions {
                column: column.clone(),
                from: *from,
                metric_window: metric_window
                    .map(chrono::Duration::from_std)
                    .transpose()
                    .context("--metric-window is too long")?,
                ..Default::default()
            };
            for pair in inputs {
                let Some((role, name)) = pair.split_once('=') else {
                    bail!("--input {pair:?}: expected ROLE=COLUMN, e.g. requests=rps");
                };
                options.inputs.insert(role.to_owned(), name.to_owned());
            }
            let evaluation = eval_trace(model, trace, &options)
                .with_context(|| format!("evaluating {model} on {}", trace.display()))?;
            for note in &evaluation.notes {
                eprintln!("note: {note}");
            }
            let report = evaluation.report;
            if output == Output::Table {
                print!("{report}");
            } else {
                print_structured(&report_value(&report), output)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
