//! A crafted ONNX model: a 1 KB forecaster whose optimization allocates 2 GiB, for the tests
//! that show the operator checks model files under a memory limit before loading them.

use prost::Message;
use swarmpilot::models::SHIPPED;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

/// Rows of the constant the crafted graph asks for: 2^23 rows of 60 floats, 2 GiB.
const HUGE_ROWS: i64 = 1 << 23;

/// A forecaster of 1 KB with the shipped one's metadata (horizon made 60) whose graph adds
/// row 0 of a `ConstantOfShape([2^23, 60], 1.0)` to its window: optimizing it folds the
/// constant, 2 GiB of floats.
pub fn crafted_model() -> Vec<u8> {
    let mut proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &forecaster()[..])
        .unwrap();
    for property in &mut proto.metadata_props {
        if property.key == "horizon" {
            property.value = "60".into();
        }
    }
    let shipped = proto.graph.take().unwrap();
    let mut output = shipped.output[0].clone();
    output.r#type = shipped.input[0].r#type.clone();
    let int64s = |name: &str, dims: Vec<i64>, values: Vec<i64>| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: values,
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str, attribute: Vec<pb::AttributeProto>| {
        pb::NodeProto {
            op_type: op.into(),
            name: output.into(),
            input: inputs.iter().map(|input| (*input).into()).collect(),
            output: vec![output.into()],
            attribute,
            ..Default::default()
        }
    };
    let ones = pb::AttributeProto {
        name: "value".into(),
        r#type: pb::attribute_proto::AttributeType::Tensor as i32,
        t: Some(pb::TensorProto {
            dims: vec![1],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: vec![1.0],
            ..Default::default()
        }),
        ..Default::default()
    };
    let axis = pb::AttributeProto {
        name: "axis".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 0,
        ..Default::default()
    };
    proto.graph = Some(pb::GraphProto {
        name: "crafted".into(),
        input: vec![shipped.input[0].clone()],
        output: vec![output],
        initializer: vec![
            int64s("huge_shape", vec![2], vec![HUGE_ROWS, 60]),
            int64s("zero", vec![], vec![0]),
        ],
        node: vec![
            node("ConstantOfShape", &["huge_shape"], "big", vec![ones]),
            node("Gather", &["big", "zero"], "row", vec![axis]),
            node("Add", &["window", "row"], "forecast", vec![]),
        ],
        ..Default::default()
    });
    proto.encode_to_vec()
}

/// The shipped forecaster's bytes.
pub fn forecaster() -> &'static [u8] {
    SHIPPED
        .iter()
        .find(|(name, _)| *name == "traffic-forecast")
        .unwrap()
        .1
}
