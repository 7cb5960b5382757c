//! `swarmpilot replay`: what a policy would have done on a trace, beside the HPA baseline, as a
//! table (or YAML/JSON), with optional per-step CSV and plots.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use serde::Serialize;

use super::table::write_table;
use super::{print_structured, Output};
use crate::replay::{self, series, trace, Comparison, Options, Signals, Summary, Trace};

/// Arguments of `swarmpilot replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file (YAML).
    #[arg(long)]
    pub policy: PathBuf,
    /// The trace CSV: `record`'s format, `timestamp,value`, or the recorded Swarm metrics.
    #[arg(long)]
    pub trace: PathBuf,
    /// The trace column of the load metric. Default: the column named as the policy's forecast
    /// metric (else its first metric), else the trace's only value column.
    #[arg(long, value_name = "NAME")]
    pub metric: Option<String>,
    /// Multiplies the service's traffic: the load column (e.g. 0.0166667 to read a per-minute
    /// column as per second) and the classifier inputs that count it (requests, errors,
    /// receiveBytes, transmitBytes); latency is per request and stays as it is.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub scale: f64,
    /// The policy reads the column through this trailing window: at each decision (and in every
    /// sample its models get) it sees the column's mean over the window before, as
    /// `rate(x[1m])` reads a counter. Use it for an arrival trace (requests counted per second,
    /// or per row with --scale making it per second) when the policy's query is a rate over a
    /// window; leave it out for a trace `record` wrote (each row is the query's result). The
    /// classifier's traffic roles (requests, errors, bytes) are read through the same window;
    /// latency, per request, as it is. The demand served is the column as it is either way. At
    /// least the trace's row spacing.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub metric_window: Option<std::time::Duration>,
    /// The load (in the metric's unit) one serving replica absorbs.
    #[arg(long, value_name = "N")]
    pub capacity_per_replica: f64,
    /// How long a new replica takes to serve.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub startup: std::time::Duration,
    /// Replicas at the start of the trace (all serving). Default: minReplicas.
    #[arg(long, value_name = "N")]
    pub initial_replicas: Option<u32>,
    /// Decide and count from this time: a date (2023-06-17, midnight UTC) or a date-time. The
    /// rows before are history only (the models' windows and --metric-window read them), as
    /// the operator's start-up backfill gives it.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Replay rows before this time.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Write the per-step series of both runs to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw the plot to this .svg or .png file; may be repeated.
    #[arg(long, value_name = "FILE")]
    pub plot: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    policy: &'a str,
    metric: &'a str,
    column: &'a str,
    /// The trailing window the policy reads the column through, e.g. `1m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_window: Option<String>,
    from: String,
    to: String,
    ticks: usize,
    policy_summary: &'a Summary,
    baseline_summary: &'a Summary,
    notes: &'a [String],
}

pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read policy {}", args.policy.display()))?;
    let policy = crate::policy::parse_bytes(&text)
        .map_err(|d| anyhow!("{}: invalid policy: {d}", args.policy.display()))?;
    let bound = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| trace::parse_bound(t).map_err(|e| anyhow!("{flag}: {e}")))
            .transpose()
    };
    let (from, to) = (bound("--from", &args.from)?, bound("--to", &args.to)?);
    // The rows before `--from` stay: they are the history the models and the window read.
    let trace = Trace::read_path(&args.trace)?.select(None, to)?;
    let options = Options {
        metric: args.metric.clone(),
        scale: args.scale,
        metric_window: args
            .metric_window
            .map(chrono::Duration::from_std)
            .transpose()
            .context("--metric-window is too long")?,
        capacity_per_replica: args.capacity_per_replica,
        startup: chrono::Duration::from_std(args.startup).context("--startup is too long")?,
        initial_replicas: args.initial_replicas,
        from,
        ticks: None,
    };
    let signals = signals();
    let comparison = replay::compare(&policy, &trace, &options, signals.as_ref())?;

    let rows = series::rows(&comparison);
    if let Some(path) = &args.csv {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        series::write_csv(&rows, std::io::BufWriter::new(file))?;
    }
    for path in &args.plot {
        replay::plot::draw(&comparison, &rows, path)?;
    }

    if output == Output::Table {
        let mut out = std::io::stdout().lock();
        write_report(&mut out, &comparison, args)?;
    } else {
        print_structured(
            &Report {
                policy: &comparison.policy.name,
                metric: &comparison.metric,
                column: &comparison.column,
                metric_window: args
                    .metric_window
                    .map(|w| humantime::format_duration(w).to_string()),
                from: comparison.demand.start.to_rfc3339(),
                to: comparison.demand.end.to_rfc3339(),
                ticks: comparison.policy.ticks.len(),
                policy_summary: &comparison.policy.summary,
                baseline_summary: &comparison.baseline.summary,
                notes: &comparison.notes,
            },
            output,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The models replay asks for forecasts and traffic states: the ones the policy names.
fn signals() -> Box<dyn Signals> {
    Box::new(replay::ModelSignals)
}

fn write_report(out: &mut dyn Write, comparison: &Comparison, args: &Args) -> anyhow::Result<()> {
    let scaled = if args.scale == 1.0 {
        String::new()
    } else {
        format!(" x {}", args.scale)
    };
    let window = args.metric_window.map_or_else(String::new, |w| {
        format!(
            ", read as its mean over the last {}",
            humantime::format_duration(w)
        )
    });
    writeln!(
        out,
        "policy {} on {} ({}{scaled} as {}{window}), {} to {}, {} decisions",
        comparison.policy.name,
        args.trace.display(),
        comparison.column,
        comparison.metric,
        comparison.demand.start.to_rfc3339(),
        comparison.demand.end.to_rfc3339(),
        comparison.policy.ticks.len(),
    )?;
    writeln!(
        out,
        "capacity per replica {}, startup {}, initial replicas {}\n",
        comparison.service.capacity_per_replica,
        humantime::format_duration(args.startup),
        comparison.service.initial_replicas
    )?;
    let (p, b) = (&comparison.policy.summary, &comparison.baseline.summary);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else if a == 0.0 {
            "1.00".to_owned()
        } else {
            "-".to_owned()
        }
    };
    let events = |s: &Summary| {
        format!(
            "{} ({} up, {} down)",
            s.scale_events(),
            s.scale_ups,
            s.scale_downs
        )
    };
    let mut rows = vec![
        vec![
            "under-provisioned seconds".to_owned(),
            format!("{:.0}", p.under_provisioned_secs),
            format!("{:.0}", b.under_provisioned_secs),
            ratio(p.under_provisioned_secs, b.under_provisioned_secs),
        ],
        vec![
            "demand over capacity".to_owned(),
            format!("{:.3}%", p.over_capacity_share * 100.0),
            format!("{:.3}%", b.over_capacity_share * 100.0),
            ratio(p.over_capacity_share, b.over_capacity_share),
        ],
        vec![
            "replica-hours".to_owned(),
            format!("{:.2}", p.replica_hours),
            format!("{:.2}", b.replica_hours),
            ratio(p.replica_hours, b.replica_hours),
        ],
        vec![
            "scale events".to_owned(),
            events(p),
            events(b),
            ratio(f64::from(p.scale_events()), f64::from(b.scale_events())),
        ],
        vec![
            "max replicas".to_owned(),
            p.max_replicas.to_string(),
            b.max_replicas.to_string(),
            ratio(f64::from(p.max_replicas), f64::from(b.max_replicas)),
        ],
    ];
    if p.no_data_secs > 0.0 {
        rows.push(vec![
            "seconds without data".to_owned(),
            format!("{:.0}", p.no_data_secs),
            format!("{:.0}", b.no_data_secs),
            String::new(),
        ]);
    }
    let labels: std::collections::BTreeSet<&String> = p
        .scale_ups_by_label
        .keys()
        .chain(b.scale_ups_by_label.keys())
        .collect();
    for label in labels {
        let get = |s: &Summary| s.scale_ups_by_label.get(label).copied().unwrap_or(0);
        rows.push(vec![
            format!("scale-ups while label={label}"),
            get(p).to_string(),
            get(b).to_string(),
            String::new(),
        ]);
    }
    write_table(
        out,
        &[
            "",
            &format!("policy {}", comparison.policy.name),
            "HPA baseline",
            "ratio",
        ],
        &rows,
    )?;
    for note in &comparison.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}
