//! Loading a model once: shipped bytes or a file, metadata, shape checks, tract optimization.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::error::ModelError;
use super::inspect::{describe_io, TensorInfo};
use super::metadata::{ModelKind, ModelMetadata};

/// The models embedded in the binary, by the bare name a policy uses.
pub const SHIPPED: [(&str, &[u8]); 2] = [
    (
        "traffic-forecast",
        include_bytes!("../../models/traffic-forecast.onnx"),
    ),
    (
        "traffic-states",
        include_bytes!("../../models/traffic-states.onnx"),
    ),
];

/// The largest model file read, in bytes (16 MiB; the shipped models are under 32 KiB).
pub const MAX_MODEL_BYTES: u64 = 16 * 1024 * 1024;

/// A loaded, checked and optimized model; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Model {
    /// The bare name or path it was loaded from.
    pub name: String,
    pub metadata: ModelMetadata,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// Values per batch row going in (window length or feature count) and coming out.
    pub input_width: usize,
    pub output_width: usize,
    plans: Plans,
}

impl Model {
    /// Loads a shipped model by bare name (`traffic-forecast`), or an `.onnx` file by path:
    /// what the commands a user runs on their own files take. The operator loads files only
    /// from its model directory ([`super::ModelCache`]).
    pub fn load(spec: &str) -> Result<Model, ModelError> {
        if let Some(bytes) = shipped(spec) {
            return Model::from_bytes(spec, bytes);
        }
        let path = Path::new(spec);
        let looks_like_path = spec.contains('/') || spec.ends_with(".onnx") || path.exists();
        if !looks_like_path {
            return Err(ModelError::UnknownName {
                model: spec.to_owned(),
                known: shipped_names(),
            });
        }
        Model::from_bytes(spec, &read_model_file(spec, path)?)
    }

    /// Decodes, checks and optimizes a model; `name` is used in errors and reports.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Model, ModelError> {
        let proto = onnx()
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|error| ModelError::Decode {
                model: name.to_owned(),
                message: format!("{error:#}"),
            })?;
        let properties: BTreeMap<String, String> = proto
            .metadata_props
            .iter()
            .map(|entry| (entry.key.clone(), entry.value.clone()))
            .collect();
        let metadata = ModelMetadata::parse(name, properties)?;
        let graph = proto.graph.as_ref().ok_or_else(|| ModelError::Decode {
            model: name.to_owned(),
            message: "no graph".into(),
        })?;
        let (inputs, outputs) = describe_io(graph);
        let input_width = row_width(name, &inputs, &metadata.input, "input")?;
        let output_width = row_width(name, &outputs, &metadata.output, "output")?;
        check_widths(name, &metadata, input_width, output_width)?;
        let plans = Plans::new(name, &proto, &metadata)?;
        Ok(Model {
            name: name.to_owned(),
            metadata,
            inputs,
            outputs,
            input_width,
            output_width,
            plans,
        })
    }

    /// Runs the plan on `rows` rows of `input_width` values; returns rows of `output_width`.
    pub(crate) fn run_rows(&self, rows: usize, mut flat: Vec<f32>) -> Result<Vec<f32>, ModelError> {
        let (batch, plan) = self.plans.for_rows(&self.name, rows)?;
        // Rows are independent: padding rows (zeros) fill the plan's batch, and are dropped.
        flat.resize(batch * self.input_width, 0.0);
        let input = tract_ndarray::Array2::from_shape_vec((batch, self.input_width), flat)
            .map_err(|error| ModelError::tract(&self.name, "shape the batch", error))?;
        let outputs = plan
            .run(tvec!(Tensor::from(input).into_tvalue()))
            .map_err(|error| ModelError::tract(&self.name, "run", error))?;
        let output = outputs
            .first()
            .ok_or_else(|| ModelError::tract(&self.name, "run", "no output"))?;
        let view = output
            .to_plain_array_view::<f32>()
            .map_err(|error| ModelError::tract(&self.name, "read the output", error))?;
        if view.shape() != [batch, self.output_width] {
            return Err(ModelError::Shape {
                model: self.name.clone(),
                problem: format!(
                    "output shape {:?}, expected [{batch}, {}]",
                    view.shape(),
                    self.output_width
                ),
            });
        }
        Ok(view
            .iter()
            .take(rows * self.output_width)
            .copied()
            .collect())
    }
}

/// Optimized plans per batch size. A plan made for a fixed batch size runs several times
/// faster than one whose batch dimension stays symbolic (tract resolves every shape on each
/// run then), so each batch size gets its own plan: sizes are rounded up to a power of two,
/// so a batcher whose batches vary needs a handful, and at most [`MAX_PLANS`] are kept.
#[derive(Debug)]
struct Plans {
    /// The decluttered graph, its batch dimension symbolic: every plan is made from it.
    graph: TypedModel,
    /// The symbol of the batch dimension; `None` when the graph has a fixed batch size.
    batch: Option<Symbol>,
    /// (batch size, plan), the most recently used last.
    made: Mutex<Vec<(usize, Arc<TypedRunnableModel>)>>,
}

/// The most plans kept per model: batch sizes 1 to 128, or the few a batcher uses.
const MAX_PLANS: usize = 8;

impl Plans {
    /// Translates and declutters the graph, and makes the batch-1 plan, so that a model that
    /// cannot be optimized fails to load (within the load's time limit) rather than at its first run.
    fn new(name: &str, proto: &pb::ModelProto, meta: &ModelMetadata) -> Result<Plans, ModelError> {
        let graph = typed_graph(name, proto, meta)?;
        let batch = graph
            .input_fact(0)
            .ok()
            .and_then(|fact| fact.shape.first().cloned())
            .and_then(|dim| match dim {
                TDim::Sym(symbol) => Some(symbol),
                _ => None,
            });
        let plans = Plans {
            graph,
            batch,
            made: Mutex::default(),
        };
        plans.for_rows(name, 1)?;
        Ok(plans)
    }

    /// The batch size that serves `rows` rows and its plan, made now if it is not kept.
    fn for_rows(
        &self,
        name: &str,
        rows: usize,
    ) -> Result<(usize, Arc<TypedRunnableModel>), ModelError> {
        let batch = match &self.batch {
            Some(_) => rows.max(1).next_power_of_two(),
            None => rows,
        };
        let key = if self.batch.is_some() { batch } else { 0 };
        if let Some(plan) = self.kept(key) {
            return Ok((batch, plan));
        }
        // Made outside the lock: other batch sizes keep running meanwhile.
        let plan = self.make(name, batch)?;
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        made.retain(|(size, _)| *size != key);
        made.push((key, Arc::clone(&plan)));
        if made.len() > MAX_PLANS {
            made.remove(0);
        }
        Ok((batch, plan))
    }

    fn kept(&self, key: usize) -> Option<Arc<TypedRunnableModel>> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let at = made.iter().position(|(size, _)| *size == key)?;
        let entry = made.remove(at);
        let plan = Arc::clone(&entry.1);
        made.push(entry);
        Some(plan)
    }

    /// The one way a plan is made: the graph with its batch size fixed, optimized.
    fn make(&self, name: &str, batch: usize) -> Result<Arc<TypedRunnableModel>, ModelError> {
        let graph = match &self.batch {
            Some(symbol) => {
                let size = i64::try_from(batch)
                    .map_err(|_| ModelError::tract(name, "fix the batch size", batch))?;
                let values = std::collections::HashMap::from([(symbol.clone(), TDim::Val(size))]);
                self.graph
                    .set_symbols(&values)
                    .map_err(|error| ModelError::tract(name, "fix the batch size", error))?
            }
            None => self.graph.clone(),
        };
        graph
            .into_optimized()
            .and_then(|typed| typed.into_runnable())
            .map_err(|error| ModelError::tract(name, "optimize", error))
    }
}

/// The bytes of the shipped model called `name`, if there is one.
pub(crate) fn shipped(name: &str) -> Option<&'static [u8]> {
    SHIPPED
        .iter()
        .find(|(shipped, _)| *shipped == name)
        .map(|(_, bytes)| *bytes)
}

/// The shipped models' names, for diagnostics.
pub(crate) fn shipped_names() -> String {
    SHIPPED
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A model file's bytes: a regular file (not a device, pipe or directory) of at most
/// [`MAX_MODEL_BYTES`], checked before opening (opening a pipe would wait for a writer), on
/// the open file, and while reading, since a file can grow.
pub(crate) fn read_model_file(model: &str, path: &Path) -> Result<Vec<u8>, ModelError> {
    let read_error = |source| ModelError::Read {
        path: model.to_owned(),
        source,
    };
    let refused = |reason: String| ModelError::Refused {
        model: model.to_owned(),
        reason,
    };
    let check = |metadata: std::fs::Metadata| {
        if !metadata.is_file() {
            return Err(refused(
                "is not a regular file (devices, pipes and directories are not models)".into(),
            ));
        }
        if metadata.len() > MAX_MODEL_BYTES {
            return Err(refused(too_large(metadata.len())));
        }
        Ok(())
    };
    check(std::fs::metadata(path).map_err(read_error)?)?;
    let file = std::fs::File::open(path).map_err(read_error)?;
    check(file.metadata().map_err(read_error)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(refused(too_large(bytes.len() as u64)));
    }
    Ok(bytes)
}

fn too_large(len: u64) -> String {
    format!("is {len} bytes, larger than the {MAX_MODEL_BYTES}-byte limit for a model file")
}

/// The fixed second dimension of a [batch, n] graph input or output named by the metadata.
fn row_width(
    model: &str,
    infos: &[TensorInfo],
    name: &str,
    role: &str,
) -> Result<usize, ModelError> {
    let info = infos
        .iter()
        .find(|info| info.name == name)
        .ok_or_else(|| ModelError::Shape {
            model: model.to_owned(),
            problem: format!(
                "metadata names {role} {name:?}, the graph has {:?}",
                infos
                    .iter()
                    .map(|info| info.name.as_str())
                    .collect::<Vec<_>>()
            ),
        })?;
    match info.dims.as_slice() {
        [_, width] => width.parse().map_err(|_| ModelError::Shape {
            model: model.to_owned(),
            problem: format!("{role} {name:?} second dimension {width:?} must be a fixed size"),
        }),
        dims => Err(ModelError::Shape {
            model: model.to_owned(),
            problem: format!("{role} {name:?} has shape {dims:?}, expected [batch, n]"),
        }),
    }
}

fn check_widths(
    model: &str,
    meta: &ModelMetadata,
    input: usize,
    output: usize,
) -> Result<(), ModelError> {
    let (want_in, want_out, out_what) = match meta.kind {
        ModelKind::Forecaster => (meta.window, meta.horizon, "horizon"),
        ModelKind::Classifier => (meta.features.len(), meta.states.len(), "states"),
    };
    let in_what = match meta.kind {
        ModelKind::Forecaster => "window",
        ModelKind::Classifier => "features",
    };
    if input != want_in {
        return Err(ModelError::Shape {
            model: model.to_owned(),
            problem: format!(
                "input takes {input} values per row but metadata {in_what} says {want_in}"
            ),
        });
    }
    if output != want_out {
        return Err(ModelError::Shape {
            model: model.to_owned(),
            problem: format!(
                "output gives {output} values per row but metadata {out_what} says {want_out}"
            ),
        });
    }
    Ok(())
}

/// The graph with the metadata's input and output, typed and decluttered; its batch dimension
/// stays symbolic.
fn typed_graph(
    name: &str,
    proto: &pb::ModelProto,
    meta: &ModelMetadata,
) -> Result<TypedModel, ModelError> {
    let mut model = onnx()
        .model_for_proto_model(proto)
        .map_err(|error| ModelError::tract(name, "translate the graph", error))?;
    let input = model
        .find_outlet_label(&meta.input)
        .or_else(|| {
            model
                .input_outlets()
                .ok()
                .and_then(|outlets| outlets.first().copied())
        })
        .ok_or_else(|| ModelError::tract(name, "find the input", &meta.input))?;
    let output = model
        .find_outlet_label(&meta.output)
        .ok_or_else(|| ModelError::tract(name, "find the output", &meta.output))?;
    model
        .set_input_outlets(&[input])
        .and_then(|_| model.select_output_outlets(&[output]))
        .map_err(|error| ModelError::tract(name, "select the input and output", error))?;
    model
        .into_typed()
        .and_then(|typed| typed.into_decluttered())
        .map_err(|error| ModelError::tract(name, "optimize", error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_that_is_not_shipped_lists_the_shipped_ones() {
        let error = Model::load("traffic-forcast").unwrap_err().to_string();
        assert!(
            error.contains("traffic-forecast, traffic-states"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let error = Model::load("/nonexistent/mine.onnx")
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/mine.onnx"), "{error}");
    }

    #[test]
    fn a_device_is_refused_before_it_is_read() {
        let error = Model::load("/dev/zero").unwrap_err().to_string();
        assert_eq!(
            error,
            "model /dev/zero: is not a regular file (devices, pipes and directories are not models)"
        );
    }

    #[test]
    fn garbage_is_not_a_model() {
        let error = Model::from_bytes("junk.onnx", b"not a protobuf at all").unwrap_err();
        assert!(
            matches!(
                error,
                ModelError::Decode { .. } | ModelError::Metadata { .. }
            ),
            "{error}"
        );
    }

    #[test]
    fn any_batch_size_is_served_and_the_plans_kept_are_bounded() {
        let model = Model::load("traffic-forecast").unwrap();
        for rows in [1, 3, 17, 1, 2, 5, 9, 33, 65, 129, 3] {
            let out = model
                .run_rows(rows, vec![100.0; rows * model.input_width])
                .unwrap();
            assert_eq!(out.len(), rows * model.output_width);
            // A constant window forecasts close to that constant.
            assert!(out.iter().all(|v| (v - 100.0).abs() < 20.0), "{out:?}");
        }
        let made = model.plans.made.lock().unwrap();
        assert_eq!(made.len(), MAX_PLANS);
        // Nine sizes were used: the most recently used (3 rows: 4) is kept, and the least
        // recently used (17 rows: 32) was dropped when 3 rows needed a plan again.
        assert_eq!(made.last().map(|(size, _)| *size), Some(4));
        assert!(made.iter().all(|(size, _)| *size != 32));
    }
}
