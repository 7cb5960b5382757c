//! The self-description every model carries in ONNX `metadata_props`, parsed and checked.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::policy::TrafficState;

use super::error::ModelError;

/// What a model does, from the `kind` property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// `window` [batch, window] raw samples in, `forecast` [batch, horizon] out.
    Forecaster,
    /// `features` [batch, n] in, `distances` [batch, clusters] out.
    Classifier,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Forecaster => "forecaster",
            ModelKind::Classifier => "classifier",
        }
    }
}

/// The parsed `metadata_props`. Lengths are in samples of `sample_period_secs`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMetadata {
    pub kind: ModelKind,
    pub version: String,
    /// Feature names in input order (`load` for the forecaster).
    pub features: Vec<String>,
    /// The graph input and output the runtime feeds and reads.
    pub input: String,
    pub output: String,
    /// Forecaster: samples in the input window. Classifier: samples in the "current" window.
    pub window: usize,
    pub sample_period_secs: f64,
    /// Forecaster: samples forecast. Classifier: 0.
    pub horizon: usize,
    pub normalization: String,
    /// Classifier: the state of each cluster, in output order.
    pub states: Vec<TrafficState>,
    /// Classifier: a sample farther than this from every cluster is `unknown`.
    pub threshold: f32,
    /// Classifier: samples in the baseline window, and the fewest it needs.
    pub baseline_window: usize,
    pub min_baseline: usize,
    /// Every property as written, for `model inspect`.
    pub properties: BTreeMap<String, String>,
}

impl ModelMetadata {
    /// Parses the properties of the model called `model` (its name or path, for errors).
    pub fn parse(model: &str, properties: BTreeMap<String, String>) -> Result<Self, ModelError> {
        let props = Props {
            model,
            map: &properties,
        };
        let kind = match props.required("kind")? {
            "forecaster" => ModelKind::Forecaster,
            "classifier" => ModelKind::Classifier,
            other => {
                return Err(props.bad(
                    "kind",
                    format!("{other:?}, expected forecaster or classifier"),
                ))
            }
        };
        let features: Vec<String> = props
            .required("features")?
            .split(',')
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect();
        if features.is_empty() {
            return Err(props.bad("features", "no feature names".into()));
        }
        let sample_period_secs: f64 = props.number("sample_period")?;
        if !(sample_period_secs.is_finite() && sample_period_secs > 0.0) {
            return Err(props.bad(
                "sample_period",
                "must be a positive number of seconds".into(),
            ));
        }
        let window: usize = props.number("window")?;
        if window == 0 {
            return Err(props.bad("window", "must be at least 1".into()));
        }
        let horizon: usize = props.number("horizon")?;
        let mut meta = ModelMetadata {
            kind,
            version: props.required("version")?.to_owned(),
            features,
            input: props.required("input")?.to_owned(),
            output: props.required("output")?.to_owned(),
            window,
            sample_period_secs,
            horizon,
            normalization: props
                .optional("normalization")
                .unwrap_or_default()
                .to_owned(),
            states: Vec::new(),
            threshold: f32::INFINITY,
            baseline_window: 0,
            min_baseline: 0,
            properties: properties.clone(),
        };
        match kind {
            ModelKind::Forecaster => {
                if horizon == 0 {
                    return Err(props.bad(
                        "horizon",
                        "a forecaster must forecast at least 1 sample".into(),
                    ));
                }
            }
            ModelKind::Classifier => {
                meta.states = props
                    .required("states")?
                    .split(',')
                    .map(|name| {
                        TrafficState::from_str(name.trim())
                            .map_err(|problem| props.bad("states", problem))
                    })
                    .collect::<Result<_, _>>()?;
                meta.threshold = props.number("threshold")?;
                if meta.threshold.is_nan() || meta.threshold <= 0.0 {
                    return Err(props.bad("threshold", "must be a positive distance".into()));
                }
                meta.baseline_window = props.number("baseline_window")?;
                meta.min_baseline = props.number("min_baseline")?;
                if meta.min_baseline == 0
                    || meta.min_baseline > meta.baseline_window
                    || meta.window > meta.baseline_window
                {
                    return Err(props.bad(
                        "min_baseline",
                        format!(
                            "need 1 <= min_baseline ({}) <= baseline_window ({}) and window ({}) <= baseline_window",
                            meta.min_baseline, meta.baseline_window, meta.window
                        ),
                    ));
                }
            }
        }
        Ok(meta)
    }

    /// How far ahead a forecaster sees, in seconds.
    pub fn horizon_secs(&self) -> f64 {
        self.horizon as f64 * self.sample_period_secs
    }
}

struct Props<'a> {
    model: &'a str,
    map: &'a BTreeMap<String, String>,
}

impl Props<'_> {
    fn optional(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    fn required(&self, key: &str) -> Result<&str, ModelError> {
        self.optional(key)
            .ok_or_else(|| self.bad(key, "missing".into()))
    }

    fn number<T: FromStr>(&self, key: &str) -> Result<T, ModelError> {
        let text = self.required(key)?;
        text.trim()
            .parse()
            .map_err(|_| self.bad(key, format!("{text:?} is not a valid number")))
    }

    fn bad(&self, key: &str, problem: String) -> ModelError {
        ModelError::Metadata {
            model: self.model.to_owned(),
            key: key.to_owned(),
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecaster_props() -> BTreeMap<String, String> {
        [
            ("kind", "forecaster"),
            ("version", "1"),
            ("features", "load"),
            ("input", "window"),
            ("output", "forecast"),
            ("window", "60"),
            ("sample_period", "5"),
            ("horizon", "12"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn parses_a_forecaster() {
        let meta = ModelMetadata::parse("m", forecaster_props()).unwrap();
        assert_eq!(meta.kind, ModelKind::Forecaster);
        assert_eq!(meta.horizon_secs(), 60.0);
        assert_eq!(meta.features, vec!["load"]);
    }

    #[test]
    fn a_missing_or_malformed_key_is_named() {
        let mut props = forecaster_props();
        props.remove("horizon");
        let error = ModelMetadata::parse("mine.onnx", props)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mine.onnx")
                && error.contains("\"horizon\"")
                && error.contains("missing"),
            "{error}"
        );
        let mut props = forecaster_props();
        props.insert("window".into(), "sixty".into());
        let error = ModelMetadata::parse("m", props).unwrap_err().to_string();
        assert!(
            error.contains("\"window\"") && error.contains("sixty"),
            "{error}"
        );
    }

    #[test]
    fn a_classifier_needs_known_states_and_a_threshold() {
        let mut props = forecaster_props();
        props.insert("kind".into(), "classifier".into());
        props.insert("horizon".into(), "0".into());
        props.insert("states".into(), "normal,storm".into());
        props.insert("threshold".into(), "2.5".into());
        props.insert("baseline_window".into(), "720".into());
        props.insert("min_baseline".into(), "60".into());
        let error = ModelMetadata::parse("m", props.clone())
            .unwrap_err()
            .to_string();
        assert!(error.contains("storm"), "{error}");
        props.insert("states".into(), "normal,flood".into());
        let meta = ModelMetadata::parse("m", props).unwrap();
        assert_eq!(meta.states, vec![TrafficState::Normal, TrafficState::Flood]);
        assert_eq!(meta.threshold, 2.5);
    }
}
