//! The `ScalingPolicy` contract: document types, defaults, validation and the label codec.

pub mod duration;
pub mod state;
pub mod types;

pub use duration::HumanDuration;
pub use state::{Override, ScaleEvent, ScaleState};
pub use types::*;
