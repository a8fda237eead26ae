//! Replays the fuzzing inputs kept in the repository through the two entry points the fuzz
//! targets in `fuzz/` exercise, so that a fixed crash stays fixed without `cargo fuzz`:
//! every file under `fuzz/seeds/<target>/` (the small valid files the fuzzers start from) and
//! `fuzz/regressions/<target>/` (inputs that once made a target panic) goes through both
//! `preprocess::decode_at_least` (as the `decode_image` target calls it) and
//! `model::decode_model`. The only assertion is that they return, `Ok` or `Err`: no panic.
//!
//! To keep a new crash: copy the artifact `scripts/fuzz.sh` reports into
//! `fuzz/regressions/<target>/`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use layerwise::input::preprocess::decode_at_least;
use layerwise::model::decode_model;

/// The files directly inside `fuzz/<kind>/<target>/` for every target, dotfiles excluded.
fn inputs(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut files = Vec::new();
    for target in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let target = target.unwrap().path();
        if !target.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&target).unwrap() {
            let file = file.unwrap().path();
            let hidden = file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if file.is_file() && !hidden {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn seeds_and_regressions_never_panic() {
    let seeds = inputs("seeds");
    assert!(
        seeds.len() >= 2,
        "expected seed files under fuzz/seeds/, found {seeds:?}"
    );
    let mut panicked = Vec::new();
    for file in seeds.iter().chain(&inputs("regressions")) {
        let bytes = std::fs::read(file).unwrap();
        let image = catch_unwind(AssertUnwindSafe(|| {
            let _ = decode_at_least(&bytes, 224, 4_000_000);
        }));
        if image.is_err() {
            panicked.push(format!("decode_at_least: {}", file.display()));
        }
        let model = catch_unwind(AssertUnwindSafe(|| {
            let _ = decode_model(&bytes);
        }));
        if model.is_err() {
            panicked.push(format!("decode_model: {}", file.display()));
        }
    }
    assert!(panicked.is_empty(), "panicked on:\n{}", panicked.join("\n"));
}
