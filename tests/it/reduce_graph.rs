//! `[run] reduce = "graph"` (ONNX Runtime computes the statistics and stored maps from nodes
//! appended to the model) against `reduce = "host"` (layerwise computes them from the whole
//! tensors): the same config run both ways gives the same rows, on every tensor shape the
//! exporters produce. Min, max, argmax and the share of positive values are exact; mean and
//! std within 1e-5 of the channel's largest absolute value; kept maps exact, pooled maps
//! within 1e-5 of the map's largest absolute value.

use std::path::{Path, PathBuf};

use crate::common::*;
use arrow_array::types::{Float32Type, UInt32Type, UInt64Type};
use arrow_array::RecordBatch;

const IMAGES: [(&str, u32, u32); 6] = [
    ("a/1.png", 8, 8),
    ("a/2.jpg", 13, 9),
    ("b/3.png", 20, 20),
    ("b/4.png", 6, 11),
    ("b/5.jpg", 8, 8),
    ("b/6.png", 31, 7),
];

/// Runs `model_name` with `preprocess`, `run` and `layers` once per `reduce`; returns the
/// host and the graph output folders.
fn run_both(
    dir: &Path,
    model_name: &Path,
    preprocess: &str,
    run: &str,
    layers: &str,
) -> (PathBuf, PathBuf) {
    write_images(&dir.join("images"), &IMAGES);
    let outs = ["host", "graph"].map(|reduce| {
        let text = format!(
            "name = \"{reduce}\"\n[input]\nroot = \"images\"\n[model]\npath = {:?}\n\
             [preprocess]\n{preprocess}\n[run]\nreduce = \"{reduce}\"\nbatch_size = 4\n\
             part_size = 4\n{run}\n{layers}\n[output]\ndir = \"out-{reduce}\"\n",
            model_name.to_str().unwrap()
        );
        let config = dir.join(format!("{reduce}.toml"));
        std::fs::write(&config, text).unwrap();
        run_quietly(&config).unwrap();
        dir.join(format!("out-{reduce}"))
    });
    let [host, graph] = outs;
    (host, graph)
}

fn layer(name: &str, tensor: &str, extra: &str) -> String {
    format!("[[layers]]\nname = \"{name}\"\ntensor = \"{tensor}\"\n{extra}\n")
}

fn floats(batch: &RecordBatch, column: &str) -> Vec<f32> {
    primitives::<Float32Type>(batch, column)
}

fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn assert_within(got: f32, want: f32, scale: f32, what: &str) {
    assert!(
        (got - want).abs() <= 1e-5 * scale,
        "{what}: graph {got}, host {want} (scale {scale})"
    );
}

/// The columns that say which map a row is about.
fn keys(batch: &RecordBatch) -> Vec<(u64, String, u32, u32, u32)> {
    let ids = primitives::<UInt64Type>(batch, "image_id");
    let layers = strings(batch, "layer");
    let [channels, heights, widths] =
        ["channel", "height", "width"].map(|c| primitives::<UInt32Type>(batch, c));
    (0..batch.num_rows())
        .map(|i| {
            let layer = layers[i].clone().unwrap();
            (ids[i], layer, channels[i], heights[i], widths[i])
        })
        .collect()
}

/// Asserts that the two runs' tables agree as the module says; returns the number of stats
/// and maps rows compared.
fn assert_equivalent(host: &Path, graph: &Path, pooled: &[&str]) -> (usize, usize) {
    for table in ["images", "vectors"] {
        assert_eq!(read_table(host, table), read_table(graph, table), "{table}");
    }
    let (want, got) = (read_table(host, "stats"), read_table(graph, "stats"));
    assert_eq!(keys(&got), keys(&want), "stats rows");
    for column in ["min", "max", "frac_positive"] {
        assert_eq!(floats(&got, column), floats(&want, column), "{column}");
    }
    for column in ["argmax_y", "argmax_x"] {
        let values = |b| primitives::<UInt32Type>(b, column);
        assert_eq!(values(&got), values(&want), "{column}");
    }
    let (min, max) = (floats(&want, "min"), floats(&want, "max"));
    for column in ["mean", "std"] {
        let (g, w) = (floats(&got, column), floats(&want, column));
        for i in 0..w.len() {
            let scale = min[i].abs().max(max[i].abs());
            assert_within(g[i], w[i], scale, &format!("{column} of stats row {i}"));
        }
    }
    let stats_rows = want.num_rows();
    let (want, got) = (read_table(host, "maps"), read_table(graph, "maps"));
    assert_eq!(keys(&got), keys(&want), "maps rows");
    assert_same_maps(&keys(&want), &lists(&got), &lists(&want), pooled, "maps");
    let (want_top, got_top) = (read_table(host, "top"), read_table(graph, "top"));
    for column in ["channel", "rank"] {
        let values = |b| primitives::<UInt32Type>(b, column);
        assert_eq!(values(&got_top), values(&want_top), "top {column}");
    }
    let ids = |b| primitives::<UInt64Type>(b, "image_id");
    assert_eq!(ids(&got_top), ids(&want_top), "top image_id");
    assert_eq!(strings(&got_top, "layer"), strings(&want_top, "layer"));
    let top_layers = strings(&want_top, "layer");
    let top_pooled: Vec<&str> = pooled
        .iter()
        .copied()
        .filter(|p| top_layers.iter().any(|l| l.as_deref() == Some(*p)))
        .collect();
    let top_keys: Vec<_> = top_layers
        .iter()
        .map(|l| (0, l.clone().unwrap(), 0, 0, 0))
        .collect();
    let (g, w) = (lists(&got_top), lists(&want_top));
    assert_same_maps(&top_keys, &g, &w, &top_pooled, "top");
    (stats_rows, want.num_rows())
}

/// Maps of layers in `pooled` within 1e-5 of their largest value, the others exact.
fn assert_same_maps(
    keys: &[(u64, String, u32, u32, u32)],
    got: &[Vec<f32>],
    want: &[Vec<f32>],
    pooled: &[&str],
    table: &str,
) {
    assert_eq!(got.len(), want.len());
    for (i, key) in keys.iter().enumerate() {
        if pooled.contains(&key.1.as_str()) {
            assert_eq!(got[i].len(), want[i].len(), "{table} row {i}");
            let scale = max_abs(&want[i]);
            for (g, w) in got[i].iter().zip(&want[i]) {
                assert_within(*g, *w, scale, &format!("{table} row {i} ({key:?})"));
            }
        } else {
            assert_eq!(got[i], want[i], "{table} row {i} ({key:?})");
        }
    }
}

const TINY: &str = "scale = 0.00392156862745098\nmean = [0.5, 0.4, 0.3]\nstd = [0.2, 0.25, 0.3]";

#[test]
fn nchw_maps_kept_pooled_and_top_with_a_vector_layer() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [
        layer("conv1", "conv1", "keep = \"all\"\ntop_k = 2"),
        layer("second", "conv2", "keep = [5, 0]\npool = 2"),
        layer("stats_only", "conv2", "keep = []"),
        layer("logits", "logits", ""),
    ]
    .concat();
    let model = model("tiny_nchw.onnx");
    let (host, graph) = run_both(dir.path(), &model, TINY, "", &layers);
    // 6 images x (4 + 6 + 6) channels; 6 x (4 + 2) maps.
    assert_eq!(
        assert_equivalent(&host, &graph, &["second"]),
        (6 * 16, 6 * 6)
    );
    let top = read_table(&graph, "top");
    assert_eq!(top.num_rows(), 2 * 4 * 2, "two parts, 4 channels, 2 each");
    let run = |out: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
    };
    let reduced_in = |out: &Path| -> Vec<String> {
        let layers = run(out)["layers"].as_array().unwrap().clone();
        layers
            .iter()
            .map(|l| l["reduced_in"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(reduced_in(&host), ["host"; 4]);
    assert_eq!(
        reduced_in(&graph),
        ["graph", "graph", "graph", "host"],
        "the vector is fetched whole"
    );
}

#[test]
fn nhwc_tensors_with_pooling_cut_by_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    // `pixels` is [N, 10, 10, 3]: channels last; pool 4 leaves blocks of 2 at the edges.
    let layers = layer(
        "pixels",
        "pixels",
        "keep = [2, 0]\nchannel_axis = 3\npool = 4\ntop_k = 1",
    );
    let preprocess = "layout = \"NHWC\"\nsize = [10, 10]\nscale = 0.00392156862745098";
    let model = model("identity_nhwc.onnx");
    let (host, graph) = run_both(dir.path(), &model, preprocess, "", &layers);
    assert_eq!(
        assert_equivalent(&host, &graph, &["pixels"]),
        (6 * 3, 6 * 2)
    );
    let maps = read_table(&graph, "maps");
    assert_eq!(primitives::<UInt32Type>(&maps, "height")[0], 3);
}

#[test]
fn rank3_tensors_with_channels_on_axis_1_and_2() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [
        layer("seq", "seq", "keep = \"all\"\npool = 2"),
        layer(
            "tokens",
            "tokens",
            "keep = [5, 1]\nchannel_axis = 2\ntop_k = 3",
        ),
    ]
    .concat();
    let model = model("tiny_rank3.onnx");
    let (host, graph) = run_both(dir.path(), &model, "", "", &layers);
    assert_eq!(assert_equivalent(&host, &graph, &["seq"]), (6 * 12, 6 * 8));
}

#[test]
fn a_fixed_batch_of_one_and_symbolic_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [
        layer("conv1", "conv1", "keep = [1, 3]"),
        layer("conv2", "conv2", "keep = \"all\"\npool = 4"),
    ]
    .concat();
    let fixed = model("tiny_fixed1.onnx");
    let (host, graph) = run_both(&dir.path().join("fixed"), &fixed, TINY, "", &layers);
    assert_eq!(
        assert_equivalent(&host, &graph, &["conv2"]),
        (6 * 10, 6 * 8)
    );
    // 12 x 10 inputs: conv1 maps of 12 x 10, conv2 of 6 x 5 pooled by 4 into 2 x 2.
    let preprocess = format!("size = [12, 10]\n{TINY}");
    let symbolic = model("tiny_symbolic.onnx");
    let (host, graph) = run_both(&dir.path().join("sym"), &symbolic, &preprocess, "", &layers);
    assert_eq!(
        assert_equivalent(&host, &graph, &["conv2"]),
        (6 * 10, 6 * 8)
    );
    let maps = read_table(&graph, "maps");
    let sizes: Vec<u32> = primitives::<UInt32Type>(&maps, "height");
    assert_eq!((sizes[0], sizes[2]), (12, 2));
}

#[test]
fn a_pytorch_export_of_opset_20_where_axes_are_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [
        layer("relu0", "op:Relu#0", "keep = [1, 0]\npool = 2\ntop_k = 2"),
        layer("relu_last", "op:Relu#-1", "keep = \"all\""),
        layer("probs", "op:Softmax#0", ""),
    ]
    .concat();
    let preprocess = "size = [40, 48]\nscale = 0.00392156862745098\n\
                      mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]";
    let model = root().join("tests/models/torch/cnn_dynamo.onnx");
    let (host, graph) = run_both(dir.path(), &model, preprocess, "", &layers);
    let (stats, maps) = assert_equivalent(&host, &graph, &["relu0"]);
    assert!(stats > 0 && maps > 0);
}

#[test]
fn auto_reduces_on_the_host_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let layers = layer("conv1", "conv1", "keep = [0]");
    let model = model("tiny_nchw.onnx");
    let (host, _) = run_both(dir.path(), &model, TINY, "", &layers);
    let text = std::fs::read_to_string(dir.path().join("host.toml"))
        .unwrap()
        .replace("reduce = \"host\"", "reduce = \"auto\"")
        .replace("out-host", "out-auto");
    let auto = write_config(dir.path(), &text);
    let record = run_quietly(&auto).unwrap();
    assert_same_tables(&host, &dir.path().join("out-auto"));
    assert_eq!(
        record.provenance.layers[0].reduced_in,
        layerwise::plan::ReduceMode::Host
    );
}
