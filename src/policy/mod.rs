//! The `ScalingPolicy` contract: document types, defaults, validation and the label codec.

mod bounded;
mod cache;
pub mod compose;
pub mod diagnostic;
pub mod duration;
pub mod labels;
mod parse;
pub mod schedule;
pub mod schema;
pub mod state;
mod structure;
pub mod types;
pub mod validate;

pub use bounded::MAX_NODES;
pub use cache::{Decoded, PolicyCache};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use duration::HumanDuration;
pub use parse::{
    load_yaml, parse, parse_bytes, parse_documents, parse_documents_bytes, text_of,
    MAX_BLOCK_DEPTH, MAX_FLOW_DEPTH, MAX_INPUT_BYTES,
};
pub use schedule::{Window, WindowError, WindowState};
pub use schema::{crd_yaml, json_schema, json_schema_text};
pub use state::{
    ClaimedCount, Event, EventReason, EventType, FailedReads, ForecastAsk, Override, ScaleEvent,
    ScaleState, EVENTS_KEPT,
};
pub use types::*;
pub use validate::{
    check_max_replicas, is_server_name, is_valid_service_name, validate, MAX_METRICS, MAX_NOTIFY,
    MAX_OBSERVE, MAX_REPLICAS,
};
