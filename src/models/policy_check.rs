//! A model must fit the policy that names it; a mismatch is an error naming both sides.

use crate::policy::{AnomalySpec, ForecastSpec};

use super::error::ModelError;
use super::features::FEATURE_NAMES;
use super::load::Model;
use super::metadata::ModelKind;

fn mismatch(model: &Model, policy_side: String, model_side: String) -> ModelError {
    ModelError::Mismatch {
        model: model.name.clone(),
        policy_side,
        model_side,
    }
}

/// Checks a forecaster against `spec.forecast`: kind, one load feature, horizon long enough.
pub fn check_forecast(spec: &ForecastSpec, model: &Model) -> Result<(), ModelError> {
    let meta = &model.metadata;
    let mismatch = |policy_side, model_side| mismatch(model, policy_side, model_side);
    if meta.kind != ModelKind::Forecaster {
        return Err(mismatch(
            format!("forecast.model {:?}", spec.model),
            format!("kind is {}, not forecaster", meta.kind.as_str()),
        ));
    }
    if meta.features.len() != 1 {
        return Err(mismatch(
            format!("forecast.metric {:?} (one metric)", spec.metric),
            format!(
                "features are {:?}; a forecaster takes exactly one",
                meta.features
            ),
        ));
    }
    let asked = spec.horizon.as_secs_f64();
    if asked > meta.horizon_secs() + 1e-9 {
        return Err(mismatch(
            format!("forecast.horizon {asked}s"),
            format!(
                "horizon is {}s ({} samples of {}s)",
                meta.horizon_secs(),
                meta.horizon,
                meta.sample_period_secs
            ),
        ));
    }
    Ok(())
}

/// Checks a classifier against `spec.anomaly`: kind, and features this runtime can compute.
pub fn check_anomaly(spec: &AnomalySpec, model: &Model) -> Result<(), ModelError> {
    let meta = &model.metadata;
    let mismatch = |policy_side, model_side| mismatch(model, policy_side, model_side);
    if meta.kind != ModelKind::Classifier {
        return Err(mismatch(
            format!("anomaly.model {:?}", spec.model),
            format!("kind is {}, not classifier", meta.kind.as_str()),
        ));
    }
    if meta.features != FEATURE_NAMES {
        return Err(mismatch(
            format!(
                "anomaly.inputs (computed features {})",
                FEATURE_NAMES.join(",")
            ),
            format!("features are {}", meta.features.join(",")),
        ));
    }
    let inputs = &spec.inputs;
    let named = [
        &inputs.requests,
        &inputs.errors,
        &inputs.latency,
        &inputs.receive_bytes,
        &inputs.transmit_bytes,
    ];
    if named.iter().all(|role| role.is_none()) {
        return Err(mismatch(
            "anomaly.inputs (no role named: every feature would be neutral)".into(),
            format!("features are {}", meta.features.join(",")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AnomalyInputs, ForecastUse, HumanDuration};

    fn forecast(model: &str, horizon: u64) -> ForecastSpec {
        ForecastSpec {
            model: model.into(),
            metric: "rps".into(),
            horizon: HumanDuration::from_secs(horizon),
            use_for: ForecastUse::ScaleUp,
        }
    }

    fn anomaly(inputs: AnomalyInputs) -> AnomalySpec {
        AnomalySpec {
            model: "traffic-states".into(),
            inputs,
            for_duration: HumanDuration::from_secs(30),
            on_state: Default::default(),
            notify: vec![],
        }
    }

    #[test]
    fn a_horizon_beyond_the_model_names_both_sides() {
        let model = Model::load("traffic-forecast").unwrap();
        check_forecast(&forecast("traffic-forecast", 60), &model).unwrap();
        let error = check_forecast(&forecast("traffic-forecast", 120), &model)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("forecast.horizon 120s") && error.contains("horizon is 60s"),
            "{error}"
        );
    }

    #[test]
    fn the_wrong_kind_of_model_is_refused() {
        let classifier = Model::load("traffic-states").unwrap();
        let error = check_forecast(&forecast("traffic-states", 60), &classifier)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not forecaster"), "{error}");
        let forecaster = Model::load("traffic-forecast").unwrap();
        let inputs = AnomalyInputs {
            requests: Some("rps".into()),
            ..Default::default()
        };
        let error = check_anomaly(&anomaly(inputs), &forecaster)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not classifier"), "{error}");
    }

    #[test]
    fn a_classifier_needs_at_least_one_role() {
        let model = Model::load("traffic-states").unwrap();
        assert!(check_anomaly(&anomaly(AnomalyInputs::default()), &model).is_err());
        let inputs = AnomalyInputs {
            requests: Some("rps".into()),
            ..Default::default()
        };
        check_anomaly(&anomaly(inputs), &model).unwrap();
    }
}
