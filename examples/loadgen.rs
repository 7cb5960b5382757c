//! The load generator of the demo and the end-to-end test: traffic patterns like the ones
//! swarmpilot was born from (steady, a compressed daily cycle, a ramp, a flash crowd, a DoS-like
//! flood of small requests at high concurrency, and a mixed scenario of them), sent open-loop at
//! a target rate to the given URLs only, with a progress line.
//!
//! ```text
//! cargo run --example loadgen -- --target http://127.0.0.1:8080/ ramp --from 1 --to 50 --over 2m
//! loadgen --target http://tasks.web:8080/ --target http://tasks.web-hpa:8080/ mixed
//! ```
//!
//! The target's host name is resolved again every second and requests go round-robin over its
//! addresses, so with `endpoint_mode: dnsrr` (or `tasks.NAME`) the load spreads over replicas as
//! they come and go. Every run is bounded in time (`--duration` or the pattern's own length, at
//! most a day) and in count (`--max-requests`). Several `--target`s each get the same load: the
//! demo sends identical traffic to the predictive service and its HPA-only twin.

#[path = "support/shutdown.rs"]
mod shutdown;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::sync::Semaphore;
use url::Url;

/// Hard limits, whatever the flags say.
const MAX_RPS: f64 = 5000.0;
const MAX_CONCURRENCY: usize = 2000;
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);
/// How often the sender tops up its request budget.
const TICK: Duration = Duration::from_millis(20);

/// Sends a traffic pattern to HTTP targets.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// URL to send to; repeat to send the same load to several services.
    #[arg(long = "target", value_name = "URL", global = true)]
    targets: Vec<Url>,
    /// Stop after this long even if the pattern is longer (e.g. `10m`).
    #[arg(long, value_parser = humantime::parse_duration, global = true)]
    duration: Option<Duration>,
    /// Stop after sending this many requests in all.
    #[arg(long, default_value_t = 2_000_000, global = true)]
    max_requests: u64,
    /// Requests in flight at most per target for ordinary traffic; beyond it requests are
    /// skipped (counted), so a slow target cannot make the generator pile up.
    #[arg(long, default_value_t = 64, global = true)]
    concurrency: usize,
    /// Requests in flight at most per target during a flood.
    #[arg(long, default_value_t = 512, global = true)]
    flood_concurrency: usize,
    /// CPU milliseconds each ordinary request asks the demo app to burn (`?work_ms=`).
    #[arg(long, default_value_t = 5.0, global = true)]
    work_ms: f64,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    timeout: Duration,
    /// How often a progress line is printed when stderr is not a terminal (a Swarm service's log).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    progress_every: Duration,
    #[command(subcommand)]
    pattern: Pattern,
}

#[derive(Debug, Subcommand)]
enum Pattern {
    /// A constant rate.
    Steady {
        #[arg(long, default_value_t = 10.0)]
        rps: f64,
        /// How long (default 5m).
        #[arg(long = "for", default_value = "5m", value_parser = humantime::parse_duration)]
        length: Duration,
    },
    /// A day's cycle compressed into `--period`: night at `--base`, midday at `--peak`.
    Daily {
        #[arg(long, default_value_t = 2.0)]
        base: f64,
        #[arg(long, default_value_t = 40.0)]
        peak: f64,
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        period: Duration,
        /// How many cycles.
        #[arg(long, default_value_t = 1)]
        cycles: u32,
    },
    /// A linear ramp from `--from` to `--to` over `--over`, then `--hold` at `--to`.
    Ramp {
        #[arg(long, default_value_t = 1.0)]
        from: f64,
        #[arg(long, default_value_t = 50.0)]
        to: f64,
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        over: Duration,
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        hold: Duration,
    },
    /// A flash crowd: `--base`, a sudden jump to `--peak` for `--hold`, back to `--base`.
    Flash {
        #[arg(long, default_value_t = 5.0)]
        base: f64,
        #[arg(long, default_value_t = 100.0)]
        peak: f64,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        before: Duration,
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        hold: Duration,
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        after: Duration,
    },
    /// A DoS-like flood: tiny requests (no work, no body) at a high rate and concurrency.
    Flood {
        #[arg(long, default_value_t = 500.0)]
        rps: f64,
        #[arg(long = "for", default_value = "1m", value_parser = humantime::parse_duration)]
        length: Duration,
    },
    /// The demo's scenario: warm-up, ramp, flash crowd, settle, flood, quiet.
    Mixed {
        #[arg(long, default_value_t = 4.0)]
        base: f64,
        #[arg(long, default_value_t = 40.0)]
        peak: f64,
        #[arg(long, default_value_t = 400.0)]
        flood_rps: f64,
        /// Stretches (above 1) or compresses (below 1) every phase but the warm-up.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Steady traffic at `--base` first: the operator's models need 5 minutes of a
        /// service's history before they forecast or classify, so a shorter warm-up shows a
        /// ramp and a flood that only the plain HPA computation sees.
        #[arg(long, default_value = "5m30s", value_parser = humantime::parse_duration)]
        warmup: Duration,
    },
}

/// What a phase's requests look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Ordinary requests doing `--work-ms` of work.
    Normal,
    /// Tiny requests with no work, at flood concurrency.
    Flood,
}

/// How the rate moves from `from` to `to` within a phase.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Linear,
    /// One full cosine cycle: `from` at both ends, `to` in the middle.
    Cycle,
}

#[derive(Clone, Debug, PartialEq)]
struct Phase {
    name: &'static str,
    length: Duration,
    from: f64,
    to: f64,
    shape: Shape,
    kind: Kind,
}

impl Phase {
    fn flat(name: &'static str, length: Duration, rps: f64, kind: Kind) -> Phase {
        Phase {
            name,
            length,
            from: rps,
            to: rps,
            shape: Shape::Linear,
            kind,
        }
    }

    fn linear(name: &'static str, length: Duration, from: f64, to: f64) -> Phase {
        Phase {
            name,
            length,
            from,
            to,
            shape: Shape::Linear,
            kind: Kind::Normal,
        }
    }

    /// The rate `offset` into the phase.
    fn rate_at(&self, offset: Duration) -> f64 {
        let progress = if self.length.is_zero() {
            1.0
        } else {
            (offset.as_secs_f64() / self.length.as_secs_f64()).clamp(0.0, 1.0)
        };
        let weight = match self.shape {
            Shape::Linear => progress,
            Shape::Cycle => (1.0 - (std::f64::consts::TAU * progress).cos()) / 2.0,
        };
        self.from + (self.to - self.from) * weight
    }
}

/// The phases of a pattern, in order.
fn plan(pattern: &Pattern) -> Vec<Phase> {
    match *pattern {
        Pattern::Steady { rps, length } => vec![Phase::flat("steady", length, rps, Kind::Normal)],
        Pattern::Daily {
            base,
            peak,
            period,
            cycles,
        } => (0..cycles)
            .map(|_| Phase {
                name: "daily",
                length: period,
                from: base,
                to: peak,
                shape: Shape::Cycle,
                kind: Kind::Normal,
            })
            .collect(),
        Pattern::Ramp {
            from,
            to,
            over,
            hold,
        } => vec![
            Phase::linear("ramp", over, from, to),
            Phase::flat("hold", hold, to, Kind::Normal),
        ],
        Pattern::Flash {
            base,
            peak,
            before,
            hold,
            after,
        } => vec![
            Phase::flat("base", before, base, Kind::Normal),
            Phase::flat("flash-crowd", hold, peak, Kind::Normal),
            Phase::flat("base", after, base, Kind::Normal),
        ],
        Pattern::Flood { rps, length } => vec![Phase::flat("flood", length, rps, Kind::Flood)],
        Pattern::Mixed {
            base,
            peak,
            flood_rps,
            time_scale,
            warmup,
        } => {
            let secs = |s: f64| Duration::from_secs_f64(s * time_scale);
            vec![
                Phase::flat("warm-up", warmup, base, Kind::Normal),
                Phase::linear("ramp", secs(90.0), base, peak),
                Phase::flat("peak", secs(45.0), peak, Kind::Normal),
                Phase::flat("settle", secs(45.0), base, Kind::Normal),
                Phase::flat("flash-crowd", secs(60.0), peak * 2.0, Kind::Normal),
                // Long enough for the demo's 60 s scale-down window: the flood then starts from
                // the base count, where the twin's scale-up and the held service stand apart.
                Phase::flat("settle", secs(90.0), base, Kind::Normal),
                Phase::flat("flood", secs(60.0), flood_rps, Kind::Flood),
                Phase::flat("quiet", secs(120.0), base, Kind::Normal),
            ]
        }
    }
}

/// Checks a plan against the hard limits, naming the flag at fault.
fn check_plan(phases: &[Phase], args: &Args) -> Result<(), String> {
    for phase in phases {
        for rps in [phase.from, phase.to] {
            if !rps.is_finite() || !(0.0..=MAX_RPS).contains(&rps) {
                return Err(format!(
                    "the {} phase asks for {rps} requests per second; the rate must be from 0 to {MAX_RPS}",
                    phase.name
                ));
            }
        }
    }
    let total: Duration = phases.iter().map(|p| p.length).sum();
    if total.is_zero() {
        return Err("the pattern lasts 0s: give it a length".into());
    }
    let effective = args.duration.map_or(total, |limit| limit.min(total));
    if effective.is_zero() {
        return Err("--duration 0s sends nothing".into());
    }
    if effective > MAX_RUN {
        return Err(format!(
            "the pattern lasts {}, more than the limit of a day; pass --duration",
            humantime::format_duration(total)
        ));
    }
    for (flag, value) in [
        ("--concurrency", args.concurrency),
        ("--flood-concurrency", args.flood_concurrency),
    ] {
        if value == 0 || value > MAX_CONCURRENCY {
            return Err(format!(
                "{flag} {value} must be from 1 to {MAX_CONCURRENCY}"
            ));
        }
    }
    if !args.work_ms.is_finite() || args.work_ms < 0.0 {
        return Err(format!(
            "--work-ms {} must be a number from 0 up",
            args.work_ms
        ));
    }
    if args.targets.is_empty() {
        return Err("give at least one --target URL".into());
    }
    for target in &args.targets {
        if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
            return Err(format!(
                "--target {target} must be an http(s) URL with a host"
            ));
        }
    }
    Ok(())
}

/// Where the plan is at `elapsed`: the phase and its rate, or `None` when it is over.
fn position(phases: &[Phase], elapsed: Duration) -> Option<(&Phase, f64)> {
    let mut start = Duration::ZERO;
    for phase in phases {
        if elapsed < start + phase.length {
            return Some((phase, phase.rate_at(elapsed - start)));
        }
        start += phase.length;
    }
    None
}

/// Counters of one target, shared by the sender and the requests in flight.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    http_errors: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    latency_micros: AtomicU64,
    answered: AtomicU64,
}

/// One target: its URL, the addresses its name resolves to now, and its counters.
struct Target {
    url: Url,
    host: String,
    port: u16,
    addresses: Mutex<Vec<SocketAddr>>,
    next: AtomicU64,
    counters: Counters,
    normal: Arc<Semaphore>,
    flood: Arc<Semaphore>,
}

impl Target {
    fn new(url: Url, args: &Args) -> Option<Target> {
        let host = url.host_str()?.to_owned();
        let port = url.port_or_known_default()?;
        Some(Target {
            url,
            host,
            port,
            addresses: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            counters: Counters::default(),
            normal: Arc::new(Semaphore::new(args.concurrency)),
            flood: Arc::new(Semaphore::new(args.flood_concurrency)),
        })
    }

    /// Resolves the host again; keeps the last addresses when the lookup fails or is empty
    /// (a moment with no running task should not stop the run).
    async fn resolve(&self) {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(found) = tokio::net::lookup_host((host, self.port)).await {
            let mut found: Vec<SocketAddr> = found.collect();
            found.sort();
            found.dedup();
            if !found.is_empty() {
                *self.lock_addresses() = found;
            }
        }
    }

    fn lock_addresses(&self) -> std::sync::MutexGuard<'_, Vec<SocketAddr>> {
        self.addresses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next address round-robin, as a URL with that address in place of the name.
    fn next_url(&self, kind: Kind, work_ms: f64) -> Option<Url> {
        let address = {
            let addresses = self.lock_addresses();
            if addresses.is_empty() {
                return None;
            }
            let index = self.next.fetch_add(1, Ordering::Relaxed) as usize % addresses.len();
            addresses[index]
        };
        let mut url = self.url.clone();
        url.set_ip_host(address.ip()).ok()?;
        url.set_port(Some(address.port())).ok()?;
        let query = match kind {
            Kind::Normal => format!("work_ms={work_ms}"),
            Kind::Flood => "work_ms=0&bytes=0".to_owned(),
        };
        url.set_query(Some(&query));
        Some(url)
    }

    fn endpoints(&self) -> usize {
        self.lock_addresses().len()
    }
}

/// What a browser sends with an ordinary request (about 400 bytes of headers); a flood's
/// requests carry none of it, which is what makes them small on the wire.
const BROWSER_HEADERS: [(&str, &str); 5] = [
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    ),
    ("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
    ("accept-encoding", "gzip, deflate"),
    (
        "cookie",
        "session=5f2b9c0e7d1a4e3b8c6f0a9d2e4b7c1f; theme=light; consent=analytics,functional",
    ),
];

async fn send_one(client: reqwest::Client, target: Arc<Target>, kind: Kind, url: Url) {
    let started = Instant::now();
    let counters = &target.counters;
    let mut request = client
        .get(url)
        .header(reqwest::header::HOST, target.host.as_str());
    if kind == Kind::Normal {
        for (name, value) in BROWSER_HEADERS {
            request = request.header(name, value);
        }
    }
    let result = request.send().await;
    match result {
        Ok(response) => {
            let success = response.status().is_success();
            // Read the body so the connection goes back to the pool.
            let _ = response.bytes().await;
            let counter = if success {
                &counters.ok
            } else {
                &counters.http_errors
            };
            counter.fetch_add(1, Ordering::Relaxed);
            counters
                .latency_micros
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            counters.answered.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Prints a progress line: in place on a terminal, one line per `--progress-every` otherwise.
struct Progress {
    terminal: bool,
    every: Duration,
    last: Instant,
    last_answered: Vec<(u64, u64)>,
}

impl Progress {
    fn line(
        &mut self,
        elapsed: Duration,
        phase: &str,
        rps: f64,
        targets: &[Arc<Target>],
    ) -> String {
        let mut line = format!(
            "{:>5.0}s  {:<11} {:>6.1} rps",
            elapsed.as_secs_f64(),
            phase,
            rps
        );
        for (index, target) in targets.iter().enumerate() {
            let c = &target.counters;
            let answered = c.answered.load(Ordering::Relaxed);
            let latency = c.latency_micros.load(Ordering::Relaxed);
            let (before_answered, before_latency) = self.last_answered[index];
            let window = answered.saturating_sub(before_answered);
            let mean_ms = if window == 0 {
                0.0
            } else {
                latency.saturating_sub(before_latency) as f64 / window as f64 / 1000.0
            };
            self.last_answered[index] = (answered, latency);
            line.push_str(&format!(
                " | {} x{}: sent {} ok {} http-err {} failed {} skipped {} mean {:.1}ms",
                target.host,
                target.endpoints(),
                c.sent.load(Ordering::Relaxed),
                c.ok.load(Ordering::Relaxed),
                c.http_errors.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
                c.skipped.load(Ordering::Relaxed),
                mean_ms
            ));
        }
        line
    }

    fn maybe_print(&mut self, elapsed: Duration, phase: &str, rps: f64, targets: &[Arc<Target>]) {
        let every = if self.terminal {
            Duration::from_secs(1)
        } else {
            self.every
        };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let line = self.line(elapsed, phase, rps, targets);
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let phases = plan(&args.pattern);
    check_plan(&phases, &args)?;
    let total: Duration = phases.iter().map(|p| p.length).sum();
    let limit = args.duration.unwrap_or(total).min(total).min(MAX_RUN);
    let targets: Vec<Arc<Target>> = args
        .targets
        .iter()
        .map(|url| {
            Target::new(url.clone(), &args)
                .map(Arc::new)
                .ok_or_else(|| format!("--target {url} has no host or port"))
        })
        .collect::<Result<_, _>>()?;
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .pool_max_idle_per_host(args.concurrency.max(args.flood_concurrency))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;

    for target in &targets {
        target.resolve().await;
    }
    let resolver = {
        let targets = targets.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                for target in &targets {
                    target.resolve().await;
                }
            }
        })
    };
    eprintln!(
        "loadgen: {} phases over {} to {} (at most {} requests)",
        phases.len(),
        humantime::format_duration(Duration::from_secs(limit.as_secs())),
        args.targets
            .iter()
            .map(Url::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        args.max_requests
    );

    let mut progress = Progress {
        terminal: std::io::stderr().is_terminal(),
        every: args.progress_every,
        last: Instant::now(),
        last_answered: vec![(0, 0); targets.len()],
    };
    let started = Instant::now();
    let mut credit = 0.0_f64;
    let mut total_sent = 0_u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = Instant::now();
    let stop = shutdown::signal();
    tokio::pin!(stop);
    let mut phase_name = "";
    let mut rate = 0.0;
    loop {
        tokio::select! {
            _ = &mut stop => { eprintln!("\nloadgen: stopped by signal"); break; }
            _ = tick.tick() => {}
        }
        let elapsed = started.elapsed();
        if elapsed >= limit || total_sent >= args.max_requests {
            break;
        }
        let Some((phase, now_rate)) = position(&phases, elapsed) else {
            break;
        };
        phase_name = phase.name;
        rate = now_rate;
        let dt = last_tick.elapsed().as_secs_f64();
        last_tick = Instant::now();
        credit += rate * dt;
        let due = credit.floor();
        credit -= due;
        for _ in 0..due as u64 {
            for target in &targets {
                if total_sent >= args.max_requests {
                    break;
                }
                let semaphore = match phase.kind {
                    Kind::Normal => &target.normal,
                    Kind::Flood => &target.flood,
                };
                let (Ok(permit), Some(url)) = (
                    Arc::clone(semaphore).try_acquire_owned(),
                    target.next_url(phase.kind, args.work_ms),
                ) else {
                    target.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                total_sent += 1;
                target.counters.sent.fetch_add(1, Ordering::Relaxed);
                let (client, target, kind) = (client.clone(), Arc::clone(target), phase.kind);
                tokio::spawn(async move {
                    send_one(client, target, kind, url).await;
                    drop(permit);
                });
            }
        }
        progress.maybe_print(elapsed, phase.name, rate, &targets);
    }
    resolver.abort();
    // Let the requests in flight finish (bounded by the request timeout).
    for target in &targets {
        let _ = target.normal.acquire_many(args.concurrency as u32).await;
        let _ = target
            .flood
            .acquire_many(args.flood_concurrency as u32)
            .await;
    }
    let line = progress.line(started.elapsed(), phase_name, rate, &targets);
    if progress.terminal {
        eprintln!("\r\x1b[2K{line}");
    } else {
        eprintln!("{line}");
    }
    eprintln!("loadgen: done after {total_sent} requests");
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("loadgen: {problem}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pattern: &[&str]) -> Args {
        let mut argv = vec!["loadgen", "--target", "http://web:8080/"];
        argv.extend_from_slice(pattern);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn ramp_rises_linearly_then_holds() {
        let args = args(&["ramp", "--from", "10", "--to", "30", "--over", "20s"]);
        let phases = plan(&args.pattern);
        check_plan(&phases, &args).unwrap();
        let at = |s: u64| position(&phases, Duration::from_secs(s)).map(|(p, r)| (p.name, r));
        assert_eq!(at(0), Some(("ramp", 10.0)));
        assert_eq!(at(10), Some(("ramp", 20.0)));
        assert_eq!(at(25), Some(("hold", 30.0)));
        assert_eq!(at(79), Some(("hold", 30.0)));
        assert_eq!(at(80), None);
    }

    #[test]
    fn daily_cycle_peaks_mid_period() {
        let args = args(&["daily", "--base", "2", "--peak", "42", "--period", "100s"]);
        let phases = plan(&args.pattern);
        let rate = |s: u64| position(&phases, Duration::from_secs(s)).unwrap().1;
        assert!((rate(0) - 2.0).abs() < 1e-9);
        assert!((rate(50) - 42.0).abs() < 1e-9);
        assert!((rate(25) - 22.0).abs() < 1e-9);
    }

    #[test]
    fn mixed_has_every_phase_and_floods_with_tiny_requests() {
        let args = args(&["mixed", "--time-scale", "0.5"]);
        let phases = plan(&args.pattern);
        let names: Vec<&str> = phases.iter().map(|p| p.name).collect();
        for name in ["warm-up", "ramp", "flash-crowd", "flood", "quiet"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let flood = phases.iter().find(|p| p.name == "flood").unwrap();
        assert_eq!(flood.kind, Kind::Flood);
        assert_eq!(flood.length, Duration::from_secs(30));
        assert_eq!(
            phases[0].length,
            Duration::from_secs(330),
            "the warm-up gives the models their 5 minutes whatever the time scale"
        );
    }

    #[test]
    fn refuses_what_is_out_of_bounds() {
        for bad in [
            vec!["steady", "--rps", "100000"],
            vec!["steady", "--rps=-1"],
            vec!["steady", "--for", "0s"],
            vec!["--concurrency", "0", "steady"],
            vec!["--work-ms=-3", "steady"],
        ] {
            let args = args(&bad);
            assert!(
                check_plan(&plan(&args.pattern), &args).is_err(),
                "{bad:?} accepted"
            );
        }
        let ftp = Args::try_parse_from(["loadgen", "--target", "ftp://x/", "steady"]).unwrap();
        assert!(check_plan(&plan(&ftp.pattern), &ftp).is_err());
        let none = Args::try_parse_from(["loadgen", "steady"]).unwrap();
        assert!(check_plan(&plan(&none.pattern), &none).is_err());
    }

    #[test]
    fn urls_go_round_robin_over_resolved_addresses() {
        let args = args(&["steady"]);
        let target = Target::new(args.targets[0].clone(), &args).unwrap();
        assert!(target.next_url(Kind::Normal, 5.0).is_none());
        *target.lock_addresses() = vec![
            "10.0.0.1:8080".parse().unwrap(),
            "10.0.0.2:8080".parse().unwrap(),
        ];
        let first = target.next_url(Kind::Normal, 5.0).unwrap();
        let second = target.next_url(Kind::Flood, 5.0).unwrap();
        let third = target.next_url(Kind::Normal, 5.0).unwrap();
        assert_eq!(first.as_str(), "http://10.0.0.1:8080/?work_ms=5");
        assert_eq!(second.as_str(), "http://10.0.0.2:8080/?work_ms=0&bytes=0");
        assert_eq!(third.host_str(), Some("10.0.0.1"));
    }
}
