//! End-to-end runs of the pipeline on models and images made here, checked against
//! independent computations: a direct ONNX Runtime session on a model whose tensors are
//! already graph outputs, a straightforward statistics reference, and hand-computed tensors.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::Array;
use arrow_schema::DataType;
use fast_image_resize::Resizer;
use layerwise::output::provenance::RunRecord;
use layerwise::{Overrides, RunOptions};
use ndarray::{ArrayD, Axis};
use ort::session::Session;
use ort::value::TensorRef;
use sha2::{Digest, Sha256};

/// Nine files in two classes: eight images of assorted sizes and formats, and one HTML page.
const FILES: [(&str, u32, u32); 8] = [
    ("cats/a.png", 10, 12),
    ("cats/b.jpg", 16, 16),
    ("cats/c.png", 8, 8),
    ("cats/d.jpg", 20, 9),
    ("dogs/e.png", 9, 9),
    ("dogs/f.png", 33, 17),
    ("dogs/g.jpg", 8, 8),
    ("dogs/h.png", 12, 30),
];

const TINY_LAYERS: &str = r#"
[[layers]]
name = "conv1"
tensor = "conv1"
keep = "all"

[[layers]]
name = "second"
tensor = "conv2"
keep = [5, 0]

[[layers]]
name = "logits"
tensor = "logits"
"#;

fn tiny_config(images: &Path, model: &Path, out: &Path, extra: &str) -> String {
    format!(
        r#"
name = "tiny"
[input]
root = "{}"
[model]
path = "{}"
[preprocess]
scale = 0.00392156862745098
mean = [0.5, 0.4, 0.3]
std = [0.2, 0.25, 0.3]
{extra}
[run]
batch_size = 4
part_size = 5
threads = 2
{TINY_LAYERS}
[output]
dir = "{}"
"#,
        images.display(),
        model.display(),
        out.display()
    )
}

/// Runs `tiny_nchw.onnx` (or another model) on the nine files; returns the output folder.
fn run_tiny(dir: &Path, model_name: &str, extra: &str) -> (std::path::PathBuf, RunRecord) {
    let images = dir.join("images");
    if !images.exists() {
        write_images(&images, &FILES);
        write_html_as_jpg(&images.join("dogs/broken.jpg"));
    }
    let out = dir.join(format!("out-{model_name}"));
    let config = write_config(dir, &tiny_config(&images, &model(model_name), &out, extra));
    let record = run_quietly(&config).unwrap();
    (out, record)
}

/// Tensors of a direct session run on one preprocessed image, by name.
fn direct_run(image: &Path, names: &[&str]) -> HashMap<String, ArrayD<f32>> {
    let spec = layerwise::plan::Preprocess {
        input_type: layerwise::plan::InputType::Float32,
        height: 8,
        width: 8,
        resize: layerwise::config::ResizeMode::Stretch,
        layout: layerwise::config::Layout::NCHW,
        channel_order: layerwise::config::ChannelOrder::RGB,
        scale: 1.0 / 255.0,
        mean: [0.5, 0.4, 0.3],
        std: [0.2, 0.25, 0.3],
        max_pixels: layerwise::config::DEFAULT_MAX_PIXELS,
    };
    let mut input = vec![0.0; spec.image_len()];
    spec.load_into(image, &mut Resizer::new(), &mut input)
        .unwrap();
    let mut session = Session::builder(&runtime().environment)
        .unwrap()
        .commit_from_file(model("tiny_nchw_outputs.onnx"))
        .unwrap();
    let tensor = TensorRef::from_array_view(([1usize, 3, 8, 8], &input[..])).unwrap();
    let outputs = session.run(ort::inputs!["input" => tensor]).unwrap();
    names
        .iter()
        .map(|n| {
            let a = outputs[*n].try_extract_array::<f32>().unwrap().to_owned();
            (n.to_string(), a.index_axis_move(Axis(0), 0))
        })
        .collect()
}

/// The reference: mean, population std, min, max, first argmax (y, x), share > 0.
fn reference_stats(map: &[f32], width: usize) -> [f64; 7] {
    let n = map.len() as f64;
    let mean = map.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (map.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let min = map.iter().cloned().fold(f32::INFINITY, f32::min) as f64;
    let max = map.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let at = map.iter().position(|&v| v == max).unwrap();
    let positive = map.iter().filter(|&&v| v > 0.0).count() as f64 / n;
    [
        mean,
        std,
        min,
        max as f64,
        (at / width) as f64,
        (at % width) as f64,
        positive,
    ]
}

#[test]
fn tables_match_a_direct_session_run_and_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (out, record) = run_tiny(dir.path(), "tiny_nchw.onnx", "");

    // images: every file, in bytewise order, with the corrupt one as an error row.
    let images = read_table(&out, "images");
    assert_eq!(images.num_rows(), 9);
    assert_eq!(u64s(&images, "image_id"), (0..9).collect::<Vec<_>>());
    let paths: Vec<String> = strings(&images, "path")
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(
        paths,
        [
            "cats/a.png",
            "cats/b.jpg",
            "cats/c.png",
            "cats/d.jpg",
            "dogs/broken.jpg",
            "dogs/e.png",
            "dogs/f.png",
            "dogs/g.jpg",
            "dogs/h.png"
        ]
    );
    let labels = strings(&images, "label");
    assert_eq!(labels[0].as_deref(), Some("cats"));
    assert_eq!(labels[8].as_deref(), Some("dogs"));
    let status = strings(&images, "status");
    let errors = strings(&images, "error");
    assert_eq!(status[4].as_deref(), Some("error"));
    assert_eq!(
        errors[4].as_deref(),
        Some("not an image: looks like HTML (a saved error page?)")
    );
    let widths = images
        .column_by_name("width")
        .unwrap()
        .as_primitive::<UInt32Type>();
    assert!(widths.is_null(4));
    for (i, (_, w, _)) in FILES.iter().enumerate() {
        let row = if i < 4 { i } else { i + 1 };
        assert_eq!(status[row].as_deref(), Some("ok"));
        assert_eq!(errors[row], None);
        assert_eq!(widths.value(row), *w);
    }

    // Row counts: 8 ok images x (4 + 6 channels), x (4 + 2 kept maps), x 1 vector.
    let stats = read_table(&out, "stats");
    let maps = read_table(&out, "maps");
    let vectors = read_table(&out, "vectors");
    assert_eq!(stats.num_rows(), 80);
    assert_eq!(maps.num_rows(), 48);
    assert_eq!(vectors.num_rows(), 8);
    assert_eq!(record.counts.ok, 8);
    assert_eq!(record.counts.error, 1);
    assert_eq!(record.counts.rows["stats"], 80);
    assert_eq!(record.counts.parts, 2);

    // Every value against a direct run of the same model with those tensors as outputs.
    let ok_ids: Vec<u64> = (0..9).filter(|&i| i != 4).collect();
    let (stat_ids, stat_layers, stat_channels) = (
        u64s(&stats, "image_id"),
        strings(&stats, "layer"),
        u32s(&stats, "channel"),
    );
    let stat_columns: Vec<Vec<f32>> = ["mean", "std", "min", "max", "frac_positive"]
        .iter()
        .map(|c| f32s(&stats, c))
        .collect();
    let (argmax_y, argmax_x) = (u32s(&stats, "argmax_y"), u32s(&stats, "argmax_x"));
    let (map_ids, map_layers, map_channels) = (
        u64s(&maps, "image_id"),
        strings(&maps, "layer"),
        u32s(&maps, "channel"),
    );
    let map_values = lists(&maps);
    let (mut s, mut m) = (0, 0);
    for (k, id) in ok_ids.iter().enumerate() {
        let path = dir.path().join("images").join(&paths[*id as usize]);
        let direct = direct_run(&path, &["conv1", "conv2", "logits"]);
        assert_close(
            &lists(&vectors)[k],
            direct["logits"].as_slice().unwrap(),
            "logits",
        );
        assert_eq!(u64s(&vectors, "image_id")[k], *id);
        for (layer, tensor, channels, kept) in [
            ("conv1", "conv1", 4, vec![0, 1, 2, 3]),
            ("second", "conv2", 6, vec![5, 0]),
        ] {
            let t = &direct[tensor];
            let width = t.shape()[2];
            for c in 0..channels {
                let map: Vec<f32> = t.index_axis(Axis(0), c).iter().copied().collect();
                let r = reference_stats(&map, width);
                let what = format!("stats of image {id} {layer} channel {c}");
                assert_eq!(
                    (stat_ids[s], stat_layers[s].as_deref(), stat_channels[s]),
                    (*id, Some(layer), c as u32),
                    "{what}"
                );
                let got: Vec<f32> = stat_columns.iter().map(|col| col[s]).collect();
                let want = [r[0], r[1], r[2], r[3], r[6]].map(|v| v as f32);
                assert_close(&got, &want, &what);
                assert_eq!(
                    (argmax_y[s] as f64, argmax_x[s] as f64),
                    (r[4], r[5]),
                    "{what}"
                );
                s += 1;
            }
            for c in kept {
                let what = format!("map of image {id} {layer} channel {c}");
                assert_eq!(
                    (map_ids[m], map_layers[m].as_deref(), map_channels[m]),
                    (*id, Some(layer), c),
                    "{what}"
                );
                let map: Vec<f32> = t.index_axis(Axis(0), c as usize).iter().copied().collect();
                assert_close(&map_values[m], &map, &what);
                m += 1;
            }
        }
    }
    assert_eq!((s, m), (80, 48));
}

#[test]
fn tables_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (out, record) = run_tiny(dir.path(), "tiny_nchw.onnx", "");
    for table in layerwise::output::tables::Table::ALL.map(|t| t.name()) {
        let written = read_table(&out, table);
        assert_eq!(
            schema_of(&written),
            contract(table),
            "{table} differs from schemas/{table}.json"
        );
        // Two parts (5 + 4 images), and nothing else in the folder: no temporary files.
        let names: Vec<String> = part_files(&out, table)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["part-00000.parquet", "part-00001.parquet"],
            "{table}"
        );
    }
    let maps = read_table(&out, "maps");
    assert_eq!(u32s(&maps, "height")[0], 8);
    assert_eq!(u32s(&maps, "height")[4], 4, "conv2 maps are 4 x 4");

    // Provenance: run.json and every file's key-value metadata.
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let sha = Sha256::digest(std::fs::read(model("tiny_nchw.onnx")).unwrap());
    let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(run["model"]["sha256"], sha);
    assert_eq!(run["name"], "tiny");
    assert_eq!(run["onnxruntime"]["version"], "1.32.0");
    assert_eq!(run["counts"]["images"], 9);
    assert_eq!(run["counts"]["rows"]["maps"], 48);
    assert_eq!(run["layers"][1]["kept"], serde_json::json!([5, 0]));
    assert_eq!(run["layers"][2]["kind"], "vector");
    assert_eq!(run["config"]["layers"][0]["keep"], "all");
    assert!(run["timings"]["run_s"].as_f64().unwrap() > 0.0);
    assert_eq!(record.provenance.model.sha256, sha);
    let file = std::fs::File::open(&part_files(&out, "stats")[1]).unwrap();
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
    let kv = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .clone();
    let provenance = kv.iter().find(|k| k.key == "layerwise.provenance").unwrap();
    let provenance: serde_json::Value =
        serde_json::from_str(provenance.value.as_deref().unwrap()).unwrap();
    assert_eq!(provenance["model"]["sha256"], sha);
    assert_eq!(provenance["layers"], run["layers"]);

    // The row order each file records holds: image_id ascending (the Parquet sorting column),
    // then layer in config order, then channel (and `top` by layer, channel, rank).
    let layer_order = ["conv1", "second", "logits"];
    for table in ["images", "stats", "maps", "vectors", "top"] {
        for path in part_files(&out, table) {
            let file = std::fs::File::open(&path).unwrap();
            let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
            let meta = parquet::file::reader::FileReader::metadata(&reader);
            let kv = meta.file_metadata().key_value_metadata().unwrap();
            let order = kv.iter().find(|k| k.key == "layerwise.row_order").unwrap();
            if meta.num_row_groups() == 0 {
                continue; // no rows (this run has no `top_k`)
            }
            let sorting = meta.row_group(0).sorting_columns();
            if table == "top" {
                assert_eq!(sorting, None);
            } else {
                let by_image = parquet::file::metadata::SortingColumn {
                    column_idx: 0,
                    descending: false,
                    nulls_first: false,
                };
                assert_eq!(sorting, Some(&vec![by_image]), "{table}");
            }
            let rows = read_parquet(&path);
            let layer_rank = |i: usize| -> u64 {
                rows.column_by_name("layer").map_or(0, |c| {
                    let name = c.as_string::<i32>().value(i);
                    layer_order.iter().position(|l| *l == name).unwrap() as u64
                })
            };
            let column = |name: &str, i: usize| -> u64 {
                rows.column_by_name(name)
                    .map_or(0, |c| match c.data_type() {
                        DataType::UInt64 => c.as_primitive::<UInt64Type>().value(i),
                        _ => u64::from(c.as_primitive::<UInt32Type>().value(i)),
                    })
            };
            // `second` keeps [5, 0]: its maps come in that order.
            let channel_rank = |i: usize| match (table, layer_rank(i), column("channel", i)) {
                ("maps", 1, c) => [5, 0].iter().position(|k| *k == c).unwrap() as u64,
                (_, _, c) => c,
            };
            let key = |i: usize| match table {
                "top" => [layer_rank(i), column("channel", i), column("rank", i)],
                _ => [column("image_id", i), layer_rank(i), channel_rank(i)],
            };
            for i in 1..rows.num_rows() {
                assert!(key(i - 1) < key(i), "{table} row {i}: {:?}", order.value);
            }
        }
    }
}

#[test]
fn nhwc_and_fixed_batch_models_give_the_same_stats() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, _) = run_tiny(dir.path(), "tiny_nchw.onnx", "");
    let (nhwc, _) = run_tiny(dir.path(), "tiny_nhwc.onnx", "layout = \"NHWC\"");
    let (fixed, record) = run_tiny(dir.path(), "tiny_fixed1.onnx", "");
    assert_eq!(
        record.provenance.config.run.batch_size, 4,
        "the config asked for 4"
    );
    let want = read_table(&reference, "stats");
    for out in [nhwc, fixed] {
        let got = read_table(&out, "stats");
        assert_eq!(got.num_rows(), want.num_rows());
        assert_eq!(u64s(&got, "image_id"), u64s(&want, "image_id"));
        for column in ["mean", "std", "min", "max", "frac_positive"] {
            assert_close(&f32s(&got, column), &f32s(&want, column), column);
        }
        assert_eq!(lists(&read_table(&out, "maps")).len(), 48);
    }
}

/// Runs an identity model on one hand-made 7 x 5 image and returns the stored maps by channel.
fn identity_maps(
    model_name: &str,
    preprocess: &str,
    channel_axis: usize,
) -> (image::RgbImage, Vec<Vec<f32>>) {
    let dir = tempfile::tempdir().unwrap();
    let image = test_image(7, 5, 3);
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    image.save(dir.path().join("in/x.png")).unwrap();
    let config = format!(
        r#"
name = "identity"
[input]
root = "in"
[model]
path = "{}"
[preprocess]
size = [5, 7]
{preprocess}
[[layers]]
name = "pixels"
tensor = "pixels"
keep = "all"
channel_axis = {channel_axis}
[output]
dir = "out"
"#,
        model(model_name).display()
    );
    let config = write_config(dir.path(), &config);
    run_quietly(&config).unwrap();
    let maps = read_table(&dir.path().join("out"), "maps");
    assert_eq!(u32s(&maps, "height"), [5, 5, 5]);
    assert_eq!(u32s(&maps, "width"), [7, 7, 7]);
    (image, lists(&maps))
}

#[test]
fn nhwc_bgr_preprocessing_gives_the_expected_tensor() {
    let (image, maps) = identity_maps(
        "identity_nhwc.onnx",
        "layout = \"NHWC\"\nchannel_order = \"BGR\"\nscale = 1.0\nmean = [103.939, 116.779, 123.68]\nstd = [2.0, 4.0, 8.0]",
        3,
    );
    let mean = [103.939f32, 116.779, 123.68];
    let std = [2.0f32, 4.0, 8.0];
    for (c, map) in maps.iter().enumerate() {
        let want: Vec<f32> = image
            .pixels()
            .map(|px| (f32::from(px[2 - c]) - mean[c]) / std[c])
            .collect();
        assert_close(map, &want, &format!("BGR channel {c}"));
    }
}

#[test]
fn nchw_rgb_preprocessing_gives_the_expected_tensor() {
    let (image, maps) = identity_maps(
        "identity_nchw.onnx",
        "scale = 0.5\nmean = [1.0, 2.0, 3.0]",
        1,
    );
    for (c, map) in maps.iter().enumerate() {
        let want: Vec<f32> = image
            .pixels()
            .map(|px| f32::from(px[c]) * 0.5 - [1.0, 2.0, 3.0][c])
            .collect();
        assert_close(map, &want, &format!("RGB channel {c}"));
    }
}

#[test]
fn mistakes_stop_before_any_image_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    write_images(&images, &FILES[..1]);
    let out = dir.path().join("out");
    let try_run = |extra_layers: &str, model_name: &str, preprocess: &str| {
        let text = tiny_config(&images, &model(model_name), &out, preprocess)
            .replace(TINY_LAYERS, extra_layers);
        let config = write_config(dir.path(), &text);
        let err = run_quietly(&config).unwrap_err();
        assert!(
            err.chain().any(|e| e.is::<layerwise::PlanError>()),
            "{err:#}"
        );
        format!("{err:#}")
    };
    let unknown = try_run(
        "[[layers]]\nname = \"c\"\ntensor = \"conv3\"",
        "tiny_nchw.onnx",
        "",
    );
    assert!(
        unknown.contains(
            "has no tensor `conv3` (layers[0].tensor); the closest names are: conv1, conv2"
        ),
        "{unknown}"
    );
    let keep = try_run(
        "[[layers]]\nname = \"c\"\ntensor = \"conv2\"\nkeep = [6]",
        "tiny_nchw.onnx",
        "",
    );
    assert!(
        keep.contains("`layers[0].keep` lists channel 6, but `conv2` has 6 channels (0 to 5)"),
        "{keep}"
    );
    let layout = try_run(TINY_LAYERS, "tiny_nhwc.onnx", "");
    assert!(
        layout.contains("if the model takes NHWC input, set `preprocess.layout = \"NHWC\"`"),
        "{layout}"
    );
    assert!(!out.exists(), "nothing is written when the plan is refused");
}

#[test]
fn a_rerun_resumes_and_another_run_is_refused_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run_tiny(dir.path(), "tiny_nchw.onnx", "");
    let config = dir.path().join("pipeline.toml");
    // The same run again: every part is committed, nothing is redone.
    let again = run_quietly(&config).unwrap();
    assert!(again.complete);
    assert_eq!(again.timings.images, 0);
    assert_eq!(again.counts.images, 9);
    assert_eq!(read_table(&out, "stats").num_rows(), 80);
    // Another listing, or another config, is refused with the difference.
    let limited = Overrides {
        limit: Some(3),
        ..Default::default()
    };
    let quiet = RunOptions {
        quiet: true,
        ..Default::default()
    };
    let err = format!(
        "{:#}",
        layerwise::run(&config, &limited, quiet.clone()).unwrap_err()
    );
    assert!(
        err.contains("holds another run: its listing differs: 9 files then, 3 now. Pass --overwrite to replace it"),
        "{err}"
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("mean = [0.5, 0.4, 0.3]", "mean = [0.5, 0.4, 0.2]");
    std::fs::write(&config, text).unwrap();
    let err = format!("{:#}", run_quietly(&config).unwrap_err());
    assert!(
        err.contains(
            "its config differs: `preprocess.mean` was [0.5,0.4,0.3], is now [0.5,0.4,0.2]"
        ),
        "{err}"
    );
    assert_eq!(
        read_table(&out, "stats").num_rows(),
        80,
        "the earlier run is intact"
    );
    // --overwrite replaces it.
    let overwrite = RunOptions {
        overwrite: true,
        ..quiet
    };
    let record = layerwise::run(&config, &limited, overwrite).unwrap();
    assert_eq!(record.counts.images, 3);
    assert_eq!(read_table(&out, "images").num_rows(), 3);
    assert_eq!(
        part_files(&out, "stats").len(),
        1,
        "the old second part is gone"
    );
}

#[test]
fn float16_maps_round_the_float32_values() {
    let dir = tempfile::tempdir().unwrap();
    let (full, _) = run_tiny(dir.path(), "tiny_nchw.onnx", "");
    let out = dir.path().join("out-f16");
    let text = tiny_config(
        &dir.path().join("images"),
        &model("tiny_nchw.onnx"),
        &out,
        "",
    )
    .replace("[output]\n", "[output]\nmap_dtype = \"float16\"\n");
    let config = write_config(dir.path(), &text);
    let quiet = RunOptions {
        quiet: true,
        ..Default::default()
    };
    layerwise::run(&config, &Overrides::default(), quiet).unwrap();
    let half = read_table(&out, "maps");
    let values = half.column_by_name("values").unwrap().as_list::<i32>();
    assert_eq!(values.value_type(), DataType::Float16);
    let want = lists(&read_table(&full, "maps"));
    assert_eq!(values.len(), want.len());
    for (i, want) in want.iter().enumerate() {
        let got = values.value(i);
        let got = got.as_primitive::<arrow_array::types::Float16Type>();
        for (g, w) in got.values().iter().zip(want) {
            assert_eq!(*g, half::f16::from_f32(*w), "row {i}");
        }
    }
}

/// The codec of every column of each table's part files, by table.
fn codecs(out: &Path) -> HashMap<&'static str, Vec<parquet::basic::Compression>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut found = HashMap::new();
    for table in layerwise::output::tables::Table::ALL.map(|t| t.name()) {
        let mut codecs = Vec::new();
        for file in part_files(out, table) {
            let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
            for group in reader.metadata().row_groups() {
                codecs.extend(group.columns().iter().map(|c| c.compression()));
            }
        }
        codecs.dedup();
        found.insert(table, codecs);
    }
    found
}

#[test]
fn each_table_is_written_with_its_codec_and_reads_back_the_same() {
    use parquet::basic::Compression::{LZ4_RAW, SNAPPY, UNCOMPRESSED, ZSTD};
    let zstd = ZSTD(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let (defaults, _) = run_tiny(dir.path(), "tiny_nchw.onnx", "");
    let found = codecs(&defaults);
    assert_eq!(found["maps"], [SNAPPY], "maps: Snappy by default");
    for table in ["images", "stats", "vectors"] {
        assert_eq!(found[table], [zstd], "{table}: Zstandard by default");
    }
    let cases = [
        ("compression = \"zstd\"\n", [zstd, zstd, zstd]),
        ("compression = \"lz4_raw\"\n", [LZ4_RAW, LZ4_RAW, LZ4_RAW]),
        (
            "[output.compression]\nmaps = \"lz4_raw\"\nstats = \"none\"\n",
            [LZ4_RAW, UNCOMPRESSED, zstd],
        ),
    ];
    for (i, (setting, [maps, stats, images])) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("out-{i}"));
        let mut text = tiny_config(
            &dir.path().join("images"),
            &model("tiny_nchw.onnx"),
            &out,
            "",
        );
        text.push_str(setting);
        run_quietly(&write_config(dir.path(), &text)).unwrap();
        let found = codecs(&out);
        assert_eq!(found["maps"], [maps], "{setting}");
        assert_eq!(found["stats"], [stats], "{setting}");
        assert_eq!(found["images"], [images], "{setting}");
        assert_same_tables(&out, &defaults);
    }
}

#[test]
fn a_list_of_files_gives_the_same_tables_as_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let (walked, _) = run_tiny(dir.path(), "tiny_nchw.onnx", "");
    let mut files: Vec<&str> = FILES.iter().map(|f| f.0).collect();
    files.push("dogs/broken.jpg");
    files.reverse();
    std::fs::write(dir.path().join("files.txt"), files.join("\n")).unwrap();
    let out = dir.path().join("out-list");
    let text = tiny_config(
        &dir.path().join("images"),
        &model("tiny_nchw.onnx"),
        &out,
        "",
    )
    .replace("[input]\n", "[input]\nlist = \"files.txt\"\n");
    let config = write_config(dir.path(), &text);
    run_quietly(&config).unwrap();
    for table in ["images", "stats", "maps", "vectors"] {
        assert_eq!(
            read_table(&out, table),
            read_table(&walked, table),
            "{table}"
        );
    }
}

#[test]
fn pooled_maps_are_block_averages_of_the_full_maps() {
    let dir = tempfile::tempdir().unwrap();
    write_images(&dir.path().join("images"), &FILES[..3]);
    let layers = "[[layers]]\nname = \"c\"\ntensor = \"conv1\"\nkeep = \"all\"\ntop_k = 2\n";
    let full = tiny_config_with_layers(dir.path(), "full", layers);
    run_quietly(&full).unwrap();
    std::fs::rename(dir.path().join("out"), dir.path().join("full")).unwrap();
    let pooled = tiny_config_with_layers(dir.path(), "pooled", &format!("{layers}pool = 2\n"));
    run_quietly(&pooled).unwrap();

    let (a, b) = (dir.path().join("full"), dir.path().join("out"));
    assert_eq!(
        read_table(&a, "stats"),
        read_table(&b, "stats"),
        "statistics use full maps"
    );
    for table in ["maps", "top"] {
        let (full, pooled) = (read_table(&a, table), read_table(&b, table));
        assert_eq!(full.num_rows(), pooled.num_rows(), "{table}");
        let heights = primitives::<UInt32Type>(&full, "height");
        let widths = primitives::<UInt32Type>(&full, "width");
        assert_eq!(
            primitives::<UInt32Type>(&pooled, "height"),
            heights.iter().map(|h| h.div_ceil(2)).collect::<Vec<_>>()
        );
        for (i, (map, got)) in lists(&full).iter().zip(lists(&pooled)).enumerate() {
            let (h, w) = (heights[i] as usize, widths[i] as usize);
            // Straightforward reference: each output cell averages the cells of its block.
            let mut want = Vec::new();
            for by in (0..h).step_by(2) {
                for bx in (0..w).step_by(2) {
                    let cells: Vec<f32> = (by..(by + 2).min(h))
                        .flat_map(|y| (bx..(bx + 2).min(w)).map(move |x| (y, x)))
                        .map(|(y, x)| map[y * w + x])
                        .collect();
                    want.push(cells.iter().sum::<f32>() / cells.len() as f32);
                }
            }
            assert_close(&got, &want, &format!("{table} row {i}"));
        }
    }
    let wrong = tiny_config_with_layers(dir.path(), "bad", &format!("{layers}pool = 3\n"));
    let err = format!("{:#}", run_quietly(&wrong).unwrap_err());
    assert!(
        err.contains("`layers[0].pool` is 3; stored maps can be average-pooled by 2, 4 or 8 (or 1, not at all)"),
        "{err}"
    );
    // A pool with nothing to pool is a mistake, not a silent no-op.
    let idle = tiny_config_with_layers(
        dir.path(),
        "idle",
        "[[layers]]\ntensor = \"conv1\"\npool = 4\n",
    );
    let out = layerwise().args(["run", "-q"]).arg(&idle).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        text(&out).trim(),
        format!(
            "error: config {}: `layers[0].pool` is 4, but the layer stores no maps to pool (it \
             has no `keep` and no `top_k`); statistics always use the full maps. Add `keep` or \
             `top_k`, or remove `pool`",
            idle.display()
        )
    );
}

#[test]
fn run_json_says_where_the_cpu_time_went() {
    let dir = tempfile::tempdir().unwrap();
    let (out, record) = run_tiny(dir.path(), "tiny_nchw.onnx", "");
    let cpu = &record.timings.cpu;
    // Two workers, two encoders, a writer for each of the two parts, and the main thread.
    assert_eq!(cpu.threads, 7, "{cpu:?}");
    assert!(cpu.decode_ms > 0.0 && cpu.write_ms > 0.0, "{cpu:?}");
    assert_eq!(cpu.read_ms, 0.0, "a folder has no shard readers: {cpu:?}");
    assert!(cpu.reduce_ms >= 0.0, "{cpu:?}");
    assert!(
        cpu.decode_ms + cpu.reduce_ms + cpu.write_ms <= cpu.own_ms + 1e-9,
        "the stages are part of layerwise's own time: {cpu:?}"
    );
    assert!(cpu.own_ms <= cpu.process_ms, "{cpu:?}");
    assert!(
        (cpu.own_ms + cpu.onnxruntime_ms - cpu.process_ms).abs() < 1e-9,
        "{cpu:?}"
    );
    assert!(
        cpu.busiest_thread.starts_with("layerwise-") && cpu.busiest_thread_ms <= cpu.own_ms,
        "{cpu:?}"
    );
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let written = &run["timings"]["cpu"];
    assert_eq!(written["busiest_thread"], cpu.busiest_thread.as_str());
    assert_eq!(written["threads"], cpu.threads);
    for (key, value) in [("process_ms", cpu.process_ms), ("own_ms", cpu.own_ms)] {
        let read = written[key].as_f64().unwrap();
        assert!(
            (read - value).abs() <= 1e-12 * value.max(1.0),
            "{key}: {read} != {value}"
        );
    }
}

#[test]
fn the_stats_contract_is_the_list_of_statistics() {
    use layerwise::model::statistics::{Column, STATISTICS};
    let text = std::fs::read_to_string(root().join("schemas/stats.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let columns = doc["columns"].as_array().unwrap();
    let field = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap().to_owned();
    let written: Vec<(String, String, String)> = columns[5..]
        .iter()
        .map(|c| (field(c, "name"), field(c, "type"), field(c, "description")))
        .collect();
    let listed: Vec<(String, String, String)> = STATISTICS
        .iter()
        .map(|s| {
            let kind = match s.column {
                Column::Float32 => "float32",
                Column::UInt32 => "uint32",
            };
            (s.name.into(), kind.into(), s.description.into())
        })
        .collect();
    assert_eq!(
        written, listed,
        "schemas/stats.json after `width` must list STATISTICS (src/model/statistics.rs)"
    );
}
