//! `events [SERVICE] [-w]`: the services' event rings from their state labels (the durable
//! record, so they are there after an operator restart and without an operator), newest last,
//! as `kubectl get events` lists them; `-w` keeps printing new ones.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::get::age;
use super::table::write_table;
use super::{block_on, write_structured, Output};
use crate::policy::{labels, Event, EventReason};
use crate::swarm::{DockerSwarm, ServiceInfo, Swarm};

/// How often `--watch` looks again.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Arguments of `swarmpilot events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this service's events.
    pub service: Option<String>,
    /// Keep printing new events every 2 seconds until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// One event of one service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub service: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Every event of `services` (those with a readable state label), oldest first.
pub fn collect(services: &[ServiceInfo], only: Option<&str>) -> Vec<ServiceEvent> {
    let mut found: Vec<ServiceEvent> = services
        .iter()
        .filter(|s| only.is_none_or(|name| s.name == name || s.id == name))
        .filter_map(|s| Some((s, labels::decode_state(&s.labels).ok()??)))
        .flat_map(|(s, state)| {
            state.log.into_iter().map(|event| ServiceEvent {
                service: s.name.clone(),
                event,
            })
        })
        .collect();
    found.sort_by_key(|e| e.event.at);
    found
}

/// The rows as `kubectl describe` lists events: TYPE, REASON, AGE (with repeats), MESSAGE.
pub fn event_rows(events: &[&Event], now: DateTime<Utc>) -> Vec<Vec<String>> {
    events
        .iter()
        .map(|e| {
            let seen = match (e.count, e.first_at) {
                (1, _) | (_, None) => age(e.at, now),
                (count, Some(first)) => {
                    format!("{} (x{count} over {})", age(e.at, now), age(first, now))
                }
            };
            vec![
                e.type_.as_str().to_owned(),
                e.reason.as_str().to_owned(),
                seen,
                e.message.clone(),
            ]
        })
        .collect()
}

fn write_events(
    out: &mut dyn Write,
    events: &[ServiceEvent],
    header: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let refs: Vec<&Event> = events.iter().map(|e| &e.event).collect();
    let rows: Vec<Vec<String>> = event_rows(&refs, now)
        .into_iter()
        .zip(events)
        .map(|(mut row, e)| {
            row.insert(0, e.service.clone());
            row
        })
        .collect();
    let mut table = Vec::new();
    write_table(
        &mut table,
        &["SERVICE", "TYPE", "REASON", "AGE", "MESSAGE"],
        &rows,
    )?;
    let text = String::from_utf8_lossy(&table);
    for line in text.lines().skip(usize::from(!header)) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Which events were printed already: a repeat with a new count prints again.
fn key(e: &ServiceEvent) -> (String, DateTime<Utc>, EventReason, String, u32) {
    (
        e.service.clone(),
        e.event.first_at.unwrap_or(e.event.at),
        e.event.reason,
        e.event.message.clone(),
        e.event.count,
    )
}

/// `swarmpilot events [SERVICE] [-w]`.
pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async {
        let swarm = DockerSwarm::connect().await?;
        let mut printed = BTreeSet::new();
        let mut first = true;
        loop {
            let services = swarm.list_services().await?;
            let events = collect(&services, args.service.as_deref());
            let new: Vec<ServiceEvent> = events
                .into_iter()
                .filter(|e| printed.insert(key(e)))
                .collect();
            let mut stdout = std::io::stdout().lock();
            if output != Output::Table {
                write_structured(&mut stdout, &new, output)?;
            } else if first && new.is_empty() && !args.watch {
                writeln!(stdout, "No events.")?;
            } else if !new.is_empty() {
                write_events(&mut stdout, &new, first, Utc::now())?;
            }
            stdout.flush()?;
            drop(stdout);
            if !args.watch {
                return anyhow::Ok(());
            }
            first = false;
            tokio::time::sleep(WATCH_EVERY).await;
        }
    })??;
    Ok(ExitCode::SUCCESS)
}
