//! layerwise: extract the intermediate activations of a vision model across whole image
//! datasets, with ONNX Runtime, into Parquet.
//!
//! The data flows one way, one module per stage:
//! [`config`] -> [`plan`] -> [`listing`] -> [`preprocess`] -> [`session`] -> [`reduce`]
//! -> [`tables`] / [`sink`], driven by [`pipeline`]. The command line in `main.rs` is a thin
//! layer over [`pipeline::run`].

#![warn(missing_docs)]

pub mod check;
pub mod config;
pub mod dataset;
pub mod error;
pub mod inspect;
pub mod listing;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod plot;
pub mod preprocess;
pub mod progress;
pub mod provenance;
pub mod read;
pub mod reduce;
pub mod render;
pub mod runtime;
pub mod select;
pub mod session;
pub mod shard;
pub mod sink;
pub mod store;
pub mod tables;
pub mod top;

pub use error::PlanError;
pub use pipeline::{run, RunOptions};
pub use plan::{Overrides, Plan};
