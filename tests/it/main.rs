//! The integration tests, one binary (linked once), a module per capability; `common` holds
//! the helpers they share. Run one capability with `cargo test --test it MODULE::`.

mod common;

mod cli;
mod compare;
mod compat;
mod config_schema;
mod datasets;
mod docs;
mod fuzz_regressions;
mod init;
mod interop;
mod layering;
mod models;
mod pipeline;
mod plot;
mod reduce_graph;
mod report;
mod robustness;
mod s3;
mod shards;
mod slurm;
mod torch_exports;
mod vit;
mod wheel;
