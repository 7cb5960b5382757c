//! The scrape path's parser, fed arbitrary bytes and exposition-shaped noise, never panics.

use std::collections::BTreeMap;

use chrono::DateTime;
use proptest::prelude::*;
use swarmpilot::metrics::exposition::{histogram_quantile, parse, select, Selected};

/// Lines built from exposition tokens, so the parser's deeper branches get exercised too.
fn exposition_like() -> impl Strategy<Value = Vec<u8>> {
    let name = prop::sample::select(vec!["m", "m_total", "m_bucket", "m_count", "", "1x", "m{"]);
    let label = prop::sample::select(vec![
        "",
        "{}",
        "{le=\"0.5\"}",
        "{le=\"+Inf\"}",
        "{le=\"x\"}",
        "{a=\"b\",le=\"1\"}",
        "{a=b=c}",
        "{,,}",
        "{le=}",
        "{quantile=\"0.95\"}",
        "{a=\"}\"}",
    ]);
    let value = prop::sample::select(vec![
        "1", "-1", "NaN", "+Inf", "-Inf", "1e308", "1e999", "abc", "", "0x10",
    ]);
    let timestamp = prop::sample::select(vec![
        "",
        " 0",
        " -1",
        " 99999999999999999",
        " 9223372036854775807",
        " x",
    ]);
    let header = prop::sample::select(vec![
        "",
        "# TYPE m counter\n",
        "# TYPE m histogram\n",
        "# TYPE m summary\n",
        "# TYPE m gauge\n",
        "# HELP m help\n",
        "# TYPE m\n",
    ]);
    prop::collection::vec((header, name, label, value, timestamp), 0..20).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(h, n, l, v, t)| format!("{h}{n}{l} {v}{t}\n"))
            .collect::<String>()
            .into_bytes()
    })
}

fn exercise(bytes: &[u8], quantile: f64) {
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let samples = parse(bytes, now);
    for name in ["m", "m_total", "m_bucket"] {
        let matchers = BTreeMap::new();
        if let Ok((Selected::Histogram(series), _)) =
            select(&samples, name, &matchers, Some(quantile))
        {
            for buckets in series.values() {
                let _ = histogram_quantile(quantile, buckets);
            }
        }
        let _ = select(
            &samples,
            name,
            &BTreeMap::from([("a".into(), "b".into())]),
            None,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), q in -1.0f64..2.0) {
        exercise(&bytes, q);
    }

    #[test]
    fn exposition_shaped_noise_never_panics(bytes in exposition_like(), q in 0.0f64..=1.0) {
        exercise(&bytes, q);
    }

    #[test]
    fn quantiles_of_arbitrary_buckets_never_panic(
        buckets in prop::collection::vec((prop::num::f64::ANY, prop::num::f64::ANY), 0..12),
        q in prop::num::f64::ANY,
    ) {
        let mut buckets = buckets;
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let _ = histogram_quantile(q, &buckets);
    }
}
