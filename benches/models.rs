//! Inference latency of the shipped models with tract: batch 1, and per-service cost at batch
//! 1,000. Inputs are the golden rows tiled to the batch size, as `models/train/bench_onnxruntime.py`
//! uses for onnxruntime, so the two compare as a ratio measured on the same machine.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swarmpilot::models::{Classifier, Forecaster, Model};

fn golden_rows(name: &str, size: usize) -> Vec<Vec<f32>> {
    let path = format!("{}/models/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let width = golden["input"]["shape"][1].as_u64().unwrap() as usize;
    let data: Vec<f32> = golden["input"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let rows: Vec<Vec<f32>> = data.chunks(width).map(<[f32]>::to_vec).collect();
    rows.iter().cycle().take(size).cloned().collect()
}

fn bench(c: &mut Criterion) {
    let forecaster = Forecaster::new(Arc::new(Model::load("traffic-forecast").unwrap())).unwrap();
    let classifier = Classifier::new(Arc::new(Model::load("traffic-states").unwrap())).unwrap();
    let mut group = c.benchmark_group("models");
    for size in [1usize, 1000] {
        group.throughput(Throughput::Elements(size as u64));
        let windows = golden_rows("traffic-forecast", size);
        group.bench_with_input(
            BenchmarkId::new("traffic-forecast", size),
            &windows,
            |b, windows| b.iter(|| forecaster.forecast(windows).unwrap()),
        );
        let features = golden_rows("traffic-states", size);
        group.bench_with_input(
            BenchmarkId::new("traffic-states", size),
            &features,
            |b, features| b.iter(|| classifier.classify(features).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
