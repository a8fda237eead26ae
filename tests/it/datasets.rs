//! Datasets as they are stored at scale, written by the real writers
//! (`tests/datasets/make_datasets.py`): WebDataset shards from the `webdataset` package and
//! from img2dataset, img2dataset's Parquet, and a Hugging Face `datasets` Parquet file, each
//! holding the same images as a folder. Each run's stats and maps must equal the folder
//! run's, value for value; dirty shards must give exactly one row per sample, with its reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use std::sync::Arc;

use crate::common::*;
use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema};

/// The folder and shards made by `make_datasets.py`, built once per version of the script.
fn datasets() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built_by("tests/datasets/make_datasets.py", "dirty/notatar.tar"))
}

/// Writes a config over `tiny_nchw.onnx` with this `[input]` (paths into the datasets
/// folder) into `dir`, writing to `dir/out`.
fn config(dir: &Path, input: &str) -> PathBuf {
    let text = format!(
        "name = \"datasets\"\n[input]\n{input}\n[model]\npath = \"{}\"\n\
         [[layers]]\ntensor = \"conv1\"\nkeep = [0, 2]\n[[layers]]\ntensor = \"logits\"\n\
         [run]\nbatch_size = 5\n[output]\ndir = \"out\"\n",
        model("tiny_nchw.onnx").display()
    );
    let text = text.replace("DATA", &datasets().display().to_string());
    write_config(dir, &text)
}

/// Runs a config into `dir/out` and returns that folder.
fn run(dir: &Path, input: &str) -> PathBuf {
    let config = config(dir, input);
    let out = layerwise()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    dir.join("out")
}

/// The folder run, the reference for every shard run.
fn folder_run() -> &'static Path {
    static OUT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, out) = OUT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), "root = \"DATA/folder\"");
        (dir, out)
    });
    out
}

/// The `images` table as (image_id, path, source, key, label, status, error) rows.
type ImageRow = (
    u64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

fn image_rows(out: &Path) -> Vec<ImageRow> {
    let images = read_table(out, "images");
    let ids = u64s(&images, "image_id");
    let column = |name| strings(&images, name);
    let (path, source, key, label, status, error) = (
        column("path"),
        column("source"),
        column("key"),
        column("label"),
        column("status"),
        column("error"),
    );
    (0..ids.len())
        .map(|i| {
            (
                ids[i],
                path[i].clone().unwrap(),
                source[i].clone(),
                key[i].clone(),
                label[i].clone(),
                status[i].clone().unwrap(),
                error[i].clone(),
            )
        })
        .collect()
}

/// `table` of a run with each row's image_id replaced by its image's name (as `name_of`
/// gives it from the images row), rows in name order (stable within an image).
fn by_name(out: &Path, table: &str, name_of: impl Fn(&ImageRow) -> String) -> RecordBatch {
    let names: HashMap<u64, String> = image_rows(out)
        .iter()
        .filter(|r| r.5 == "ok")
        .map(|r| (r.0, name_of(r)))
        .collect();
    let batch = read_table(out, table);
    let ids = u64s(&batch, "image_id");
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| &names[&ids[i as usize]]);
    let sorted: Vec<&str> = order
        .iter()
        .map(|&i| names[&ids[i as usize]].as_str())
        .collect();
    let rows = arrow_select::take::take_record_batch(&batch, &UInt32Array::from(order)).unwrap();
    let mut fields = vec![Field::new("name", DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(sorted))];
    for (field, column) in rows.schema().fields().iter().zip(rows.columns()).skip(1) {
        fields.push(field.as_ref().clone());
        columns.push(column.clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// The file stem of a path or member name: `cat/cat_001.png` -> `cat_001`.
fn stem(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap();
    base.split('.').next().unwrap().to_owned()
}

/// Every stats, maps and vectors value of `out` equals the folder run's, image by image.
fn assert_same_as_folder(out: &Path, name_of: impl Fn(&ImageRow) -> String + Copy) {
    for table in ["stats", "maps", "vectors"] {
        let want = by_name(folder_run(), table, |r| stem(&r.1));
        let got = by_name(out, table, name_of);
        assert_eq!(got.num_rows(), want.num_rows(), "{table}: rows");
        assert_eq!(got, want, "{table}: values");
    }
}

#[test]
fn webdataset_shards_equal_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "webdataset = \"DATA/wds/shard-{000000..000003}.tar\"\nlabel_field = \"json:label\"",
    );
    assert_same_as_folder(&out, |r| r.3.clone().unwrap());
    let rows = image_rows(&out);
    assert_eq!(rows.len(), 12);
    let data = datasets().display().to_string();
    for (i, row) in rows.iter().enumerate() {
        let (part, index) = (i / 3, i % 3);
        let label = if i < 6 { "cat" } else { "dog" };
        let name = format!("{label}_{:03}", i % 6);
        let extension = if i % 2 == 0 { "jpg" } else { "png" };
        assert_eq!(
            row,
            &(
                ((part as u64) << 32) | index as u64,
                format!("{name}.{extension}"),
                Some(format!("{data}/wds/shard-{part:06}.tar")),
                Some(name),
                Some(label.to_owned()),
                "ok".to_owned(),
                None,
            )
        );
    }
    // The same shards with the label from the .txt member, and listed by a glob.
    let dir = tempfile::tempdir().unwrap();
    let txt = run(
        dir.path(),
        "webdataset = [\"DATA/wds/shard-00000[0-1].tar\", \"DATA/wds/shard-00000[23].tar\"]\nlabel_field = \"txt\"",
    );
    assert_eq!(image_rows(&txt), rows);
}

#[test]
fn img2dataset_webdataset_and_parquet_equal_the_folder() {
    // img2dataset names each sample by the position of its URL in the list.
    let urls = std::fs::read_to_string(datasets().join("i2d_urls.txt")).unwrap();
    let urls: Vec<String> = urls.lines().map(String::from).collect();
    let name_of = |r: &ImageRow| stem(&urls[r.3.as_ref().unwrap().parse::<usize>().unwrap()]);

    let dir = tempfile::tempdir().unwrap();
    let tar = run(
        dir.path(),
        "webdataset = \"DATA/i2d_wds/*.tar\"\nlabel_field = \"json:status\"",
    );
    assert_same_as_folder(&tar, name_of);
    let rows = image_rows(&tar);
    assert_eq!(rows.len(), 12, "img2dataset's tar holds the successes only");
    assert!(rows.iter().all(|r| r.4.as_deref() == Some("success")));

    let dir = tempfile::tempdir().unwrap();
    let parquet = run(
        dir.path(),
        "parquet = \"DATA/i2d_parquet/*.parquet\"\nkey_field = \"key\"",
    );
    assert_same_as_folder(&parquet, name_of);
    let rows = image_rows(&parquet);
    assert_eq!(
        rows.len(),
        13,
        "img2dataset's Parquet keeps the failed download as a row"
    );
    let failed: Vec<&ImageRow> = rows.iter().filter(|r| r.5 == "error").collect();
    assert_eq!(failed.len(), 1);
    let (_, path, source, key, _, _, error) = failed[0];
    assert_eq!(
        (path.as_str(), key.as_deref()),
        ("000000001", Some("000000001"))
    );
    assert!(source
        .as_deref()
        .unwrap()
        .ends_with("i2d_parquet/00000.parquet"));
    let error = error.as_deref().unwrap();
    assert!(
        error.starts_with("no image bytes (the row's error_message: <urlopen error [Errno 2] No such file or directory:")
            && error.contains("cat/missing.jpg"),
        "{error}"
    );
    let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        ids,
        (0..13).collect::<Vec<u64>>(),
        "part 0: the row numbers"
    );
}

#[test]
fn huggingface_parquet_equals_the_folder_with_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "parquet = \"DATA/hf/train.parquet\"\nlabel_field = \"label\"",
    );
    assert_same_as_folder(&out, |r| stem(&r.1));
    let rows = image_rows(&out);
    let folder = image_rows(folder_run());
    assert_eq!(rows.len(), 12);
    for (i, (row, reference)) in rows.iter().zip(&folder).enumerate() {
        // The Hugging Face path is the file's name; the key is the row number.
        assert_eq!(row.1, reference.1.rsplit('/').next().unwrap());
        assert_eq!(row.3.as_deref(), Some(i.to_string().as_str()));
        assert_eq!(row.4, reference.4, "the ClassLabel's name");
    }
}

#[test]
fn dirty_shards_give_one_row_per_sample_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "webdataset = \"DATA/dirty/{good,truncated,mixed,notatar,missing}.tar\"\nlabel_field = \"txt\"",
    );
    let data = datasets().display().to_string();
    let shard = |name: &str| Some(format!("{data}/dirty/{name}.tar"));
    let ok = |id: u64, path: &str, source: &str, label: Option<&str>| -> ImageRow {
        (
            id,
            path.to_owned(),
            shard(source),
            Some(stem(path)),
            label.map(String::from),
            "ok".into(),
            None,
        )
    };
    let failed = |id: u64,
                  path: &str,
                  source: &str,
                  key: Option<&str>,
                  label: Option<&str>,
                  why: &str|
     -> ImageRow {
        (
            id,
            path.to_owned(),
            shard(source),
            key.map(String::from),
            label.map(String::from),
            "error".into(),
            Some(why.to_owned()),
        )
    };
    // Sorted: good, missing, mixed, notatar, truncated.
    let (p1, p2, p3, p4) = (1u64 << 32, 2u64 << 32, 3u64 << 32, 4u64 << 32);
    let expected = vec![
        ok(0, "g_cat_000.jpg", "good", Some("cat")),
        ok(1, "g_cat_002.jpg", "good", Some("cat")),
        ok(2, "g_cat_004.jpg", "good", Some("cat")),
        failed(
            p1,
            &format!("{data}/dirty/missing.tar"),
            "missing",
            None,
            None,
            "shard not found (no such file)",
        ),
        failed(
            p2,
            "m_text.jpg",
            "mixed",
            Some("m_text"),
            None,
            "not an image: unknown format",
        ),
        failed(
            p2 + 1,
            "m_noimage",
            "mixed",
            Some("m_noimage"),
            Some("cat"),
            "no image member: the sample has .txt, .json, none of .jpg, .jpeg, .png, .webp; set \
             input.image_field to the extension that holds its image",
        ),
        (
            p2 + 2,
            "../escape.jpg".into(),
            shard("mixed"),
            Some("../escape".into()),
            None,
            "ok".into(),
            None,
        ),
        ok(p2 + 3, "m_good.jpg", "mixed", None),
        failed(
            p3,
            &format!("{data}/dirty/notatar.tar"),
            "notatar",
            None,
            None,
            "not a tar file: its first block is no tar header (is it another kind of file, or \
             compressed?)",
        ),
        ok(p4, "t_cat_000.jpg", "truncated", Some("cat")),
        ok(p4 + 1, "t_cat_002.jpg", "truncated", Some("cat")),
        ok(p4 + 2, "t_cat_004.jpg", "truncated", Some("cat")),
        failed(
            p4 + 3,
            "t_dog_000.jpg",
            "truncated",
            Some("t_dog_000"),
            None,
            "the shard ends early (truncated tar: its member t_dog_000.jpg is cut short (",
        ),
    ];
    let mut got = image_rows(&out);
    // The cut member's byte counts depend on the JPEG's size: compare the reason's start.
    let cut = got.last_mut().unwrap();
    let reason = cut.6.take().unwrap();
    assert!(
        reason.ends_with(" bytes)); was the copy interrupted? Samples before it are kept"),
        "{reason}"
    );
    cut.6 = Some(reason[..expected[12].6.as_ref().unwrap().len()].to_owned());
    assert_eq!(got, expected);
    // Nothing was extracted anywhere: the member named ../escape.jpg is only a name.
    assert!(!datasets().join("dirty/../escape.jpg").exists());
    assert!(!dir.path().join("../escape.jpg").exists());
    let stats = read_table(&out, "stats");
    assert_eq!(stats.num_rows(), 8 * 4, "8 images ok, 4 channels each");
}

#[test]
fn two_concurrent_shard_processes_equal_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "webdataset = \"DATA/wds/shard-{000000..000003}.tar\"\nlabel_field = \"txt\"",
    );
    let processes: Vec<_> = (0..2)
        .map(|i| {
            layerwise()
                .arg("run")
                .arg(&config)
                .args(["-q", "--shard", &format!("{i}/2")])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in processes {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let markers: Vec<serde_json::Value> = (0..4)
        .map(|p| {
            let path = dir.path().join(format!("out/_parts/part-{p:05}.json"));
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        })
        .collect();
    for (p, m) in markers.iter().enumerate() {
        assert_eq!(m["shard"], format!("{}/2", p % 2), "part {p}");
        assert_eq!(m["first_image"], (p as u64) << 32);
        assert_eq!(m["end_image"], ((p as u64) << 32) + 3);
    }
    let status = layerwise()
        .arg("status")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let report = text(&status);
    assert_eq!(status.status.code(), Some(0), "{report}");
    assert!(
        report.contains("4 of 4 parts committed (one shard each), 0 missing"),
        "{report}"
    );
    assert!(
        report.contains("images: 12 done, 12 ok, 0 error"),
        "{report}"
    );
    let whole = dir.path().join("whole");
    single_run(&config, &whole);
    assert_same_tables(&dir.path().join("out"), &whole);
}

/// `layerwise run` of a config with this `[input]`: its exit code and stderr, the config's
/// path as `CONFIG`.
fn refused(input: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), input);
    let out = layerwise()
        .arg("run")
        .arg(&config)
        .arg("-q")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code(),
        stderr.replace(&config.display().to_string(), "CONFIG"),
    )
}

#[test]
fn shard_mistakes_stop_the_run_before_any_image_with_the_pattern_named() {
    let cases = [
        (
            "webdataset = \"DATA/wds/*.tgz\"",
            "error: config CONFIG: `input.webdataset` `DATA/wds/*.tgz` matches no file; check the path",
        ),
        (
            "webdataset = [\"DATA/wds/shard-*.tar\", \"DATA/wds/shard-000001.tar\"]",
            "error: config CONFIG: `input.webdataset` names the shard `DATA/wds/shard-000001.tar` twice (by `DATA/wds/shard-*.tar` and `DATA/wds/shard-000001.tar`); each shard is one part and must be listed once",
        ),
        (
            "parquet = \"DATA/hf/{0..2\"",
            "error: config CONFIG: `input.parquet` `DATA/hf/{0..2` has a malformed brace: a `{` without its `}`",
        ),
        (
            "root = \"DATA/folder\"\nwebdataset = \"DATA/wds/*.tar\"",
            "error: config CONFIG: `input` must set exactly one of root (a folder to walk), list (a file naming the images; root may be given too, as the folder its paths are relative to), webdataset (tar shards) or parquet (Parquet files with the image bytes); it sets root and webdataset",
        ),
        (
            "webdataset = \"DATA/wds/*.tar\"\nkey_field = \"key\"",
            "error: config CONFIG: `input.key_field` applies to parquet inputs only",
        ),
        (
            "root = \"DATA/folder\"\nlabel_field = \"txt\"",
            "error: config CONFIG: `input.label_field` applies to webdataset and parquet inputs; a folder or list uses `label`",
        ),
        (
            "webdataset = \"DATA/wds/*.tar\"\nlabel_field = \"json:\"",
            "error: config CONFIG: `input.label_field` is `json:` without a field; write e.g. \"json:label\"",
        ),
    ];
    let data = datasets().display().to_string();
    for (input, message) in cases {
        let (code, stderr) = refused(input);
        let message = message.replace("DATA", &data);
        assert_eq!(code, Some(2), "{input}: {stderr}");
        assert!(
            stderr.contains(&message),
            "{input}:\n{stderr}\nwanted:\n{message}"
        );
    }
}

#[test]
fn parquet_mistakes_are_rows_of_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "parquet = [\"DATA/hf/train.parquet\", \"DATA/i2d_urls.txt\"]\nimage_field = \"name\"",
    );
    let rows = image_rows(&out);
    let data = datasets().display().to_string();
    let reasons: Vec<(u64, &str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.0, r.1.as_str(), r.6.as_deref()))
        .collect();
    let hf = format!("{data}/hf/train.parquet");
    let urls = format!("{data}/i2d_urls.txt");
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, 0);
    assert_eq!(reasons[0].1, hf);
    assert_eq!(
        reasons[0].2,
        Some("column `name` (input.image_field) holds Utf8, not image bytes (binary, or a struct with a binary `bytes` field)")
    );
    assert_eq!(reasons[1].0, 1 << 32);
    assert_eq!(reasons[1].1, urls);
    assert!(
        reasons[1].2.unwrap().starts_with("not a Parquet file ("),
        "{:?}",
        reasons[1]
    );
}

#[test]
fn a_listing_written_once_is_read_by_every_task() {
    let dir = tempfile::tempdir().unwrap();
    let walked = config(dir.path(), "root = \"DATA/folder\"");
    let list = dir.path().join("files.parquet");
    let out = layerwise()
        .args(["list"])
        .arg(&walked)
        .arg("--out")
        .arg(&list)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).trim(),
        format!("wrote 12 paths to {}", list.display())
    );
    let listed_dir = tempfile::tempdir().unwrap();
    let listed = run(
        listed_dir.path(),
        &format!("root = \"DATA/folder\"\nlist = \"{}\"", list.display()),
    );
    assert_eq!(image_rows(&listed), image_rows(folder_run()));
    assert_same_as_folder(&listed, |r| stem(&r.1));
    let shards = config(dir.path(), "webdataset = \"DATA/wds/*.tar\"");
    let out = layerwise()
        .arg("list")
        .arg(&shards)
        .arg("--out")
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("`input` names shards (webdataset or parquet), which need no listing"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_estimates_a_shard_run_from_its_first_shard() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "webdataset = \"DATA/wds/*.tar\"");
    let out = layerwise().arg("check").arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(
            "about 12 images (4 shards, assumed alike: the first holds 3 samples), batches of 5; \
             estimated output, measured on 10 sample image(s)"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn shard_readers_are_counted_in_the_cpu_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "webdataset = \"DATA/wds/*.tar\"");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let cpu = &run["timings"]["cpu"];
    assert!(cpu["read_ms"].as_f64().unwrap() > 0.0, "{cpu}");
    // The workers, as many encoders, four writers, four readers and the main thread.
    let workers = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(cpu["threads"].as_u64(), Some(2 * workers + 9), "{cpu}");
}

/// Writes the report of the run `out` into `dest` with every image an example (`--top 12`),
/// from a folder other than the config's; returns what it logged.
fn report_of(out: &Path, dest: &Path) -> String {
    let output = layerwise()
        .arg("report")
        .arg(out)
        .args(["--top", "12", "--out"])
        .arg(dest)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stderr).unwrap()
}

/// `layerwise plot top` of channel 0 of `conv1` of the run `out`, into the run's folder;
/// returns what it logged.
fn plot_top(out: &Path) -> String {
    let output = layerwise()
        .args([
            "plot",
            "top",
            "--layer",
            "conv1",
            "--channel",
            "0",
            "--k",
            "4",
            "--run",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stderr).unwrap()
}

/// The SHA-256 of each example picture of `channel` of the first layer (`conv1`) in the report
/// at `report`, by the name of its image (as `name_of` gives it from the run's images row).
fn example_pictures(
    report: &Path,
    out: &Path,
    channel: u32,
    name_of: impl Fn(&ImageRow) -> String,
) -> std::collections::BTreeMap<String, String> {
    let layer = report.join("layer-0");
    let html = std::fs::read_to_string(layer.join(format!("channel-{channel}.html"))).unwrap();
    let names: HashMap<u64, String> = image_rows(out).iter().map(|r| (r.0, name_of(r))).collect();
    let examples = report_examples(&html);
    assert_eq!(examples.len(), 12, "channel {channel}: every image");
    examples
        .iter()
        .enumerate()
        .map(|(rank, (id, _))| {
            let picture = layer.join(format!("c{channel}-{rank}.jpg"));
            (names[id].clone(), sha256(&std::fs::read(&picture).unwrap()))
        })
        .collect()
}

#[test]
fn reports_of_shard_runs_draw_each_example_over_its_photo_as_the_folder_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("folder-report");
    report_of(folder_run(), &reference);
    // Shards named relative to the config's folder, reported from another folder.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for i in 0..4 {
        let name = format!("wds/shard-{i:06}.tar");
        std::fs::create_dir_all(data.join("wds")).unwrap();
        std::fs::copy(datasets().join(&name), data.join(&name)).unwrap();
    }
    let wds = run(
        dir.path(),
        "webdataset = \"data/wds/shard-{000000..000003}.tar\"\nlabel_field = \"txt\"",
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wds.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["config_folder"], dir.path().display().to_string());
    let wds_report = dir.path().join("wds-report");
    let logged = report_of(&wds, &wds_report);
    assert!(!logged.contains("drawing its map alone"), "{logged}");
    let hf_dir = tempfile::tempdir().unwrap();
    let hf = run(hf_dir.path(), "parquet = \"DATA/hf/train.parquet\"");
    let hf_report = hf_dir.path().join("hf-report");
    report_of(&hf, &hf_report);
    for channel in [0, 2] {
        let want = example_pictures(&reference, folder_run(), channel, |r| stem(&r.1));
        let got = example_pictures(&wds_report, &wds, channel, |r| r.3.clone().unwrap());
        assert_eq!(
            got, want,
            "webdataset, channel {channel}: the same pictures"
        );
        let got = example_pictures(&hf_report, &hf, channel, |r| stem(&r.1));
        assert_eq!(got, want, "parquet, channel {channel}: the same pictures");
    }
    assert!(!plot_top(&wds).contains("drawing its map alone"));
    let missing = layerwise()
        .args([
            "plot", "channels", "--layer", "conv1", "--image", "5", "--run",
        ])
        .arg(&wds)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains(&format!(
            "the run has no image Id(5); give an image_id (from 0 to {}, as (shard << 32) | \
             position in the shard) or a path as the images table records it",
            (3u64 << 32) | 2
        )),
        "{}",
        text(&missing)
    );
    // With its shards gone, the report still comes, each example its map alone, and says why.
    std::fs::remove_dir_all(&data).unwrap();
    let alone = dir.path().join("alone-report");
    let logged = report_of(&wds, &alone);
    let gone =
        "shard data/wds/shard-000000.tar: shard not found (no such file); drawing its map alone";
    assert!(logged.contains(&format!("cat_000.jpg: {gone}")), "{logged}");
    let logged = plot_top(&wds);
    assert!(logged.contains(gone), "{logged}");
    let maps_alone = example_pictures(&alone, &wds, 0, |r| r.3.clone().unwrap());
    let photos = example_pictures(&wds_report, &wds, 0, |r| r.3.clone().unwrap());
    assert_eq!(maps_alone.len(), 12);
    for (name, picture) in &maps_alone {
        assert_ne!(picture, &photos[name], "{name}: drawn without its photo");
    }
}

#[test]
fn huggingface_images_stored_by_path_are_read_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    succeeded(
        std::process::Command::new(python())
            .arg(root().join("tests/datasets/make_datasets.py"))
            .arg("--hf-paths")
            .arg(datasets().join("folder"))
            .arg(dir.path()),
    );
    // From another working folder: relative paths resolve from the Parquet file's folder.
    let input = format!(
        "parquet = \"{}/hf_paths/train.parquet\"\nlabel_field = \"label\"",
        dir.path().display()
    );
    let config = config(dir.path(), &input);
    succeeded(
        layerwise()
            .arg("run")
            .arg(&config)
            .arg("-q")
            .current_dir(dir.path()),
    );
    let out = dir.path().join("out");
    assert_same_as_folder(&out, |r| stem(&r.1));
    let rows = image_rows(&out);
    let folder = image_rows(folder_run());
    assert_eq!(rows.len(), 14);
    for (row, reference) in rows.iter().zip(&folder) {
        assert_eq!((row.5.as_str(), &row.4), ("ok", &reference.4), "{row:?}");
        assert!(row.1.ends_with(&reference.1), "{row:?}");
    }
    let missing = format!("{}/folder/cat/missing.jpg", datasets().display());
    assert_eq!(
        (rows[12].1.as_str(), rows[12].6.as_deref()),
        (
            missing.as_str(),
            Some(
                format!(
                    "no image bytes, and no file at its path {missing} (a relative path is \
                     looked for from the Parquet file's folder, then the working folder)"
                )
                .as_str()
            )
        )
    );
    assert_eq!(
        rows[13].6.as_deref(),
        Some(
            "no image bytes, and its path http://127.0.0.1:9/cat.jpg is not a local file: \
             layerwise reads images stored by path from the local disk only (write the dataset \
             with the image bytes embedded, or download the files and store their local paths)"
        )
    );
}
