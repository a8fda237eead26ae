//! Models exported by PyTorch itself (`tests/models/export_torch.py`, run where PyTorch is
//! installed; the exports and PyTorch's own activations are checked in under
//! `tests/models/torch/`): the TorchScript exporter with symbolic batch, height and width, the
//! torch.export-based exporter, and a fixed batch of 1. The same selectors find the same
//! tensors in each, and layerwise's statistics, maps and vectors equal PyTorch's forward pass.

use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

fn torch_dir() -> PathBuf {
    root().join("tests/models/torch")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(torch_dir().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (layer name, selector, kept channel) of the probes `export_torch.py` recorded.
const PROBES: [(&str, &str, Option<u32>); 4] = [
    ("conv0", "op:Conv#0", Some(1)),
    ("relu0", "op:Relu#0", Some(1)),
    ("relu_last", "op:Relu#-1", Some(3)),
    ("probs", "op:Softmax#0", None),
];

/// A config over the exported pictures with torchvision's ImageNet preprocessing.
fn config(dir: &Path, model: &str) -> PathBuf {
    let mut layers = String::new();
    for (name, selector, keep) in PROBES {
        layers += &format!("[[layers]]\nname = \"{name}\"\ntensor = \"{selector}\"\n");
        if let Some(channel) = keep {
            layers += &format!("keep = [{channel}]\n");
        }
    }
    let text = format!(
        "name = \"torch\"\n\
         [input]\nroot = {:?}\n\
         [model]\npath = {:?}\n\
         [preprocess]\nsize = [40, 48]\nlayout = \"NCHW\"\nchannel_order = \"RGB\"\n\
         scale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\
         [run]\nbatch_size = 2\n\
         {layers}\
         [output]\ndir = \"out\"\n",
        torch_dir().join("images").to_str().unwrap(),
        torch_dir().join(model).to_str().unwrap(),
    );
    write_config(dir, &text)
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-4 + 1e-4 * want.abs(),
        "{what}: layerwise {got}, PyTorch {want}"
    );
}

/// Runs `model` and compares every stored value with PyTorch's; returns the tensors the
/// selectors chose, in probe order.
fn matches_pytorch(model: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let record = run_quietly(&config(dir.path(), model)).unwrap();
    let out = dir.path().join("out");
    let reference = reference();
    let images = read_table(&out, "images");
    assert_eq!(
        strings(&images, "path"),
        [Some("a.png".to_owned()), Some("b.png".to_owned())]
    );
    assert_eq!(
        strings(&images, "status"),
        [Some("ok"), Some("ok")].map(|s| s.map(String::from))
    );

    let stats = read_table(&out, "stats");
    let (ids, layers, channels) = (
        u64s(&stats, "image_id"),
        strings(&stats, "layer"),
        u32s(&stats, "channel"),
    );
    let (heights, widths) = (u32s(&stats, "height"), u32s(&stats, "width"));
    let columns = ["mean", "std", "min", "max", "frac_positive"].map(|c| f32s(&stats, c));
    let mut compared = 0;
    for row in 0..ids.len() {
        let layer = layers[row].as_deref().unwrap();
        let (_, selector, _) = PROBES.iter().find(|p| p.0 == layer).unwrap();
        let probe = &reference["probes"][selector];
        let shape = probe["shape"].as_array().unwrap();
        assert_eq!(heights[row] as u64, shape[1].as_u64().unwrap(), "{layer}");
        assert_eq!(widths[row] as u64, shape[2].as_u64().unwrap(), "{layer}");
        let want = &probe["per_image"][ids[row] as usize]["channels"][channels[row] as usize];
        let what = format!("{layer} image {} channel {}", ids[row], channels[row]);
        for (name, values) in ["mean", "std", "min", "max"].iter().zip(&columns) {
            close(
                values[row].into(),
                want[name].as_f64().unwrap(),
                &format!("{what} {name}"),
            );
        }
        // A value within rounding of 0 may fall on either side of it.
        let pixels = f64::from(heights[row] * widths[row]);
        let positive = want["frac_positive"].as_f64().unwrap();
        assert!(
            (f64::from(columns[4][row]) - positive).abs() <= 2.0 / pixels,
            "{what} frac_positive"
        );
        compared += 1;
    }
    assert_eq!(
        compared,
        2 * (8 + 8 + 16),
        "every channel of the three maps layers"
    );

    let maps = read_table(&out, "maps");
    let (ids, layers, channels) = (
        u64s(&maps, "image_id"),
        strings(&maps, "layer"),
        u32s(&maps, "channel"),
    );
    for (row, values) in lists(&maps).iter().enumerate() {
        let layer = layers[row].as_deref().unwrap();
        let (_, selector, keep) = PROBES.iter().find(|p| p.0 == layer).unwrap();
        assert_eq!(Some(channels[row]), *keep);
        let want = &reference["probes"][selector]["per_image"][ids[row] as usize]["map"];
        let want = want.as_array().unwrap();
        assert_eq!(values.len(), want.len(), "{layer}");
        for (i, (got, want)) in values.iter().zip(want).enumerate() {
            close(
                (*got).into(),
                want.as_f64().unwrap(),
                &format!("{layer} value {i}"),
            );
        }
    }
    assert_eq!(ids.len(), 2 * 3);

    let vectors = read_table(&out, "vectors");
    for (row, values) in lists(&vectors).iter().enumerate() {
        let want = &reference["probes"]["op:Softmax#0"]["per_image"][row]["vector"];
        let want: Vec<f32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_close(values, &want, "probs");
    }
    record
        .provenance
        .layers
        .iter()
        .map(|l| l.tensor.clone())
        .collect()
}

#[test]
fn torchscript_export_with_symbolic_batch_height_and_width() {
    assert_eq!(
        matches_pytorch("cnn_dynamic.onnx"),
        [
            "/features/features.0/Conv_output_0",
            "/features/features.1/Relu_output_0",
            "/features/features.7/Relu_output_0",
            "probs"
        ]
    );
}

#[test]
fn torch_export_based_exporter() {
    assert_eq!(
        matches_pytorch("cnn_dynamo.onnx"),
        ["conv2d", "relu", "relu_2", "probs"]
    );
}

#[test]
fn torchscript_export_with_a_fixed_batch_of_one() {
    assert_eq!(
        matches_pytorch("cnn_batch1.onnx"),
        [
            "/features/features.0/Conv_output_0",
            "/features/features.1/Relu_output_0",
            "/features/features.7/Relu_output_0",
            "probs"
        ]
    );
}
