//! layerwise: extract the intermediate activations of a vision model across whole image
//! datasets, with ONNX Runtime, into Parquet.
//!
//! The data flows one way, one folder per concern:
//! [`config`] -> [`plan`] -> [`input`] (listing, decode and preprocess) -> [`model`] (the
//! session) -> [`reduce`] -> [`output`] (tables, sink, store), driven by [`pipeline`];
//! [`view`] reads a stored run back and draws it, [`compare`] measures how its layers (or two
//! runs' layers) relate, [`report`] writes its HTML atlas; [`doctor`] examines the node a run would
//! use (the runtime library, its providers, CPUs and GPUs); [`extract`] hands a layer's whole
//! tensors back in memory. The command line ([`cli`]) and the Python package (through [`api`])
//! are thin layers over them.

#![warn(missing_docs)]

pub mod api;
pub mod check;
pub mod cli;
pub mod compare;
pub mod config;
pub mod cpu;
pub mod digest;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod extract;
pub mod init;
pub mod input;
pub mod location;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod reduce;
pub mod report;
pub mod shard;
pub mod view;

pub use error::PlanError;
pub use pipeline::{run, RunOptions};
pub use plan::{Overrides, Plan};
