//! A run made by layerwise 0.1.0 (commit b1c18b1), checked in as it wrote it
//! (`tests/fixtures/run-0.1.0/`: its config, model, images and output folder): `status`,
//! `report` and `plot` read it, and it resumes with other execution settings. Its records hold
//! absolute paths, so the test lays it out again where it was made.

use std::path::{Path, PathBuf};

use crate::common::*;

/// Where the fixture was made, and is laid out again.
const MADE_AT: &str = "/tmp/layerwise-fixture-0.1.0";

fn lay_out() -> PathBuf {
    let dir = PathBuf::from(MADE_AT);
    copy_tree(&root().join("tests/fixtures/run-0.1.0"), &dir);
    dir
}

fn succeeds(args: &[&str], dir: &Path) -> String {
    succeeded(layerwise().args(args).current_dir(dir))
}

#[test]
fn a_run_of_0_1_0_is_read_by_status_report_and_plot_and_resumes() {
    let dir = lay_out();
    let status = succeeds(&["status", "out"], &dir);
    assert!(
        status.contains("3 of 3 parts committed (2 images each), 0 missing"),
        "{status}"
    );
    assert!(
        status.contains("images: 5 of 5 done, 4 ok, 1 error"),
        "{status}"
    );

    let run = layerwise::view::read::StoredRun::open(&dir.join("out")).unwrap();
    assert_eq!(run.facts.tool, "layerwise 0.1.0");
    assert!(run.facts.complete);
    assert_eq!(run.config.name, "fixture-0.1.0");
    let kinds: Vec<&str> = run.layers.iter().map(|l| l.kind.name()).collect();
    assert_eq!(kinds, ["maps", "vector"]);

    succeeds(&["report", "out", "--out", "report"], &dir);
    let index = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
    assert!(index.contains("fixture-0.1.0"));
    assert!(index.contains("broken.png"));
    assert!(dir.join("report/layer-0/channel-1.html").exists());
    for figure in [
        &[
            "plot",
            "top",
            "--run",
            "out",
            "--layer",
            "conv",
            "--channel",
            "1",
            "--k",
            "3",
        ][..],
        &[
            "plot", "channels", "--run", "out", "--layer", "conv", "--image", "0",
        ],
    ] {
        let logged = succeeds(figure, &dir);
        assert!(!logged.contains("WARN"), "{logged}");
    }

    // Part 1 lost (its marker and files), then resumed by this version with other execution
    // settings than 0.1.0 recorded in its manifest.
    let out = dir.join("out");
    std::fs::remove_file(out.join("_parts/part-00001.json")).unwrap();
    for table in ["images", "stats", "maps", "vectors", "top"] {
        std::fs::remove_file(out.join(table).join("part-00001.parquet")).unwrap();
    }
    std::fs::remove_file(out.join("run.json")).unwrap();
    let config = dir.join("pipeline.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "batch_size = 2\nthreads = 1\ndecode_threads = 1\nqueue_depth = 2",
        "batch_size = 1\nthreads = 2\ndecode_threads = 2\nqueue_depth = 1",
    );
    std::fs::write(&config, text).unwrap();
    succeeds(&["run", "pipeline.toml", "-q"], &dir);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["format"], 2);
    assert_eq!(record["counts"]["parts"], 3);
    assert_eq!(record["timings"]["images"], 2, "only part 1 was run again");
    let whole = dir.join("whole");
    single_run(&config, &whole);
    assert_same_tables_but_rounding(&out, &whole);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tables of `a` and `b` are equal but for the last bits of `stats`' `mean` and `std`
/// (within 1e-5, the rounding that execution settings may bring): this version sums a map's
/// values in one pass around another shift than 0.1.0 did, so the parts 0.1.0 wrote round
/// them differently than this version's.
fn assert_same_tables_but_rounding(a: &Path, b: &Path) {
    for table in layerwise::output::tables::Table::ALL.map(|t| t.name()) {
        let (x, y) = (read_table(a, table), read_table(b, table));
        assert_eq!(x.schema(), y.schema(), "{table}: schema");
        for field in x.schema().fields() {
            let name = field.name();
            if table == "stats" && (name == "mean" || name == "std") {
                assert_close(&f32s(&x, name), &f32s(&y, name), &format!("stats.{name}"));
            } else {
                assert_eq!(
                    x.column_by_name(name),
                    y.column_by_name(name),
                    "{table}.{name}"
                );
            }
        }
    }
}
