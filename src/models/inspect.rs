//! What `swarmpilot model inspect` shows: a model's metadata, inputs and outputs.

use std::fmt::Write as _;

use tract_onnx::pb;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as Type;

use super::load::Model;
use super::metadata::ModelKind;

/// A graph input or output as declared in the file: `dims` are sizes or symbolic names.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub element: String,
    pub dims: Vec<String>,
}

/// The graph's declared inputs (initializers excluded) and outputs.
pub(crate) fn describe_io(graph: &pb::GraphProto) -> (Vec<TensorInfo>, Vec<TensorInfo>) {
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|info| !initializers.contains(&info.name.as_str()))
        .map(tensor_info)
        .collect();
    (inputs, graph.output.iter().map(tensor_info).collect())
}

fn tensor_info(info: &pb::ValueInfoProto) -> TensorInfo {
    let tensor = info.r#type.as_ref().and_then(|t| match &t.value {
        Some(Type::TensorType(tensor)) => Some(tensor),
        _ => None,
    });
    let element = tensor
        .and_then(|t| pb::tensor_proto::DataType::try_from(t.elem_type).ok())
        .map(|t| t.as_str_name().to_lowercase())
        .unwrap_or_else(|| "?".into());
    let dims = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|shape| {
            shape
                .dim
                .iter()
                .map(|dim| match &dim.value {
                    Some(Dim::DimValue(size)) => size.to_string(),
                    Some(Dim::DimParam(name)) => name.clone(),
                    None => "?".into(),
                })
                .collect()
        })
        .unwrap_or_default();
    TensorInfo {
        name: info.name.clone(),
        element,
        dims,
    }
}

/// A human-readable report of the model.
pub fn report(model: &Model) -> String {
    let meta = &model.metadata;
    let mut out = String::new();
    let _ = writeln!(out, "model:          {}", model.name);
    let _ = writeln!(out, "kind:           {}", meta.kind.as_str());
    let _ = writeln!(out, "version:        {}", meta.version);
    let _ = writeln!(out, "features:       {}", meta.features.join(", "));
    let _ = writeln!(out, "sample period:  {}s", meta.sample_period_secs);
    match meta.kind {
        ModelKind::Forecaster => {
            let _ = writeln!(
                out,
                "window:         {} samples ({}s)",
                meta.window,
                meta.window as f64 * meta.sample_period_secs
            );
            let _ = writeln!(
                out,
                "horizon:        {} samples ({}s)",
                meta.horizon,
                meta.horizon_secs()
            );
        }
        ModelKind::Classifier => {
            let _ = writeln!(
                out,
                "current window: {} samples ({}s)",
                meta.window,
                meta.window as f64 * meta.sample_period_secs
            );
            let _ = writeln!(
                out,
                "baseline:       median of {} samples ({}s), at least {}",
                meta.baseline_window,
                meta.baseline_window as f64 * meta.sample_period_secs,
                meta.min_baseline
            );
            let states: Vec<String> = meta
                .states
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{i}={s}"))
                .collect();
            let _ = writeln!(out, "cluster states: {}", states.join(" "));
            let _ = writeln!(out, "unknown beyond: distance {}", meta.threshold);
        }
    }
    let _ = writeln!(out, "normalization:  {}", meta.normalization);
    for (label, infos) in [("input", &model.inputs), ("output", &model.outputs)] {
        for info in infos {
            let name = format!("{}:", info.name);
            let _ = writeln!(
                out,
                "{label:<15} {name} {} [{}]",
                info.element,
                info.dims.join(", ")
            );
        }
    }
    let _ = writeln!(out, "metadata_props:");
    for (key, value) in &meta.properties {
        let _ = writeln!(out, "  {key} = {value}");
    }
    out
}
