//! The classifier's scale-free features from a service's per-role history (models/README.md).
//!
//! For each role present: `current` = mean of the samples in the last `window` sample periods
//! (30 s), `baseline` = median of the samples in the last `baseline_window` periods (1 h,
//! current ones included). With `eps = 1e-6` and
//! `lr(a, b) = clamp(ln((max(a,0) + eps) / (max(b,0) + eps)), -4, 4)`:
//!
//! - `rate_ratio = lr(cur.requests, base.requests)`
//! - `bytes_per_request_ratio = lr((cur.rx + cur.tx) / (cur.requests + eps), (base.rx + base.tx) / (base.requests + eps))`
//! - `error_ratio = clamp(cur.errors / (cur.requests + eps), 0, 1)`
//! - `latency_ratio = lr(cur.latency, base.latency)`
//! - `rx_tx_ratio = lr(cur.rx / (cur.tx + eps), base.rx / (base.tx + eps))`
//!
//! A role the policy does not name gives its features their neutral value 0. A named role whose
//! history is too short or has nothing recent skips the classifier for that service.

use chrono::{DateTime, Utc};

use super::metadata::ModelMetadata;
use super::window::{Sample, WindowError};

/// The feature names this runtime computes, in input order.
pub const FEATURE_NAMES: [&str; 5] = [
    "rate_ratio",
    "bytes_per_request_ratio",
    "error_ratio",
    "latency_ratio",
    "rx_tx_ratio",
];

const EPS: f64 = 1e-6;
const CLAMP: f64 = 4.0;

/// One service's history per classifier role (oldest first); `None` for a role the policy
/// does not name.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoleHistories<'a> {
    pub requests: Option<&'a [Sample]>,
    pub errors: Option<&'a [Sample]>,
    pub latency: Option<&'a [Sample]>,
    pub receive_bytes: Option<&'a [Sample]>,
    pub transmit_bytes: Option<&'a [Sample]>,
}

#[derive(Clone, Copy)]
struct Summary {
    current: f64,
    baseline: f64,
}

fn lr(a: f64, b: f64) -> f64 {
    ((a.max(0.0) + EPS) / (b.max(0.0) + EPS))
        .ln()
        .clamp(-CLAMP, CLAMP)
}

fn summarize(
    role: &str,
    history: &[Sample],
    now: DateTime<Utc>,
    meta: &ModelMetadata,
) -> Result<Summary, WindowError> {
    let period_ms = meta.sample_period_secs * 1000.0;
    let age_ms = |s: &Sample| (now - s.at).num_milliseconds() as f64;
    let current_ms = meta.window as f64 * period_ms;
    let baseline_ms = meta.baseline_window as f64 * period_ms;
    let mut baseline: Vec<f64> = Vec::new();
    let mut current_sum = 0.0;
    let mut current_count = 0usize;
    let mut oldest_ms: f64 = 0.0;
    for sample in history.iter().filter(|s| s.value.is_finite()) {
        let age = age_ms(sample);
        if !(0.0..baseline_ms).contains(&age) {
            continue;
        }
        baseline.push(sample.value);
        oldest_ms = oldest_ms.max(age);
        if age < current_ms {
            current_sum += sample.value;
            current_count += 1;
        }
    }
    let need_ms = (meta.min_baseline - 1) as f64 * period_ms;
    if baseline.is_empty() || oldest_ms + 1e-6 < need_ms {
        return Err(WindowError::TooShort {
            metric: role.to_owned(),
            have_secs: oldest_ms / 1000.0,
            need_secs: need_ms / 1000.0,
        });
    }
    if current_count == 0 {
        return Err(WindowError::NoRecentSample {
            metric: role.to_owned(),
            window_secs: current_ms / 1000.0,
        });
    }
    Ok(Summary {
        current: current_sum / current_count as f64,
        baseline: median(&mut baseline),
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The feature row for one service at `now`, for a classifier with `meta`'s windows.
pub fn classifier_features(
    roles: &RoleHistories<'_>,
    now: DateTime<Utc>,
    meta: &ModelMetadata,
) -> Result<[f32; 5], WindowError> {
    let get = |name: &str, history: Option<&[Sample]>| {
        history.map(|h| summarize(name, h, now, meta)).transpose()
    };
    let requests = get("requests", roles.requests)?;
    let errors = get("errors", roles.errors)?;
    let latency = get("latency", roles.latency)?;
    let rx = get("receiveBytes", roles.receive_bytes)?;
    let tx = get("transmitBytes", roles.transmit_bytes)?;
    let mut out = [0.0f64; 5];
    if let Some(req) = requests {
        out[0] = lr(req.current, req.baseline);
        if rx.is_some() || tx.is_some() {
            let zero = Summary {
                current: 0.0,
                baseline: 0.0,
            };
            let (r, t) = (rx.unwrap_or(zero), tx.unwrap_or(zero));
            out[1] = lr(
                (r.current + t.current) / (req.current + EPS),
                (r.baseline + t.baseline) / (req.baseline + EPS),
            );
        }
        if let Some(err) = errors {
            out[2] = (err.current / (req.current + EPS)).clamp(0.0, 1.0);
        }
    }
    if let Some(lat) = latency {
        out[3] = lr(lat.current, lat.baseline);
    }
    if let (Some(r), Some(t)) = (rx, tx) {
        out[4] = lr(
            r.current / (t.current + EPS),
            r.baseline / (t.baseline + EPS),
        );
    }
    Ok(out.map(|v| v as f32))
}
