//! Output: the Parquet dataset a run writes.
//!
//! [`tables`] holds the schemas and row builders, [`sink`] writes part files (their row groups
//! encoded in parallel by [`encode`], float list columns by [`floats`]), [`store`] is the
//! folder or bucket they live in, [`dataset`] the manifest and part markers that make a run
//! resumable, and [`provenance`] what produced it.

pub mod dataset;
pub mod encode;
pub mod floats;
pub mod provenance;
pub mod sink;
pub mod store;
pub mod tables;
