//! tract must reproduce onnxruntime's outputs on the committed golden inputs, for the shipped
//! models loaded by bare name, and the runtime's classifier features must match the pipeline's.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use swarmpilot::models::{
    classifier_features, Classifier, Forecaster, Model, RoleHistories, Sample,
};

const ABS: f32 = 1e-4;
const REL: f32 = 1e-5;

fn golden(name: &str) -> Value {
    let path = format!("{}/models/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn rows(tensor: &Value) -> Vec<Vec<f32>> {
    let width = tensor["shape"][1].as_u64().unwrap() as usize;
    floats(&tensor["data"])
        .chunks(width)
        .map(<[f32]>::to_vec)
        .collect()
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: row {r} width");
        for (c, (&g, &w)) in g.iter().zip(w).enumerate() {
            // The tolerance is absolute 1e-4 plus 1e-5 relative to the expected value.
            let tolerance = ABS + REL * w.abs();
            assert!(
                (g - w).abs() <= tolerance,
                "{what}: row {r} col {c}: tract {g} vs onnxruntime {w} (tolerance {tolerance})"
            );
        }
    }
}

#[test]
fn tract_matches_onnxruntime_on_the_forecaster() {
    let golden = golden("traffic-forecast");
    let model = Arc::new(Model::load("traffic-forecast").unwrap());
    let forecaster = Forecaster::new(model).unwrap();
    let inputs = rows(&golden["input"]);
    let want = rows(&golden["output"]);
    assert_close(&forecaster.forecast(&inputs).unwrap(), &want, "batched");
    // The same plan at batch 1, row by row.
    for (input, want) in inputs.iter().zip(&want) {
        assert_close(
            &forecaster.forecast(std::slice::from_ref(input)).unwrap(),
            std::slice::from_ref(want),
            "batch 1",
        );
    }
}

#[test]
fn tract_matches_onnxruntime_on_the_classifier() {
    let golden = golden("traffic-states");
    let model = Arc::new(Model::load("traffic-states").unwrap());
    let classifier = Classifier::new(model).unwrap();
    let inputs = rows(&golden["input"]);
    let want = rows(&golden["output"]);
    let got = classifier.classify(&inputs).unwrap();
    let got_distances: Vec<Vec<f32>> = inputs
        .iter()
        .zip(&got)
        .map(|(_, c)| vec![c.distance])
        .collect();
    let want_nearest: Vec<Vec<f32>> = want
        .iter()
        .map(|row| vec![row.iter().copied().fold(f32::INFINITY, f32::min)])
        .collect();
    assert_close(&got_distances, &want_nearest, "nearest distance");
    for (c, row) in got.iter().zip(&want) {
        let expected = classifier.nearest(row);
        assert_eq!(c.state, expected.state);
        assert_eq!(c.cluster, expected.cluster);
    }
}

#[test]
fn classifier_distances_match_onnxruntime_in_full() {
    let golden = golden("traffic-states");
    let model = Model::load("traffic-states").unwrap();
    let inputs = rows(&golden["input"]);
    let flat: Vec<f32> = inputs.concat();
    let got = model_run(&model, inputs.len(), flat);
    assert_close(&got, &rows(&golden["output"]), "distances");
}

fn model_run(model: &Model, rows: usize, flat: Vec<f32>) -> Vec<Vec<f32>> {
    swarmpilot::models::run_raw(model, rows, flat)
        .unwrap()
        .chunks(model.output_width)
        .map(<[f32]>::to_vec)
        .collect()
}

#[test]
fn runtime_features_match_the_pipeline() {
    let golden = golden("traffic-states-features");
    let meta = Model::load("traffic-states").unwrap().metadata;
    let now: DateTime<Utc> = "2024-03-01T12:00:00Z".parse().unwrap();
    for (i, case) in golden["cases"].as_array().unwrap().iter().enumerate() {
        let history = case["history"].as_object().unwrap();
        let samples = |role: &str| -> Option<Vec<Sample>> {
            history.get(role).map(|values| {
                let values = values.as_array().unwrap();
                let n = values.len() as i64;
                values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| Sample {
                        at: now - Duration::seconds(5 * (n - 1 - k as i64)),
                        value: v.as_f64().unwrap(),
                    })
                    .collect()
            })
        };
        let (req, err, lat, rx, tx) = (
            samples("requests"),
            samples("errors"),
            samples("latency"),
            samples("receive_bytes"),
            samples("transmit_bytes"),
        );
        let roles = RoleHistories {
            requests: req.as_deref(),
            errors: err.as_deref(),
            latency: lat.as_deref(),
            receive_bytes: rx.as_deref(),
            transmit_bytes: tx.as_deref(),
        };
        let got = classifier_features(&roles, now, &meta).unwrap();
        let want = floats(&case["features"]);
        assert_close(&[got.to_vec()], &[want], &format!("case {i}"));
    }
}
