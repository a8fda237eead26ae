//! Replays the fuzzing inputs kept in the repository through the entry points the fuzz
//! targets in `fuzz/` exercise, so that a fixed crash stays fixed without `cargo fuzz`:
//! every file under `fuzz/seeds/<target>/` (the small valid files the fuzzers start from) and
//! `fuzz/regressions/<target>/` (inputs that once made a target panic) goes through
//! `preprocess::decode_at_least` (as the `decode_image` target calls it),
//! `model::decode_model`, the WebDataset and Parquet shard readers (reading every sample,
//! and only some, as the report reads a shard again), and the readers of a run's tables (a table
//! written with a schema drawn from the bytes, `fuzz/harness/read_tables.rs`, shared with the
//! `read_tables` target). The only assertion is
//! that they return: no panic. The seeds of the shard readers must also give their rows.
//!
//! To keep a new crash: copy the artifact `scripts/fuzz.sh` reports into
//! `fuzz/regressions/<target>/`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use layerwise::input::preprocess::decode_at_least;
use std::collections::BTreeSet;

use layerwise::input::stream::Emitter;
use layerwise::input::{parquet, webdataset, Content, Sample};
use layerwise::model::decode_model;

#[path = "../../fuzz/harness/read_tables.rs"]
mod read_tables;

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

/// A reader of shard bytes: the samples it emits, all of them or only those at the positions
/// given (as the report reads a shard again).
type ShardReader = fn(&[u8], Option<&BTreeSet<u64>>) -> Vec<Sample>;

/// Every sample `read` emits into an emitter for `source`, or only those at `only`.
fn emitted(
    source: &str,
    only: Option<&BTreeSet<u64>>,
    read: impl FnOnce(&mut Emitter),
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let emitter = Emitter::new(source, 0, usize::MAX, |s| {
        samples.push(s);
        true
    });
    let mut emitter = match only {
        Some(only) => emitter.only(only.clone()),
        None => emitter,
    };
    read(&mut emitter);
    drop(emitter);
    samples
}

/// The shard readers, as the `read_tar` and `read_parquet` targets call them.
fn shard_readers() -> [(&'static str, ShardReader); 2] {
    fn tar(bytes: &[u8], only: Option<&BTreeSet<u64>>) -> Vec<Sample> {
        let reader = Box::new(std::io::Cursor::new(bytes.to_vec()));
        let fields = webdataset::Fields::default();
        emitted("t.tar", only, |emit| {
            webdataset::read_from(reader, &fields, emit)
        })
    }
    fn parquet_file(bytes: &[u8], only: Option<&BTreeSet<u64>>) -> Vec<Sample> {
        let bytes = bytes::Bytes::copy_from_slice(bytes);
        let fields = parquet::Fields::default();
        emitted("t.parquet", only, |emit| {
            parquet::read_from(bytes, &fields, emit)
        })
    }
    [
        ("webdataset::read_from", tar),
        ("parquet::read_from", parquet_file),
    ]
}

/// The positions the tests read alone.
fn some() -> BTreeSet<u64> {
    [0, 2, 5].into()
}

#[test]
fn the_shard_seeds_give_their_rows() {
    let statuses = |samples: Vec<Sample>| -> Vec<(String, bool)> {
        samples
            .into_iter()
            .map(|s| (s.path, matches!(s.content, Content::Bytes(_))))
            .collect()
    };
    let seed =
        |path: &str| std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    let [(_, tar), (_, parquet_file)] = shard_readers();
    assert_eq!(
        statuses(parquet_file(
            &seed("fuzz/seeds/read_parquet/two_rows.parquet"),
            None
        )),
        [("a.png".to_owned(), true), ("b.png".to_owned(), false)]
    );
    // A footer placing a column chunk at a negative offset: once a panic inside the parquet
    // crate, now the shard's one error row.
    let damaged = parquet_file(
        &seed("fuzz/regressions/read_parquet/crash-672150e3a19a7934be0f000cb250c3d20c68fa0a"),
        None,
    );
    assert_eq!(damaged.len(), 1);
    match &damaged[0].content {
        Content::Failed(reason) => assert!(
            reason.starts_with("not a valid Parquet file: row group 0 places column "),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let good = tar(&seed("fuzz/seeds/read_tar/good.tar"), None);
    let statuses_of_good = statuses(good.clone());
    assert_eq!(statuses_of_good.len(), 3);
    assert!(
        statuses_of_good.iter().all(|(_, ok)| *ok),
        "{statuses_of_good:?}"
    );
    // Read again for some positions only: those samples, as a whole read gives them.
    for (read, file) in [
        (tar as ShardReader, "fuzz/seeds/read_tar/good.tar"),
        (parquet_file, "fuzz/seeds/read_parquet/two_rows.parquet"),
    ] {
        let all = read(&seed(file), None);
        let want: Vec<&Sample> = all
            .iter()
            .filter(|s| some().contains(&s.image_id))
            .collect();
        let got = read(&seed(file), Some(&some()));
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{file}");
        assert!(!got.is_empty(), "{file}");
    }
}

#[test]
fn seeds_and_regressions_never_panic() {
    let seeds = inputs("seeds");
    assert!(
        seeds.len() >= 2,
        "expected seed files under fuzz/seeds/, found {seeds:?}"
    );
    let mut panicked = Vec::new();
    let tables = tempfile::tempdir().unwrap();
    let run = read_tables::run_folder(tables.path());
    for file in seeds.iter().chain(&inputs("regressions")) {
        let bytes = std::fs::read(file).unwrap();
        if catch_unwind(AssertUnwindSafe(|| read_tables::read_tables(&bytes, &run))).is_err() {
            panicked.push(format!("read_tables: {}", file.display()));
        }
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
        for (name, read) in shard_readers() {
            for only in [None, Some(&some())] {
                if catch_unwind(AssertUnwindSafe(|| read(&bytes, only))).is_err() {
                    panicked.push(format!("{name} (only: {only:?}): {}", file.display()));
                }
            }
        }
    }
    assert!(panicked.is_empty(), "panicked on:\n{}", panicked.join("\n"));
}
