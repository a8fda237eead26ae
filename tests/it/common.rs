//! Shared support for the integration tests: test models, images, configs, and reading tables.
#![allow(dead_code)] // some helpers serve only ignored or manual tests

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Float32Type, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch, RecordBatchReader};
use arrow_schema::DataType;
use layerwise::model::runtime::{Runtime, SearchPath};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

/// The `layerwise` binary under test.
pub fn layerwise() -> Command {
    Command::new(env!("CARGO_BIN_EXE_layerwise"))
}

/// A command's standard output then standard error, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that has `onnx` and `duckdb`: `LAYERWISE_PYTHON`, else the project's `.venv`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LAYERWISE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python tools: run scripts/python-env.sh (or set LAYERWISE_PYTHON)"
    );
    venv
}

/// The folder of test models made by `tests/models/make_models.py`, built once per version of
/// the script and shared by all test binaries.
pub fn models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built_by("tests/models/make_models.py", "identity_nhwc.onnx"))
}

/// The demo's model and images, made by `demo/make_demo.py` (`models/`, `images/`), built once
/// per version of the script and shared by all test binaries.
pub fn demo() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built_by("demo/make_demo.py", "models/demo_vgg.onnx"))
}

/// The folder that `script OUT_DIR` fills, under `target/`, named by the hash of the script
/// and the Python modules beside it (which it may import); made unless `last` (a file the
/// script writes last) is already there.
pub fn built_by(script: &str, last: &str) -> PathBuf {
    let script = root().join(script);
    let mut modules: Vec<PathBuf> = std::fs::read_dir(script.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "py") && *path != script)
        .collect();
    modules.sort();
    let mut hash = Sha256::new();
    for path in std::iter::once(&script).chain(&modules) {
        hash.update(std::fs::read(path).unwrap());
    }
    let hash = hash.finalize();
    let tag: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    let stem = script.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = root().join(format!("target/{stem}-{tag}"));
    if !dir.join(last).exists() {
        let building = root().join(format!("target/{stem}-{tag}.{}", std::process::id()));
        let out = Command::new(python())
            .arg(&script)
            .arg(&building)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Another test binary may have finished first; either copy is the same.
        if std::fs::rename(&building, &dir).is_err() {
            std::fs::remove_dir_all(&building).unwrap();
        }
    }
    dir
}

/// A test model's path.
pub fn model(name: &str) -> PathBuf {
    models().join(name)
}

/// The ONNX Runtime provisioned by `scripts/fetch-onnxruntime.sh`.
pub fn runtime() -> &'static Runtime {
    layerwise::model::runtime::load(&SearchPath::standard(None))
        .expect("ONNX Runtime: run scripts/fetch-onnxruntime.sh")
}

/// A deterministic RGB image whose pixels depend on `seed`.
pub fn test_image(width: u32, height: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 37 + y * 91 + seed * 53) ^ (x * y + seed);
        image::Rgb([(v % 251) as u8, (v * 7 % 253) as u8, (v * 13 % 241) as u8])
    })
}

/// Writes images at `relative` paths under `root` (format from the extension).
pub fn write_images(root: &Path, files: &[(&str, u32, u32)]) {
    for (i, (relative, w, h)) in files.iter().enumerate() {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        test_image(*w, *h, i as u32).save(&path).unwrap();
    }
}

/// Writes a file that is an HTML page with a `.jpg` name.
pub fn write_html_as_jpg(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "<html><body>404 Not Found</body></html>").unwrap();
}

/// The `.parquet` files of a table, sorted.
pub fn part_files(out: &Path, table: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join(table))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// All rows of a table, in part order, as one batch.
pub fn read_table(out: &Path, table: &str) -> RecordBatch {
    let mut batches = Vec::new();
    let mut schema = None;
    for file in part_files(out, table) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        schema = Some(reader.schema());
        for batch in reader {
            batches.push(batch.unwrap());
        }
    }
    arrow_select::concat::concat_batches(&schema.unwrap(), &batches).unwrap()
}

/// The values of a `UInt64` column.
pub fn u64s(batch: &RecordBatch, column: &str) -> Vec<u64> {
    primitives::<UInt64Type>(batch, column)
}

/// The values of a `UInt32` column.
pub fn u32s(batch: &RecordBatch, column: &str) -> Vec<u32> {
    primitives::<UInt32Type>(batch, column)
}

/// The values of a `Float32` column.
pub fn f32s(batch: &RecordBatch, column: &str) -> Vec<f32> {
    primitives::<Float32Type>(batch, column)
}

/// The values of a string column (`None` for nulls).
pub fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let c = batch.column_by_name(column).unwrap().as_string::<i32>();
    (0..c.len())
        .map(|i| c.is_valid(i).then(|| c.value(i).to_owned()))
        .collect()
}

/// The maps of a `values` column of `Float32` lists.
pub fn lists(batch: &RecordBatch) -> Vec<Vec<f32>> {
    let c = batch.column_by_name("values").unwrap().as_list::<i32>();
    (0..c.len())
        .map(|i| c.value(i).as_primitive::<Float32Type>().values().to_vec())
        .collect()
}

/// The `values` of a `positions` table (`fixed_size_list` of float16 or float32), as f32.
pub fn position_vectors(batch: &RecordBatch) -> Vec<Vec<f32>> {
    let c = batch.column_by_name("values").unwrap().as_fixed_size_list();
    (0..c.len())
        .map(|i| {
            let v = c.value(i);
            match v.data_type() {
                DataType::Float16 => v
                    .as_primitive::<arrow_array::types::Float16Type>()
                    .values()
                    .iter()
                    .map(|h| h.to_f32())
                    .collect(),
                _ => v.as_primitive::<Float32Type>().values().to_vec(),
            }
        })
        .collect()
}

/// Writes a config file into `dir` and returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The demo config (`pipelines/demo.toml`) over the demo built under `target/`, writing to
/// `dir/out`.
pub fn demo_config(dir: &Path) -> PathBuf {
    let demo = demo();
    let mut text = std::fs::read_to_string(root().join("pipelines/demo.toml")).unwrap();
    for (from, to) in [
        ("../demo/images", demo.join("images")),
        (
            "../demo/models/demo_vgg.onnx",
            demo.join("models/demo_vgg.onnx"),
        ),
        ("../out/demo", dir.join("out")),
    ] {
        let quoted = format!("\"{from}\"");
        assert!(
            text.contains(&quoted),
            "pipelines/demo.toml has no {quoted}"
        );
        text = text.replace(&quoted, &format!("{:?}", to.to_str().unwrap()));
    }
    write_config(dir, &text)
}

/// The values of a primitive column.
pub fn primitives<T: ArrowPrimitiveType>(batch: &RecordBatch, column: &str) -> Vec<T::Native> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column {column}"));
    array.as_primitive::<T>().values().to_vec()
}

/// Writes a config over `dir/images` and `tiny_nchw.onnx`, with these `[[layers]]`, writing
/// to `dir/out`; returns its path.
pub fn tiny_config_with_layers(dir: &Path, name: &str, layers: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n{layers}\n[output]\ndir = \"out\"\n",
        model("tiny_nchw.onnx").display()
    );
    write_config(dir, &text)
}

/// Runs a config with no overrides and no progress output.
pub fn run_quietly(config: &Path) -> anyhow::Result<layerwise::output::provenance::RunRecord> {
    let options = layerwise::RunOptions {
        quiet: true,
        ..Default::default()
    };
    layerwise::run(config, &layerwise::Overrides::default(), options)
}

/// Asserts two float slices agree to 1e-5 (relative, or absolute near 0).
pub fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{what}[{i}]: {g} != {w}"
        );
    }
}

/// Runs `config` in one process into `out` (a reference for sharded or resumed runs).
pub fn single_run(config: &Path, out: &Path) {
    let run = layerwise()
        .arg("run")
        .arg(config)
        .arg("-q")
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Waits until a run into `out` has committed its first part, waits `then` more, and kills
/// it with SIGKILL; panics if it never commits one or ends by itself first.
pub fn kill_after_first_part(child: &mut std::process::Child, out: &Path, then: Duration) {
    let first = out.join("_parts/part-00000.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !first.exists() {
        assert!(
            Instant::now() < deadline,
            "the first part was never committed"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(then);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !out.join("run.json").exists(),
        "the run was killed before it finished"
    );
}

/// Every table of two runs is equal, row for row.
pub fn assert_same_tables(a: &Path, b: &Path) {
    for table in layerwise::output::tables::Table::ALL.map(|t| t.name()) {
        let (x, y) = (read_table(a, table), read_table(b, table));
        assert_eq!(x.num_rows(), y.num_rows(), "{table}: rows");
        assert_eq!(x, y, "{table}: values");
    }
}

/// Checks `layerwise doctor --json`'s report of an executable installed in the Python
/// environment `env`: the runtime found there, from its `onnxruntime*/capi/`, the CPU provider
/// listed and a session run on it. Returns the library's path.
pub fn assert_runtime_of_environment(report: &serde_json::Value, env: &Path) -> String {
    let runtime = &report["onnxruntime"];
    assert_eq!(
        runtime["found_via"],
        layerwise::model::runtime::INSTALLED_SOURCE,
        "{report}"
    );
    let library = runtime["library"].as_str().unwrap().to_owned();
    assert!(
        library.starts_with(env.to_str().unwrap()) && library.contains("/onnxruntime/capi/"),
        "{library}"
    );
    let providers = runtime["providers"].as_array().unwrap();
    assert!(
        providers.contains(&"CPUExecutionProvider".into()),
        "{runtime}"
    );
    assert_eq!(runtime["checks"][0]["provider"], "cpu", "{runtime}");
    assert_eq!(runtime["checks"][0]["ok"], true, "{runtime}");
    assert_eq!(report["ready"], true, "{report}");
    library
}

/// The examples of a channel page: (image_id, score), in page order.
pub fn report_examples(html: &str) -> Vec<(u64, f64)> {
    html.split("<figure class=\"example\" data-image=\"")
        .skip(1)
        .map(|f| {
            let (id, rest) = f.split_once('"').unwrap();
            let score = rest.strip_prefix(" data-score=\"").unwrap();
            let score: f32 = score[..score.find('"').unwrap()].parse().unwrap();
            (id.parse().unwrap(), f64::from(score))
        })
        .collect()
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Copies the tree `from` into `to` (made if missing; what is there is replaced).
pub fn copy_tree(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let into = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &into);
        } else {
            std::fs::copy(&path, &into).unwrap();
        }
    }
}

/// Runs `command`, asserts that it succeeded (showing the command and its output when not), and
/// returns its standard output then standard error, as text.
pub fn succeeded(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", text(&out));
    text(&out)
}

/// All rows of one Parquet file.
pub fn read_parquet(path: &Path) -> RecordBatch {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// Column names, types and nullability, named as in `schemas/*.json`.
pub fn schema_of(batch: &RecordBatch) -> Vec<(String, String, bool)> {
    fn type_name(t: &DataType) -> String {
        match t {
            DataType::UInt64 => "uint64".into(),
            DataType::UInt32 => "uint32".into(),
            DataType::Float32 => "float32".into(),
            DataType::Float64 => "float64".into(),
            DataType::Float16 => "float16".into(),
            DataType::Utf8 => "string".into(),
            DataType::List(item) if !item.is_nullable() => {
                format!("list<{}>", type_name(item.data_type()))
            }
            // Its size is the layers' channels, particular to a run.
            DataType::FixedSizeList(item, _) if !item.is_nullable() => {
                format!("fixed_size_list<{}>[D]", type_name(item.data_type()))
            }
            other => format!("unexpected {other}"),
        }
    }
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), type_name(f.data_type()), f.is_nullable()))
        .collect()
}

/// The checked-in contract of a table: `schemas/<table>.json`.
pub fn contract(table: &str) -> Vec<(String, String, bool)> {
    let text = std::fs::read_to_string(root().join(format!("schemas/{table}.json"))).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap().to_owned();
            (
                field("name"),
                field("type"),
                c["nullable"].as_bool().unwrap(),
            )
        })
        .collect()
}
