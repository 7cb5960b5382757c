//! Exposition text: parsing any bytes without panicking, selecting a metric by name and label
//! matchers, and the quantile of a histogram's buckets as Prometheus' `histogram_quantile` computes it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prometheus_parse::{Sample, Scrape, Value};

/// One series' labels (a histogram's without `le`): what tells a series of a metric from the
/// others, and from one scrape to the next.
pub type SeriesLabels = BTreeMap<String, String>;

/// What one task exposes for the selected metric, keyed by each matching series' labels.
#[derive(Clone, Debug, PartialEq)]
pub enum Selected {
    /// A gauge (or an untyped metric not named `_total`): the matching series, summed.
    Gauge(f64),
    /// A counter (typed `counter`, or untyped and named `..._total`): each series' cumulative value.
    Counter(BTreeMap<SeriesLabels, f64>),
    /// A histogram: each series' cumulative buckets as `(upper bound, count)`, sorted by bound.
    Histogram(BTreeMap<SeriesLabels, Vec<(f64, f64)>>),
}

/// Parse exposition text. Invalid UTF-8 is replaced and unparseable lines are skipped, so any
/// bytes give some (maybe empty) list of samples. Samples without their own timestamp get `now`.
pub fn parse(body: &[u8], now: DateTime<Utc>) -> Vec<Sample> {
    let text = String::from_utf8_lossy(body);
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    match Scrape::parse_at(lines, now) {
        Ok(scrape) => scrape.samples,
        // Only the line iterator can fail, and ours never does.
        Err(_) => Vec::new(),
    }
}

/// The samples of metric family `name` whose labels include every matcher, as one kind, with
/// the latest of their timestamps. `quantile` picks a summary's pre-computed quantile; for
/// histograms it is applied later.
pub fn select(
    samples: &[Sample],
    name: &str,
    matchers: &BTreeMap<String, String>,
    quantile: Option<f64>,
) -> Result<(Selected, DateTime<Utc>), String> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|sample| {
            matchers
                .iter()
                .all(|(label, value)| sample.labels.get(label) == Some(value.as_str()))
        })
        .collect();
    let family: Vec<&Sample> = matching
        .iter()
        .copied()
        .filter(|sample| sample.metric == name)
        .collect();
    let bucket_name = format!("{name}_bucket");
    let at = matching
        .iter()
        .filter(|sample| sample.metric == name || sample.metric == bucket_name)
        .map(|sample| sample.timestamp)
        .max()
        .ok_or_else(|| format!("no series of metric {name} matches labels {matchers:?}"))?;
    if family.is_empty() {
        return untyped_histogram(&matching, &bucket_name)
            .map(|selected| (selected, at))
            .ok_or_else(|| format!("no series of metric {name} matches labels {matchers:?}"));
    }
    let mut gauge = 0.0;
    let mut counters = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    for sample in &family {
        let key = series_labels(sample, None);
        match &sample.value {
            Value::Counter(value) => {
                counters.insert(key, *value);
            }
            Value::Untyped(value) if name.ends_with("_total") => {
                counters.insert(key, *value);
            }
            Value::Gauge(value) | Value::Untyped(value) => gauge += value,
            Value::Histogram(buckets) => {
                let mut buckets: Vec<(f64, f64)> = buckets
                    .iter()
                    .map(|bucket| (bucket.less_than, bucket.count))
                    .collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                histograms.insert(key, buckets);
            }
            Value::Summary(quantiles) => {
                let wanted = quantile.ok_or_else(|| {
                    format!("{name} is a summary: set `quantile` to one it exposes")
                })?;
                let found = quantiles
                    .iter()
                    .find(|q| (q.quantile - wanted).abs() < 1e-9)
                    .ok_or_else(|| format!("summary {name} does not expose quantile {wanted}"))?;
                gauge += found.count;
            }
        }
    }
    let kinds = [!counters.is_empty(), !histograms.is_empty()];
    match kinds {
        [true, false] if gauge == 0.0 => Ok((Selected::Counter(counters), at)),
        [false, true] if gauge == 0.0 => Ok((Selected::Histogram(histograms), at)),
        [false, false] => Ok((Selected::Gauge(gauge), at)),
        _ => Err(format!("metric {name} mixes series of different types")),
    }
}

/// `name_bucket{le=..}` series without a `# TYPE name histogram` line.
fn untyped_histogram(samples: &[&Sample], bucket_name: &str) -> Option<Selected> {
    let mut histograms: BTreeMap<SeriesLabels, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in samples.iter().filter(|sample| sample.metric == bucket_name) {
        let Value::Untyped(count) = sample.value else {
            continue;
        };
        let Some(bound) = sample.labels.get("le").and_then(parse_bound) else {
            continue;
        };
        let key = series_labels(sample, Some("le"));
        histograms.entry(key).or_default().push((bound, count));
    }
    if histograms.is_empty() {
        return None;
    }
    for buckets in histograms.values_mut() {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Some(Selected::Histogram(histograms))
}

/// The labels of `sample`, but `without`.
fn series_labels(sample: &Sample, without: Option<&str>) -> SeriesLabels {
    sample
        .labels
        .iter()
        .filter(|(label, _)| Some(label.as_str()) != without)
        .map(|(label, value)| (label.clone(), value.clone()))
        .collect()
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

/// Add the buckets of `from` into `into`, matching by upper bound.
pub fn merge_buckets(into: &mut Vec<(f64, f64)>, from: &[(f64, f64)]) {
    for &(bound, count) in from {
        match into.iter_mut().find(|(b, _)| *b == bound) {
            Some(bucket) => bucket.1 += count,
            None => into.push((bound, count)),
        }
    }
    into.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// The `q`-quantile of cumulative buckets sorted by upper bound, interpolated linearly within
/// the bucket it falls in, as Prometheus' `histogram_quantile`. `Ok(None)` when the histogram
/// holds no observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Result<Option<f64>, String> {
    if !(0.0..=1.0).contains(&q) {
        return Err(format!("quantile {q} is outside 0..=1"));
    }
    match buckets.last() {
        Some((bound, _)) if *bound == f64::INFINITY => {}
        _ => return Err("the histogram has no +Inf bucket".into()),
    }
    // Counts must not decrease with the bound; scrapes racing with observations can break that.
    let mut counts = Vec::with_capacity(buckets.len());
    let mut running: f64 = 0.0;
    for &(_, count) in buckets {
        running = running.max(count);
        counts.push(running);
    }
    let total = running;
    if total <= 0.0 || !total.is_finite() {
        return Ok(None);
    }
    let mut rank = q * total;
    let index = counts
        .iter()
        .position(|&count| count >= rank)
        .unwrap_or(counts.len() - 1);
    if index == buckets.len() - 1 {
        // In the +Inf bucket: the best estimate is the highest finite bound.
        return Ok(Some(if index == 0 {
            0.0
        } else {
            buckets[index - 1].0
        }));
    }
    let end = buckets[index].0;
    if index == 0 && end <= 0.0 {
        return Ok(Some(end));
    }
    let (start, below) = if index == 0 {
        (0.0, 0.0)
    } else {
        (buckets[index - 1].0, counts[index - 1])
    };
    let in_bucket = counts[index] - below;
    rank -= below;
    if in_bucket <= 0.0 {
        return Ok(Some(end));
    }
    Ok(Some(start + (end - start) * (rank / in_bucket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    const TEXT: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/"} 10
http_requests_total{code="500",path="/"} 2
# TYPE inflight gauge
inflight 3
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 50
latency_seconds_bucket{le="0.5"} 90
latency_seconds_bucket{le="1"} 100
latency_seconds_bucket{le="+Inf"} 100
latency_seconds_sum 20
latency_seconds_count 100
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.95"} 0.7
rpc_seconds_sum 1
rpc_seconds_count 2
"#;

    #[test]
    fn counters_are_selected_per_series_and_filtered_by_labels() {
        let samples = parse(TEXT.as_bytes(), now());
        let (all, at) = select(&samples, "http_requests_total", &BTreeMap::new(), None).unwrap();
        assert_eq!(at, now());
        let Selected::Counter(series) = all else {
            panic!("not a counter: {all:?}")
        };
        assert_eq!(series.values().sum::<f64>(), 12.0);
        let only_200 = BTreeMap::from([("code".to_owned(), "200".to_owned())]);
        let (Selected::Counter(series), _) =
            select(&samples, "http_requests_total", &only_200, None).unwrap()
        else {
            panic!("not a counter")
        };
        assert_eq!(series.values().copied().collect::<Vec<_>>(), vec![10.0]);
    }

    #[test]
    fn gauges_histograms_and_summaries_are_recognised() {
        let samples = parse(TEXT.as_bytes(), now());
        assert_eq!(
            select(&samples, "inflight", &BTreeMap::new(), None).unwrap(),
            (Selected::Gauge(3.0), now())
        );
        let (Selected::Histogram(series), _) =
            select(&samples, "latency_seconds", &BTreeMap::new(), None).unwrap()
        else {
            panic!("not a histogram")
        };
        let buckets = series.values().next().unwrap();
        assert_eq!(buckets.len(), 4);
        assert_eq!(buckets[3], (f64::INFINITY, 100.0));
        assert_eq!(
            select(&samples, "rpc_seconds", &BTreeMap::new(), Some(0.95)).unwrap(),
            (Selected::Gauge(0.7), now())
        );
    }

    #[test]
    fn missing_metric_names_the_metric() {
        let samples = parse(TEXT.as_bytes(), now());
        let error = select(&samples, "nope", &BTreeMap::new(), None).unwrap_err();
        assert!(error.contains("nope"), "{error}");
    }

    #[test]
    fn untyped_buckets_are_read_as_a_histogram() {
        let text = "x_bucket{a=\"1\",le=\"1\"} 3\nx_bucket{a=\"1\",le=\"+Inf\"} 4\n";
        let samples = parse(text.as_bytes(), now());
        let (Selected::Histogram(series), _) =
            select(&samples, "x", &BTreeMap::new(), None).unwrap()
        else {
            panic!("not a histogram")
        };
        // One series, known by its labels but `le`.
        let labels = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        assert_eq!(
            series,
            BTreeMap::from([(labels, vec![(1.0, 3.0), (f64::INFINITY, 4.0)])])
        );
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let buckets = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        // rank 95 falls in (0.5, 1]: 5 of its 10 observations -> halfway.
        assert!((histogram_quantile(0.95, &buckets).unwrap().unwrap() - 0.75).abs() < 1e-12);
        // rank 25 falls in the first bucket, interpolated from 0.
        assert!((histogram_quantile(0.25, &buckets).unwrap().unwrap() - 0.05).abs() < 1e-12);
        // Beyond the last finite bound: that bound.
        let tail = [(1.0, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.99, &tail).unwrap(), Some(1.0));
        assert_eq!(
            histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]).unwrap(),
            None
        );
        assert!(histogram_quantile(0.5, &[(1.0, 3.0)]).is_err());
        assert!(histogram_quantile(1.5, &buckets).is_err());
    }

    #[test]
    fn garbage_parses_to_nothing() {
        assert!(parse(b"\xff\xfe{{{ not exposition\n\0\0", now()).is_empty());
    }
}
