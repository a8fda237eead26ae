//! Comparing the representations of layers, within a run and across runs, from what the runs
//! stored (issue 25). So far: the streamed linear CKA estimators ([`cka`]) and the features of
//! a run's map layers read from its `stats` table ([`features`]).

pub mod cka;
pub mod features;
