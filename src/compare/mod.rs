//! Comparing the representations of layers, within a run and across runs, from what the runs
//! stored (issue 25). So far: the streamed linear CKA estimators ([`cka`]).

pub mod cka;
