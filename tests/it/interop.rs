//! DuckDB reads the dataset natively: counts and values agree with what the Rust side wrote.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::Array;

use crate::common::*;

#[test]
fn duckdb_reads_every_table() {
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("images"),
        &[("a/x.png", 9, 9), ("b/y.jpg", 8, 12), ("b/z.png", 8, 8)],
    );
    write_html_as_jpg(&dir.path().join("images/a/bad.jpg"));
    let layers = "[[layers]]\nname = \"conv1\"\ntensor = \"conv1\"\nkeep = [1, 3]\npositions = 3\n\
                  [[layers]]\nname = \"logits\"\ntensor = \"logits\"";
    let config = tiny_config_with_layers(dir.path(), "interop", layers);
    let record = run_quietly(&config).unwrap();
    let out = dir.path().join("out");
    let stats = read_table(&out, "stats");
    let maxima = primitives::<arrow_array::types::Float32Type>(&stats, "max");
    let rust_max = maxima.into_iter().fold(f32::NEG_INFINITY, f32::max);
    let script = r#"
import json, sys, duckdb
out = sys.argv[1]
q = lambda sql: duckdb.sql(sql.replace("OUT", out)).fetchall()
print(json.dumps({
    "rows": {t: q(f"SELECT count(*) FROM 'OUT/{t}/*.parquet'")[0][0] for t in ["images", "stats", "maps", "vectors", "top", "positions"]},
    "errors": q("SELECT path, error FROM 'OUT/images/*.parquet' WHERE status = 'error'"),
    "max": q("SELECT max(max) FROM 'OUT/stats/*.parquet'")[0][0],
    "map_len": q("SELECT DISTINCT len(values) FROM 'OUT/maps/*.parquet'"),
    "types": q("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM 'OUT/maps/*.parquet')"),
    "position_types": q("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM 'OUT/positions/*.parquet')"),
    "position": q("SELECT position, y, x, values FROM 'OUT/positions/*.parquet' ORDER BY image_id, position LIMIT 1"),
    "provenance": [json.loads(v) for (v,) in q(
        "SELECT decode(value) FROM parquet_kv_metadata('OUT/stats/*.parquet') "
        "WHERE decode(key) = 'layerwise.provenance'")],
}))
"#;
    let got = python_json(&["-c".as_ref(), script.as_ref(), out.as_os_str()]);
    for (table, rows) in &record.counts.rows {
        assert_eq!(&got["rows"][table], rows, "{table}");
    }
    assert_eq!(got["rows"]["stats"], 12, "3 ok images x 4 channels");
    assert_eq!(got["rows"]["positions"], 9, "3 ok images x 3 positions");
    assert_eq!(
        got["position_types"],
        serde_json::json!([
            ["image_id", "UBIGINT"],
            ["layer", "VARCHAR"],
            ["position", "UINTEGER"],
            ["y", "UINTEGER"],
            ["x", "UINTEGER"],
            ["values", "FLOAT[]"]
        ])
    );
    let positions = read_table(&out, "positions");
    let first = &got["position"][0];
    assert_eq!(first[0], u32s(&positions, "position")[0]);
    assert_eq!(first[1], u32s(&positions, "y")[0]);
    assert_eq!(first[2], u32s(&positions, "x")[0]);
    let vector: Vec<f32> = first[3]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(
        vector,
        position_vectors(&positions)[0],
        "float16, widened by DuckDB"
    );
    assert_eq!(
        got["errors"],
        serde_json::json!([[
            "a/bad.jpg",
            "not an image: looks like HTML (a saved error page?)"
        ]])
    );
    assert_eq!(got["max"].as_f64().unwrap() as f32, rust_max);
    assert_eq!(got["map_len"], serde_json::json!([[64]]));
    assert_eq!(
        got["types"],
        serde_json::json!([
            ["image_id", "UBIGINT"],
            ["layer", "VARCHAR"],
            ["channel", "UINTEGER"],
            ["height", "UINTEGER"],
            ["width", "UINTEGER"],
            ["values", "FLOAT[]"]
        ])
    );
    let provenance = got["provenance"].as_array().unwrap();
    assert_eq!(provenance.len(), 1, "one part file");
    assert_eq!(provenance[0]["name"], "interop");
    assert_eq!(
        provenance[0]["model"]["sha256"],
        record.provenance.model.sha256.as_str()
    );
}

/// Runs docs/output.md's "Query the results" section on `out` (tests/readme/run_queries.py).
fn readme_queries(out: &Path) -> serde_json::Value {
    let script = root().join("tests/readme/run_queries.py");
    let readme = root().join("docs/output.md");
    python_json(&[script.as_os_str(), readme.as_os_str(), out.as_os_str()])
}

/// Runs the project's Python with `args` and parses what it prints as JSON.
fn python_json(args: &[&OsStr]) -> serde_json::Value {
    let output = Command::new(python()).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "python {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The rows of a query's answer, as JSON arrays.
fn rows(answer: &serde_json::Value) -> &Vec<serde_json::Value> {
    answer["rows"].as_array().unwrap()
}

fn f64_at(row: &serde_json::Value, column: usize) -> f64 {
    row[column].as_f64().unwrap()
}

fn f32s_of(values: &serde_json::Value) -> Vec<f32> {
    let values = values.as_array().unwrap();
    values.iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

/// `got` (JSON numbers) is exactly the stored map `want`.
fn assert_same_map(got: &serde_json::Value, want: &[f32], what: &str) {
    let got = f32s_of(got);
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("{what}, value {i}: {} != {}", got[i], want[i]);
    }
}

fn assert_near(got: f64, want: f64, relative: f64, what: &str) {
    assert!(
        (got - want).abs() <= relative * want.abs().max(1.0),
        "{what}: {got} != {want}"
    );
}

/// What the Rust side wrote, indexed for the README's questions.
struct Written {
    paths: Vec<String>,
    labels: Vec<Option<String>>,
    /// (image_id, layer, channel, mean, max, frac_positive) of every `stats` row.
    stats: Vec<(u64, String, u32, f32, f32, f32)>,
    /// (image_id, layer, channel) -> map.
    maps: HashMap<(u64, String, u32), Vec<f32>>,
}

impl Written {
    fn read(out: &Path) -> Written {
        let images = read_table(out, "images");
        let stats = read_table(out, "stats");
        let maps = read_table(out, "maps");
        let image_ids = u64s(&images, "image_id");
        assert_eq!(image_ids, (0..image_ids.len() as u64).collect::<Vec<_>>());
        let (ids, layers, channels) = (
            u64s(&stats, "image_id"),
            strings(&stats, "layer"),
            u32s(&stats, "channel"),
        );
        let (means, maxima, positive) = (
            f32s(&stats, "mean"),
            f32s(&stats, "max"),
            f32s(&stats, "frac_positive"),
        );
        let stats = (0..ids.len())
            .map(|i| {
                let layer = layers[i].clone().unwrap();
                (ids[i], layer, channels[i], means[i], maxima[i], positive[i])
            })
            .collect();
        let map_keys = u64s(&maps, "image_id")
            .into_iter()
            .zip(strings(&maps, "layer"))
            .zip(u32s(&maps, "channel"))
            .map(|((id, layer), channel)| (id, layer.unwrap(), channel));
        Written {
            paths: strings(&images, "path").into_iter().flatten().collect(),
            labels: strings(&images, "label"),
            stats,
            maps: map_keys.zip(lists(&maps)).collect(),
        }
    }

    fn image_id(&self, path: &str) -> u64 {
        self.paths.iter().position(|p| p == path).unwrap() as u64
    }

    fn label(&self, image_id: u64) -> &str {
        self.labels[image_id as usize].as_deref().unwrap()
    }
}

/// Top 9 (channel, path, max) per channel of `layer`: max descending, then image_id.
fn top9(written: &Written, layer: &str) -> Vec<(u32, String, f32)> {
    let mut rows: Vec<_> = written.stats.iter().filter(|s| s.1 == layer).collect();
    rows.sort_by(|a, b| a.2.cmp(&b.2).then(b.4.total_cmp(&a.4)).then(a.0.cmp(&b.0)));
    let mut top = Vec::new();
    for row in rows {
        if top
            .iter()
            .filter(|t: &&(u32, String, f32)| t.0 == row.2)
            .count()
            < 9
        {
            top.push((row.2, written.paths[row.0 as usize].clone(), row.4));
        }
    }
    top
}

/// Mean of `mean` per (layer, channel, label), sorted by those keys.
fn mean_by_label(written: &Written) -> Vec<((String, u32, String), f64)> {
    let mut sums: BTreeMap<(String, u32, String), (f64, u32)> = BTreeMap::new();
    for (image_id, layer, channel, mean, _, _) in &written.stats {
        let key = (layer.clone(), *channel, written.label(*image_id).to_owned());
        let sum = sums.entry(key).or_default();
        sum.0 += f64::from(*mean);
        sum.1 += 1;
    }
    sums.into_iter()
        .map(|(key, (sum, n))| (key, sum / f64::from(n)))
        .collect()
}

/// Mean of `frac_positive` per layer, sorted by layer.
fn sparsity(written: &Written) -> Vec<(String, f64)> {
    let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
    for (_, layer, _, _, _, positive) in &written.stats {
        let sum = sums.entry(layer.clone()).or_default();
        sum.0 += f64::from(*positive);
        sum.1 += 1;
    }
    sums.into_iter()
        .map(|(layer, (sum, n))| (layer, sum / f64::from(n)))
        .collect()
}

#[test]
fn readme_queries_answer_what_the_rust_side_computed() {
    let dir = tempfile::tempdir().unwrap();
    let record = run_quietly(&demo_config(dir.path())).unwrap();
    let out = dir.path().join("out");
    let got = readme_queries(&out);
    let written = Written::read(&out);
    let sql = |name: &str| {
        got["sql"]
            .get(name)
            .unwrap_or_else(|| panic!("no README query `-- {name}`"))
    };
    let python = |block: usize, name: &str| {
        got["python"][block]
            .get(name)
            .unwrap_or_else(|| panic!("README Python block {block} assigns no {name}"))
    };
    let sql_names: Vec<&String> = got["sql"].as_object().unwrap().keys().collect();
    assert_eq!(sql_names.len(), 8, "{sql_names:?}");

    // Top 9 images per channel: exact paths and float32 maxima, in both engines.
    let want = top9(&written, "block5_conv3");
    assert_eq!(want.len(), 512 * 9);
    let top9_sql =
        sql("Top 9 images per channel of block5_conv3: the images that drive each filter hardest.");
    for (engine, answer) in [
        ("DuckDB", rows(top9_sql)),
        ("Polars", rows(python(1, "top9"))),
    ] {
        let answer: Vec<(u32, String, f32)> = answer
            .iter()
            .map(|row| {
                let channel = row[0].as_u64().unwrap() as u32;
                (
                    channel,
                    row[1].as_str().unwrap().to_owned(),
                    f64_at(row, 2) as f32,
                )
            })
            .collect();
        assert_eq!(answer.len(), want.len(), "{engine}");
        if let Some(i) = (0..want.len()).find(|&i| answer[i] != want[i]) {
            panic!("{engine}, row {i}: {:?} != {:?}", answer[i], want[i]);
        }
    }

    // Mean activation per channel and label (DuckDB averages in float64, Polars in float32).
    let want = mean_by_label(&written);
    assert_eq!(want.len(), (64 + 512) * 2);
    let by_label_sql = rows(sql("Mean activation per channel and label."));
    let by_label_polars = rows(python(1, "by_label"));
    for (answer, relative) in [(by_label_sql, 1e-9), (by_label_polars, 1e-5)] {
        assert_eq!(answer.len(), want.len());
        for (row, ((layer, channel, label), mean)) in answer.iter().zip(&want) {
            assert_eq!(row[0], layer.as_str());
            assert_eq!(row[1], *channel);
            assert_eq!(row[2], label.as_str());
            assert_near(
                f64_at(row, 3),
                *mean,
                relative,
                &format!("{layer} {channel} {label}"),
            );
        }
    }

    // The channels that differ most between the classes: the same ten, in order.
    let mean_of = |channel: u32, label: &str| {
        let key = ("block5_conv3".to_owned(), channel, label.to_owned());
        want.iter().find(|(k, _)| *k == key).unwrap().1
    };
    let mut differences: Vec<(u32, f64)> = (0..512)
        .map(|c| (c, mean_of(c, "astronaut") - mean_of(c, "cat")))
        .collect();
    differences.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    for pair in differences[..11].windows(2) {
        assert!(
            pair[0].1.abs() - pair[1].1.abs() > 1e-3,
            "a near tie: {pair:?}"
        );
    }
    let differ_sql = sql(
        "The block5_conv3 channels whose mean activation differs most between the two classes.",
    );
    for (answer, relative) in [
        (rows(differ_sql), 1e-9),
        (rows(python(1, "differ_most")), 1e-5),
    ] {
        assert_eq!(answer.len(), 10);
        for (row, (channel, difference)) in answer.iter().zip(&differences) {
            assert_eq!(row[0], *channel);
            assert_near(
                f64_at(row, 1),
                mean_of(*channel, "astronaut"),
                relative,
                "astronaut",
            );
            assert_near(f64_at(row, 2), mean_of(*channel, "cat"), relative, "cat");
            assert_near(
                f64_at(row, 3),
                *difference,
                relative.max(1e-7),
                "difference",
            );
        }
    }

    // Sparsity per layer.
    let want = sparsity(&written);
    let sparsity_sql = sql("Sparsity: the share of positive activations per layer (after a ReLU: how often filters fire).");
    for (answer, relative) in [
        (rows(sparsity_sql), 1e-9),
        (rows(python(1, "sparsity")), 1e-5),
    ] {
        assert_eq!(answer.len(), want.len());
        for (row, (layer, positive)) in answer.iter().zip(&want) {
            assert_eq!(row[0], layer.as_str());
            assert_near(f64_at(row, 1), *positive, relative, layer);
        }
    }

    // One map as a 2-D array: DuckDB's FLOAT[] and Polars' list hold exactly the stored map.
    let image_id = written.image_id("astronaut/astronaut_000.jpg");
    let map = |channel: u32| &written.maps[&(image_id, "block1_conv1".to_owned(), channel)];
    let one_map =
        sql("One map, found by its image's path: channel 11 of block1_conv1 (a contour tracer).");
    assert_eq!(
        one_map["types"],
        serde_json::json!(["UINTEGER", "UINTEGER", "FLOAT[]"])
    );
    assert_eq!(rows(one_map).len(), 1);
    assert_eq!(rows(one_map)[0][0], 224);
    assert_eq!(rows(one_map)[0][1], 224);
    assert_same_map(&rows(one_map)[0][2], map(11), "DuckDB's map");
    for block in [0, 1] {
        let contours = python(block, "contours");
        assert_eq!(
            contours["shape"],
            serde_json::json!([224, 224]),
            "block {block}"
        );
        assert_eq!(contours["dtype"], "float32");
        assert_same_map(&contours["values"], map(11), &format!("block {block}"));
    }
    let one_image = python(1, "one_image");
    let values_type = one_image["types"][one_image["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "values")
        .unwrap()]
    .clone();
    assert_eq!(values_type, "List(Float32)");
    let stack = python(1, "stack");
    assert_eq!(stack["shape"], serde_json::json!([6, 224, 224]));
    let stack = f32s_of(&stack["values"]);
    for (k, row) in rows(one_image).iter().enumerate() {
        let channel = row[2].as_u64().unwrap() as u32;
        assert_eq!(
            &stack[k * 224 * 224..(k + 1) * 224 * 224],
            map(channel),
            "{channel}"
        );
    }

    // Position vectors: DuckDB's rows for one image, Polars' array of them all, as written.
    let positions = read_table(&out, "positions");
    let (ids, at) = (u64s(&positions, "image_id"), u32s(&positions, "position"));
    let vectors = position_vectors(&positions);
    assert_eq!(vectors.len(), 50 * 16, "16 per ok image");
    assert!(vectors.iter().all(|v| v.len() == 512));
    let one = sql(
        "Position vectors: the 16 block5_conv3 positions drawn for one image, each 512 channels.",
    );
    assert_eq!(rows(one).len(), 16);
    let mine: Vec<usize> = (0..ids.len()).filter(|&r| ids[r] == image_id).collect();
    for (row, &r) in rows(one).iter().zip(&mine) {
        assert_eq!(row[0], at[r]);
        assert_eq!(
            (row[1].clone(), row[2].clone()),
            (at[r].div_euclid(14).into(), (at[r] % 14).into())
        );
        assert_same_map(&row[3], &vectors[r], "DuckDB's position vector");
    }
    let array = python(1, "vectors");
    assert_eq!(array["shape"], serde_json::json!([50 * 16, 512]));
    assert_eq!(array["dtype"], "float16");
    assert_same_map(&array["values"], &vectors.concat(), "Polars' vectors");

    // The files that could not be read.
    assert_eq!(
        rows(sql("The files that could not be read, and why.")),
        &vec![serde_json::json!([
            null,
            "cat/corrupt.jpg",
            "not an image: looks like HTML (a saved error page?)"
        ])]
    );

    // Provenance, from DuckDB's JSON functions and from Polars' metadata reader.
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let provenance = sql("The provenance every file carries: the resolved config, the model's SHA-256, the versions.");
    let row = &rows(provenance)[0];
    assert_eq!(row[0], "demo-classic-study");
    assert_eq!(row[1], record.provenance.model.sha256.as_str());
    assert_eq!(row[2], "1.32.0");
    let config: serde_json::Value = serde_json::from_str(row[3].as_str().unwrap()).unwrap();
    assert_eq!(config, run["config"]);
    let provenance = python(1, "provenance");
    assert_eq!(provenance["model"], run["model"]);
    assert_eq!(provenance["layers"], run["layers"]);
    assert_eq!(provenance["config"], run["config"]);
}

/// `map_dtype = "float16"`: DuckDB widens the halves to `FLOAT[]`, Polars reads
/// `List(Float16)`, and both see the stored values.
#[test]
fn float16_maps_read_in_duckdb_and_polars() {
    let dir = tempfile::tempdir().unwrap();
    write_images(
        &dir.path().join("images"),
        &[("a.png", 9, 9), ("b.png", 8, 12)],
    );
    let layers = "[[layers]]\nname = \"conv1\"\ntensor = \"conv1\"\nkeep = \"all\"";
    let config = tiny_config_with_layers(dir.path(), "half", layers);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}map_dtype = \"float16\"\n")).unwrap();
    run_quietly(&config).unwrap();
    let out = dir.path().join("out");
    let maps = read_table(&out, "maps");
    let values = maps.column_by_name("values").unwrap().as_list::<i32>();
    let want: Vec<f32> = (0..values.len())
        .flat_map(|i| {
            let map = values.value(i);
            let map = map.as_primitive::<arrow_array::types::Float16Type>();
            map.values().iter().map(|v| v.to_f32()).collect::<Vec<_>>()
        })
        .collect();
    let script = r#"
import json, sys, duckdb, polars as pl
maps = sys.argv[1] + "/maps/*.parquet"
duck = duckdb.sql(f"SELECT values FROM '{maps}' ORDER BY image_id, channel")
frame = pl.read_parquet(maps).sort("image_id", "channel")
print(json.dumps({
    "duckdb_type": str(duck.types[0]),
    "duckdb": [v for (row,) in duck.fetchall() for v in row],
    "polars_type": str(frame.schema["values"]),
    "polars": frame["values"].explode().cast(pl.Float32).to_list(),
}))
"#;
    let got = python_json(&["-c".as_ref(), script.as_ref(), out.as_os_str()]);
    assert_eq!(got["duckdb_type"], "FLOAT[]");
    assert_eq!(got["polars_type"], "List(Float16)");
    assert_eq!(want.len(), 2 * 4 * 64, "2 images x 4 channels of 8 x 8");
    assert_same_map(&got["duckdb"], &want, "DuckDB");
    assert_same_map(&got["polars"], &want, "Polars");
}
