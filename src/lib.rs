//! layerwise: extract the intermediate activations of a vision model across whole image
//! datasets, with ONNX Runtime, into Parquet.
//!
//! The data flows one way, one folder per concern:
//! [`config`] -> [`plan`] -> [`input`] (listing, decode and preprocess) -> [`model`] (the
//! session) -> [`reduce`] -> [`output`] (tables, sink, store), driven by [`pipeline`];
//! [`view`] reads a stored run back and draws it; [`doctor`] examines the node a run would
//! use (the runtime library, its providers, CPUs and GPUs). The command line in `main.rs` is a thin
//! layer over [`pipeline::run`].

#![warn(missing_docs)]

pub mod check;
pub mod config;
pub mod cpu;
pub mod digest;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod init;
pub mod input;
pub mod location;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod reduce;
pub mod shard;
pub mod view;

pub use error::PlanError;
pub use pipeline::{run, RunOptions};
pub use plan::{Overrides, Plan};
