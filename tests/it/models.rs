//! Models of every shape the exporters produce: NHWC, uint8 and symbolic-size inputs, external
//! data, rank-3 tensors, several outputs, and the selectors that pick their tensors.

use std::path::{Path, PathBuf};

use crate::common::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type};
use arrow_array::{Array, RecordBatch};

const IMAGES: [(&str, u32, u32); 5] = [
    ("a/1.png", 8, 8),
    ("a/2.jpg", 13, 9),
    ("b/3.png", 20, 20),
    ("b/4.png", 6, 11),
    ("b/5.jpg", 8, 8),
];

/// Writes the images once and a config for `model_name` with `preprocess` and `layers`;
/// runs it and returns the output folder.
fn run(dir: &Path, tag: &str, model_name: &str, preprocess: &str, layers: &str) -> PathBuf {
    let config = config(dir, tag, model_name, preprocess, layers);
    run_quietly(&config).unwrap();
    dir.join(format!("out-{tag}"))
}

fn config(dir: &Path, tag: &str, model_name: &str, preprocess: &str, layers: &str) -> PathBuf {
    if !dir.join("images").exists() {
        write_images(&dir.join("images"), &IMAGES);
    }
    let text = format!(
        "name = \"{tag}\"\n[input]\nroot = \"images\"\n[model]\npath = \"{}\"\n\
         [preprocess]\n{preprocess}\n{layers}\n[output]\ndir = \"out-{tag}\"\n",
        model(model_name).display()
    );
    let path = dir.join(format!("{tag}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn plan_error(dir: &Path, model_name: &str, preprocess: &str, layers: &str) -> String {
    let config = config(dir, "err", model_name, preprocess, layers);
    let err = run_quietly(&config).unwrap_err();
    assert!(
        err.chain().any(|e| e.is::<layerwise::PlanError>()),
        "{err:#}"
    );
    format!("{err:#}")
}

fn layer(name: &str, tensor: &str, extra: &str) -> String {
    format!("[[layers]]\nname = \"{name}\"\ntensor = \"{tensor}\"\n{extra}\n")
}

fn stat(batch: &RecordBatch, column: &str) -> Vec<f32> {
    primitives::<Float32Type>(batch, column)
}

fn maps(batch: &RecordBatch) -> Vec<Vec<f32>> {
    let values = batch.column_by_name("values").unwrap().as_list::<i32>();
    (0..values.len())
        .map(|i| {
            values
                .value(i)
                .as_primitive::<Float32Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// The stats columns of two runs agree.
fn assert_same_stats(a: &Path, b: &Path) {
    let (a, b) = (read_table(a, "stats"), read_table(b, "stats"));
    assert_eq!(a.num_rows(), b.num_rows());
    for column in ["mean", "std", "min", "max", "frac_positive"] {
        assert_close(&stat(&a, column), &stat(&b, column), column);
    }
}

const CONVS: &str = "[[layers]]\nname = \"conv1\"\ntensor = \"conv1\"\nkeep = [0]\n\
                     [[layers]]\nname = \"conv2\"\ntensor = \"conv2\"\nkeep = \"all\"\n";

#[test]
fn uint8_input_is_fed_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // The uint8 model scales by 1/255 inside; the float NHWC model is fed x / 255 by layerwise.
    let bytes = run(
        dir.path(),
        "u8",
        "tiny_uint8.onnx",
        "layout = \"NHWC\"",
        CONVS,
    );
    let floats = run(
        dir.path(),
        "f32",
        "tiny_nhwc.onnx",
        "layout = \"NHWC\"",
        CONVS,
    );
    assert_same_stats(&bytes, &floats);
    let err = plan_error(
        dir.path(),
        "tiny_uint8.onnx",
        "layout = \"NHWC\"\nscale = 1.0",
        CONVS,
    );
    assert!(
        err.contains("`preprocess.scale` is set, but model input `input` takes uint8 pixel bytes as they are; remove `scale`"),
        "{err}"
    );
}

#[test]
fn external_data_resolves_next_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let external = run(dir.path(), "ext", "tiny_external.onnx", "", CONVS);
    let inline = run(dir.path(), "inline", "tiny_nchw.onnx", "", CONVS);
    assert_same_stats(&external, &inline);
    // Without its data file, the model is refused with the file's name.
    let lonely = dir.path().join("lonely");
    std::fs::create_dir_all(&lonely).unwrap();
    std::fs::copy(
        model("tiny_external.onnx"),
        lonely.join("tiny_external.onnx"),
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.path().join("ext.toml"))
        .unwrap()
        .replace(
            &model("tiny_external.onnx").display().to_string(),
            &lonely.join("tiny_external.onnx").display().to_string(),
        );
    std::fs::write(dir.path().join("lonely.toml"), text).unwrap();
    let err = format!(
        "{:#}",
        run_quietly(&dir.path().join("lonely.toml")).unwrap_err()
    );
    assert!(
        err.contains(
            "keeps its weights in the external file `tiny_external.onnx.data`, which is not in"
        ) && err.contains("keep the .onnx file and its data files together"),
        "{err}"
    );
}

#[test]
fn symbolic_height_and_width_take_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "sym",
        "tiny_symbolic.onnx",
        "size = [12, 10]",
        CONVS,
    );
    let maps = read_table(&out, "maps");
    let (h, w) = (
        primitives::<UInt32Type>(&maps, "height"),
        primitives::<UInt32Type>(&maps, "width"),
    );
    assert_eq!((h[0], w[0]), (12, 10), "conv1");
    assert_eq!((h[1], w[1]), (6, 5), "conv2 (stride 2)");
    let err = plan_error(dir.path(), "tiny_symbolic.onnx", "", CONVS);
    assert!(err.contains("`preprocess.size` is needed: the height and width of model input `input` are not fixed"), "{err}");
}

#[test]
fn rank3_and_token_like_tensors_are_maps_of_one_column() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [
        layer("conv2", "conv2", "keep = \"all\""),
        layer("seq", "seq", "keep = \"all\""),
        layer("tokens", "tokens", "keep = \"all\"\nchannel_axis = 2"),
    ]
    .concat();
    let out = run(dir.path(), "r3", "tiny_rank3.onnx", "", &layers);
    let stats = read_table(&out, "stats");
    let all_maps = read_table(&out, "maps");
    let layer_of = |b: &RecordBatch| -> Vec<String> {
        let c = b.column_by_name("layer").unwrap().as_string::<i32>();
        (0..c.len()).map(|i| c.value(i).to_owned()).collect()
    };
    let heights = primitives::<UInt32Type>(&all_maps, "height");
    let widths = primitives::<UInt32Type>(&all_maps, "width");
    let layers_of_maps = layer_of(&all_maps);
    let values = maps(&all_maps);
    // Per image: 6 conv2 maps (4 x 4), 6 seq maps (16 x 1), 6 tokens maps (16 x 1).
    assert_eq!(values.len(), 5 * 18);
    for image in 0..5 {
        for c in 0..6 {
            let row = |k: usize| image * 18 + k * 6 + c;
            assert_eq!((heights[row(0)], widths[row(0)]), (4, 4));
            assert_eq!(layers_of_maps[row(1)], "seq");
            assert_eq!((heights[row(1)], widths[row(1)]), (16, 1));
            assert_eq!((heights[row(2)], widths[row(2)]), (16, 1));
            // seq is conv2 flattened; tokens is seq transposed, its channels on axis 2.
            assert_eq!(values[row(1)], values[row(0)], "seq channel {c}");
            assert_eq!(values[row(2)], values[row(1)], "tokens channel {c}");
        }
    }
    let means = stat(&stats, "mean");
    assert_eq!(means.len(), 5 * 18);
    assert_eq!(
        means[6..12],
        means[0..6],
        "seq and conv2 have the same per-channel means"
    );
    // An int64 tensor is refused with its type.
    let err = plan_error(
        dir.path(),
        "tiny_rank3.onnx",
        "",
        &layer("shape", "input_shape", ""),
    );
    assert!(
        err.contains(
            "tensor `input_shape` holds int64 values; layerwise extracts float32 activations"
        ),
        "{err}"
    );
    assert!(err.contains("`layerwise layers "), "{err}");
}

#[test]
fn op_selectors_pick_the_first_and_last_relu() {
    let dir = tempfile::tempdir().unwrap();
    let layers =
        "[[layers]]\ntensor = \"op:Relu#0\"\nkeep = [0]\n[[layers]]\ntensor = \"op:Relu#-1\"\n\
                  [[layers]]\nname = \"raw_{tensor}\"\ntensor = \"conv?/conv\"\n";
    let out = run(dir.path(), "ops", "tiny_nchw.onnx", "", layers);
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let picked: Vec<(String, String, String)> = run["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap().to_owned();
            (s("name"), s("tensor"), s("selector"))
        })
        .collect();
    let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        picked,
        [
            t("conv1", "conv1", "op:Relu#0"),
            t("conv2", "conv2", "op:Relu#-1"),
            t("raw_conv1/conv", "conv1/conv", "conv?/conv"),
            t("raw_conv2/conv", "conv2/conv", "conv?/conv"),
        ]
    );
    // 5 images x (4 + 6 + 4 + 6) channels.
    assert_eq!(read_table(&out, "stats").num_rows(), 100);
}

#[test]
fn a_tensor_that_is_already_an_output_and_several_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let both = [
        layer("tokens", "tokens", ""),
        layer("probs", "probs", ""),
        layer("c1", "conv1", ""),
    ]
    .concat();
    let out = run(dir.path(), "outs", "tiny_rank3.onnx", "", &both);
    assert_eq!(read_table(&out, "vectors").num_rows(), 5);
    // tokens [N, 16, 6] with the default channel_axis 1: 16 channels of 6 x 1; conv1: 4.
    assert_eq!(read_table(&out, "stats").num_rows(), 5 * (16 + 4));
}

#[test]
fn top_k_keeps_the_best_maps_of_each_part() {
    let dir = tempfile::tempdir().unwrap();
    let layers = "[run]\npart_size = 3\n[[layers]]\nname = \"conv1\"\ntensor = \"conv1\"\nkeep = \"all\"\ntop_k = 2\n\
                  [[layers]]\nname = \"conv2\"\ntensor = \"conv2\"\ntop_k = 1\ntop_by = \"mean\"\n";
    let out = run(dir.path(), "top", "tiny_nchw.onnx", "", layers);
    let stats = read_table(&out, "stats");
    let maps_table = read_table(&out, "maps");
    let top = read_table(&out, "top");
    let column = |b: &RecordBatch, c: &str| -> Vec<String> {
        let a = b.column_by_name(c).unwrap().as_string::<i32>();
        (0..a.len()).map(|i| a.value(i).to_owned()).collect()
    };
    let (s_layer, s_id, s_channel) = (
        column(&stats, "layer"),
        primitives::<arrow_array::types::UInt64Type>(&stats, "image_id"),
        primitives::<UInt32Type>(&stats, "channel"),
    );
    let (s_max, s_mean) = (stat(&stats, "max"), stat(&stats, "mean"));
    let m_values = maps(&maps_table);
    let (m_id, m_channel) = (
        primitives::<arrow_array::types::UInt64Type>(&maps_table, "image_id"),
        primitives::<UInt32Type>(&maps_table, "channel"),
    );
    // The reference: per part (images 0-2, 3-4), layer and channel, rank the stats rows.
    let mut want = Vec::new();
    for part in [0..3u64, 3..5] {
        for (layer, channels, k, by_mean) in [("conv1", 4u32, 2, false), ("conv2", 6, 1, true)] {
            for c in 0..channels {
                let mut scored: Vec<(f32, u64)> = (0..s_id.len())
                    .filter(|&r| {
                        s_layer[r] == layer && s_channel[r] == c && part.contains(&s_id[r])
                    })
                    .map(|r| (if by_mean { s_mean[r] } else { s_max[r] }, s_id[r]))
                    .collect();
                scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                for (rank, (score, id)) in scored.into_iter().take(k).enumerate() {
                    want.push((layer.to_owned(), c, rank as u32, id, score));
                }
            }
        }
    }
    let got: Vec<(String, u32, u32, u64, f32)> = (0..top.num_rows())
        .map(|r| {
            (
                column(&top, "layer")[r].clone(),
                primitives::<UInt32Type>(&top, "channel")[r],
                primitives::<UInt32Type>(&top, "rank")[r],
                primitives::<arrow_array::types::UInt64Type>(&top, "image_id")[r],
                stat(&top, "score")[r],
            )
        })
        .collect();
    assert_eq!(got, want);
    // The kept maps are the stored maps of those images (conv1 keeps every channel).
    let top_values = maps(&top);
    for (r, (layer, c, _, id, _)) in got.iter().enumerate() {
        if layer == "conv1" {
            let m = (0..m_id.len())
                .find(|&m| m_id[m] == *id && m_channel[m] == *c && m_values[m].len() == 64)
                .unwrap();
            assert_eq!(
                top_values[r], m_values[m],
                "top map of image {id} channel {c}"
            );
        } else {
            assert_eq!(top_values[r].len(), 16, "conv2 maps are 4 x 4");
        }
    }
    assert_eq!(part_files(&out, "top").len(), 2);
}
