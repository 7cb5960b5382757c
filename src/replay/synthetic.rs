//! Synthetic labeled traces for replay: a steady service with a daily-like swell, then flash
//! crowds (many legitimate users) or a flood (many cheap requests, errors and latency rising),
//! with the five classifier roles and a `label` column, at 5 s steps in the `record` format.
//!
//! Deterministic for a seed (a small xorshift generator), so tests and reports can be rerun.
//! The shapes follow `models/train/synth.py`: rates smoothed over one minute like `rate()[1m]`.

use std::io::Write;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::error::ReplayError;
use super::trace::{Column, Trace};

/// Seconds between rows.
pub const STEP_SECS: i64 = 5;
/// Rows in a one-minute rate window.
const SMOOTH: usize = 12;

/// Which events the trace carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Three flash crowds (x4 to x6 in about a minute, held a few minutes, decaying).
    FlashCrowd,
    /// One 15-minute flood (x12 requests, small requests and responses, errors and latency up).
    Flood,
    /// The demo's scenario (tests/e2e_demo.rs): an 8-minute warm-up at the base rate, a linear
    /// ramp of ordinary requests to x8 (`peak`) over 2 minutes held 6 minutes, 6 quiet minutes, then a
    /// 6-minute flood of tiny requests at x80 that the service absorbs (latency down), then
    /// quiet to the end. The ramp is labeled `flash_crowd`: many legitimate users.
    Demo,
}

/// Options of a generated trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Synthetic {
    pub kind: Kind,
    pub seed: u64,
    /// The baseline request rate (requests per second).
    pub base_rps: f64,
    pub hours: f64,
    pub start: DateTime<Utc>,
    /// The legitimate surges' peak multiplier over the base rate: each flash crowd's (else 5, 4
    /// and 6) or the demo ramp's (else 8, the demo's 5 to 40 requests per second).
    pub peak: Option<f64>,
}

/// One event's effect at a sample: request multiplier, bytes-per-request multipliers, added
/// error ratio, latency multiplier, and the ground-truth label.
#[derive(Clone, Copy)]
struct Effect {
    requests: f64,
    rx: f64,
    tx: f64,
    errors: f64,
    latency: f64,
    label: &'static str,
}

const CALM: Effect = Effect {
    requests: 1.0,
    rx: 1.0,
    tx: 1.0,
    errors: 0.0,
    latency: 1.0,
    label: "normal",
};

/// Generates the trace: columns `requests, errors, latency, receive_bytes, transmit_bytes`.
pub fn generate(options: &Synthetic) -> Trace {
    let n = (options.hours * 3600.0 / STEP_SECS as f64).round().max(2.0) as usize;
    let mut random = XorShift(options.seed.max(1));
    let events: Vec<(usize, f64)> = match options.kind {
        // Start after the classifier's one-hour baseline has filled.
        Kind::FlashCrowd => vec![
            (n * 45 / 100, options.peak.unwrap_or(5.0)),
            (n * 65 / 100, options.peak.unwrap_or(4.0)),
            (n * 85 / 100, options.peak.unwrap_or(6.0)),
        ],
        Kind::Flood => vec![(n * 60 / 100, 12.0)],
        Kind::Demo => vec![
            (DEMO_RAMP_AT, options.peak.unwrap_or(8.0)),
            (DEMO_FLOOD_AT, DEMO_FLOOD),
        ],
    };
    // The demo's load is steady between its phases; the others swell once over the trace.
    let swell_amplitude = if options.kind == Kind::Demo {
        0.0
    } else {
        0.25
    };
    let mut counts = Vec::with_capacity(n);
    let mut columns: [Vec<f64>; 4] = Default::default(); // errors, latency, rx, tx (unsmoothed)
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let swell =
            1.0 + swell_amplitude * (2.0 * std::f64::consts::PI * i as f64 / n as f64).sin();
        let effect = events
            .iter()
            .map(|&(start, peak)| effect(options.kind, i, start, peak))
            .find(|e| e.label != "normal" || e.requests != 1.0)
            .unwrap_or(CALM);
        let expected = options.base_rps * swell * effect.requests * random.lognormal(0.03);
        // Counting noise of a 5 s step, roughly Poisson: sd = sqrt(mean).
        let count = (expected * STEP_SECS as f64
            + random.normal() * (expected * STEP_SECS as f64).sqrt())
        .max(0.0)
            / STEP_SECS as f64;
        counts.push(count);
        columns[0].push(count * (0.002 + effect.errors).min(1.0));
        let load = (expected / options.base_rps).max(0.2);
        columns[1]
            .push(0.05 * (1.0 + 0.1 * load.ln_1p()) * effect.latency * random.lognormal(0.08));
        columns[2].push(count * 600.0 * effect.rx * random.lognormal(0.05));
        columns[3].push(count * 12_000.0 * effect.tx * random.lognormal(0.05));
        labels.push(effect.label.to_owned());
    }
    let times = (0..n)
        .map(|i| options.start + Duration::seconds(i as i64 * STEP_SECS))
        .collect();
    let [errors, latency, rx, tx] = columns;
    let column = |name: &str, values: &[f64]| Column {
        name: name.to_owned(),
        values: smooth(values).into_iter().map(Some).collect(),
    };
    Trace {
        times,
        columns: vec![
            column("requests", &counts),
            column("errors", &errors),
            column("latency", &latency),
            column("receive_bytes", &rx),
            column("transmit_bytes", &tx),
        ],
        labels: Some(labels),
        repeated: 0,
    }
}

/// When the demo scenario's ramp and flood start (5 s steps from the trace start), and the
/// flood's multiplier (the demo's 400 requests per second over 5).
pub const DEMO_RAMP_AT: usize = 96;
pub const DEMO_FLOOD_AT: usize = 96 + 24 + 72 + 72;
const DEMO_FLOOD: f64 = 80.0;

fn effect(kind: Kind, i: usize, start: usize, peak: f64) -> Effect {
    let Some(k) = i.checked_sub(start) else {
        return CALM;
    };
    let k = k as f64;
    match kind {
        Kind::Demo if start == DEMO_RAMP_AT => {
            // `loadgen ramp --over 2m --hold`: ordinary requests, linear to the peak, held.
            let (rise, hold) = (24.0, 72.0);
            if k >= rise + hold {
                return CALM;
            }
            let m = 1.0 + (peak - 1.0) * (k / rise).min(1.0);
            Effect {
                requests: m,
                latency: 1.0 + 0.05 * (m - 1.0),
                label: if m > 1.6 { "flash_crowd" } else { "normal" },
                ..CALM
            }
        }
        Kind::Demo => {
            // `loadgen flood`: no headers and no body each way, no work (the app absorbs it).
            if k >= 72.0 {
                return CALM;
            }
            let onset = (k / 2.0).min(1.0);
            Effect {
                requests: 1.0 + (peak - 1.0) * onset,
                rx: 1.0 - 0.87 * onset,
                tx: 1.0 - 0.975 * onset,
                errors: 0.01 * onset,
                latency: 1.0 - 0.7 * onset,
                label: "flood",
            }
        }
        Kind::FlashCrowd => {
            // 60 s rise, 4 min hold, 10 min exponential decay.
            let (rise, hold, decay) = (12.0, 48.0, 120.0);
            let shape = if k < rise {
                k / rise
            } else if k < rise + hold {
                1.0
            } else if k < rise + hold + decay {
                (-(k - rise - hold) * 4.0 / decay).exp()
            } else {
                return CALM;
            };
            let m = 1.0 + (peak - 1.0) * shape;
            Effect {
                requests: m,
                latency: (1.0 + 0.12 * (m - 1.0)).min(2.0),
                errors: 0.002 * (m - 1.0),
                label: if m > 1.6 { "flash_crowd" } else { "normal" },
                ..CALM
            }
        }
        Kind::Flood => {
            let length = 180.0; // 15 min
            if k >= length {
                return CALM;
            }
            let onset = (k / 6.0).min(1.0);
            let progress = k / (length - 1.0);
            Effect {
                requests: 1.0 + (peak - 1.0) * onset,
                rx: 0.3,
                tx: 0.1,
                errors: onset * (0.02 + 0.3 * progress),
                latency: 1.0 + onset * 2.0 * (0.3 + 0.7 * progress),
                label: "flood",
            }
        }
    }
}

/// A one-minute trailing mean, as `rate(...[1m])` reports a counter.
fn smooth(values: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for (i, &v) in values.iter().enumerate() {
        sum += v;
        if i >= SMOOTH {
            sum -= values[i - SMOOTH];
        }
        out.push(sum / (i + 1).min(SMOOTH) as f64);
    }
    out
}

/// Writes a trace in the `record` format, with its `label` column last when it has one.
pub fn write_csv(trace: &Trace, out: impl Write) -> Result<(), ReplayError> {
    let io = |e: csv::Error| ReplayError::Io {
        what: "trace CSV".to_owned(),
        error: std::io::Error::other(e),
    };
    let mut writer = csv::Writer::from_writer(out);
    let mut header = vec!["timestamp".to_owned()];
    header.extend(trace.columns.iter().map(|c| c.name.clone()));
    if trace.labels.is_some() {
        header.push("label".to_owned());
    }
    writer.write_record(&header).map_err(io)?;
    for (i, at) in trace.times.iter().enumerate() {
        let mut record = vec![at.to_rfc3339_opts(SecondsFormat::Millis, true)];
        record.extend(
            trace
                .columns
                .iter()
                .map(|c| c.values[i].map(|v| format!("{v:.6}")).unwrap_or_default()),
        );
        if let Some(labels) = &trace.labels {
            record.push(labels[i].clone());
        }
        writer.write_record(&record).map_err(io)?;
    }
    writer.flush().map_err(|error| ReplayError::Io {
        what: "trace CSV".to_owned(),
        error,
    })
}

/// xorshift64*: small, fast, deterministic; statistical quality is ample for noise.
struct XorShift(u64);

impl XorShift {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn lognormal(&mut self, sigma: f64) -> f64 {
        (sigma * self.normal()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(kind: Kind) -> Synthetic {
        Synthetic {
            kind,
            seed: 7,
            base_rps: 100.0,
            hours: 3.0,
            start: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            peak: None,
        }
    }

    #[test]
    fn same_seed_same_trace_and_it_reads_back() {
        let trace = generate(&options(Kind::Flood));
        assert_eq!(trace, generate(&options(Kind::Flood)));
        let mut bytes = Vec::new();
        write_csv(&trace, &mut bytes).unwrap();
        let back = Trace::read("synthetic", bytes.as_slice()).unwrap();
        assert_eq!(back.times, trace.times);
        assert_eq!(back.labels, trace.labels);
        assert_eq!(back.columns.len(), 5);
    }

    #[test]
    fn a_flood_multiplies_requests_and_is_labeled() {
        let trace = generate(&options(Kind::Flood));
        let labels = trace.labels.as_ref().unwrap();
        let requests = &trace.column("requests").unwrap().values;
        let first = labels.iter().position(|l| l == "flood").unwrap();
        let calm = requests[first - 100].unwrap();
        let peak = requests[first + 60].unwrap();
        assert!(peak > 6.0 * calm, "calm {calm}, flood {peak}");
        assert_eq!(labels.iter().filter(|l| *l == "flood").count(), 180);
    }

    #[test]
    fn the_demo_ramps_ordinary_requests_then_floods_tiny_ones() {
        let trace = generate(&Synthetic {
            base_rps: 5.0,
            hours: 0.75,
            ..options(Kind::Demo)
        });
        let value = |name: &str, row: usize| trace.column(name).unwrap().values[row].unwrap();
        let bytes_per_request = |row: usize| {
            (value("receive_bytes", row) + value("transmit_bytes", row)) / value("requests", row)
        };
        let (calm, held, flood) = (DEMO_RAMP_AT - 1, DEMO_RAMP_AT + 60, DEMO_FLOOD_AT + 30);
        let ramp = value("requests", held) / value("requests", calm);
        assert!((6.0..10.0).contains(&ramp), "ramp x{ramp}");
        let ratio = bytes_per_request(held) / bytes_per_request(calm);
        assert!(
            (0.9..1.1).contains(&ratio),
            "the ramp's requests changed size: x{ratio}"
        );
        assert!(value("requests", flood) > 50.0 * value("requests", calm));
        assert!(bytes_per_request(flood) < 0.1 * bytes_per_request(calm));
        let labels = trace.labels.as_ref().unwrap();
        assert_eq!(labels[held], "flash_crowd");
        assert_eq!(labels[flood], "flood");
    }
}
