//! Fuzz target: no panic may escape the readers of a run's tables (`report`, `plot`), whatever
//! schema a table was written with: each column of layerwise's in another integer, string,
//! float or list type, a wrong type, all nulls, or dropped (see `fuzz/harness/read_tables.rs`).

#![no_main]

use std::sync::OnceLock;

use layerwise::view::read::StoredRun;

use libfuzzer_sys::fuzz_target;

#[path = "../harness/read_tables.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    // The parquet crate's panics on damaged data are caught by the reader by design; only a
    // panic that escapes it is a crash (libfuzzer-sys aborts on any panic, even one caught).
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    static RUN: OnceLock<StoredRun> = OnceLock::new();
    let run = RUN.get_or_init(|| harness::run_folder(&tempfile::tempdir().unwrap().keep()));
    harness::read_tables(data, run);
});
