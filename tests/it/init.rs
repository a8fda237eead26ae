//! `layerwise init MODEL IMAGES`: the starter config picks the study's layers, sizes
//! `[preprocess]` from the model, and `check` takes it as it is.

use std::path::{Path, PathBuf};

use crate::common::*;

/// `layerwise init MODEL IMAGES --out FILE`, run in `dir`; the config written.
fn init(dir: &Path, model: &Path, images: &Path, out: &str) -> layerwise::config::Config {
    let printed = succeeded(
        layerwise()
            .arg("init")
            .arg(model)
            .arg(images)
            .args(["--out", out])
            .current_dir(dir),
    );
    assert!(
        printed.starts_with(&format!(
            "wrote {out}: check it with `layerwise check {out}`\n"
        )),
        "{printed}"
    );
    let text = std::fs::read_to_string(dir.join(out)).unwrap();
    layerwise::config::Config::from_toml(&text).unwrap()
}

/// `layerwise check FILE` in `dir` exits 0.
fn checks(dir: &Path, config: &str) {
    succeeded(
        layerwise()
            .args(["check", config, "--limit", "4"])
            .current_dir(dir),
    );
}

/// The layers' tensors of a config.
fn tensors(config: &layerwise::config::Config) -> Vec<String> {
    config.layers.iter().map(|l| l.tensor.clone()).collect()
}

/// A folder of four images in two class folders.
fn images(dir: &Path) -> PathBuf {
    let images = dir.join("photos");
    write_images(
        &images,
        &[
            ("a/1.png", 20, 16),
            ("a/2.png", 16, 20),
            ("b/3.png", 24, 24),
            ("b/4.png", 9, 12),
        ],
    );
    images
}

#[test]
fn the_demo_models_starter_picks_its_first_and_last_conv_layers_after_their_relus() {
    let dir = tempfile::tempdir().unwrap();
    let config = init(
        dir.path(),
        &demo().join("models/demo_vgg.onnx"),
        &demo().join("images"),
        "study.toml",
    );
    assert_eq!(
        tensors(&config),
        ["block1_conv1", "block5_conv3", "predictions"]
    );
    let names: Vec<&str> = config
        .layers
        .iter()
        .filter_map(|l| l.name.as_deref())
        .collect();
    assert_eq!(names, ["first_conv", "last_conv", "output"]);
    assert_eq!(config.layers[1].top_k, Some(16));
    assert_eq!(config.input.label, layerwise::config::LabelSource::Parent);
    assert_eq!(config.preprocess.size, Some([224, 224]));
    checks(dir.path(), "study.toml");
}

#[test]
fn starters_follow_each_models_input_and_architecture() {
    let dir = tempfile::tempdir().unwrap();
    images(dir.path());
    let torch = root().join("tests/models/torch");
    let cases: &[(PathBuf, &[&str], [u32; 2], &str)] = &[
        (
            models().join("tiny_nhwc.onnx"),
            &["conv1", "conv2", "probs"],
            [8, 8],
            "NHWC",
        ),
        (
            models().join("tiny_symbolic.onnx"),
            &["conv1", "conv2", "probs"],
            [224, 224],
            "NCHW",
        ),
        (
            models().join("tiny_uint8.onnx"),
            &["conv1", "conv2", "probs"],
            [8, 8],
            "NHWC",
        ),
        (
            models().join("tiny_vit.onnx"),
            &["block0", "block1", "predictions"],
            [8, 8],
            "NCHW",
        ),
        (
            models().join("tiny_vit_reg.onnx"),
            &["block0", "block1"],
            [8, 8],
            "NCHW",
        ),
        (
            models().join("tiny_vit_seq.onnx"),
            &["b0/residual2", "b1/residual2"],
            [8, 8],
            "NCHW",
        ),
        (
            torch.join("cnn_dynamic.onnx"),
            &[
                "/features/features.1/Relu_output_0",
                "/features/features.7/Relu_output_0",
                "probs",
            ],
            [224, 224],
            "NCHW",
        ),
        (
            torch.join("cnn_dynamo.onnx"),
            &["relu", "relu_2", "probs"],
            [40, 48],
            "NCHW",
        ),
    ];
    for (i, (model, want, size, layout)) in cases.iter().enumerate() {
        let out = format!("configs/{i}.toml");
        std::fs::create_dir_all(dir.path().join("configs")).unwrap();
        let config = init(dir.path(), model, Path::new("photos"), &out);
        assert_eq!(tensors(&config), *want, "{}", model.display());
        assert_eq!(config.preprocess.size, Some(*size), "{}", model.display());
        assert_eq!(
            format!("{:?}", config.preprocess.layout),
            *layout,
            "{}",
            model.display()
        );
        let uint8 = model.ends_with("tiny_uint8.onnx");
        assert_eq!(
            config.preprocess.mean.is_none(),
            uint8,
            "{}",
            model.display()
        );
        // Paths are taken from the config's folder.
        assert_eq!(config.input.root.as_deref(), Some(Path::new("../photos")));
        checks(dir.path(), &out);
    }
}

#[test]
fn init_mistakes_exit_2_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    images(dir.path());
    let model = models().join("tiny_nchw.onnx");
    let run = |args: &[&str]| {
        let out = layerwise()
            .arg("init")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let model_arg = model.to_str().unwrap();
    let (code, err) = run(&[model_arg, "nowhere"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "error: nowhere: not a folder; `layerwise init MODEL IMAGES` takes the folder of \
             images to study"
        ),
        "{err}"
    );
    std::fs::write(dir.path().join("taken.toml"), "kept").unwrap();
    let (code, err) = run(&[model_arg, "photos", "--out", "taken.toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "error: taken.toml exists and is left as it is: give --out another name, or remove it"
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken.toml")).unwrap(),
        "kept"
    );
    let script = "import onnx, sys\nfrom onnx import helper, TensorProto as T\n\
        g = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'flat',\n\
        \x20   [helper.make_tensor_value_info('x', T.FLOAT, ['batch', 768])],\n\
        \x20   [helper.make_tensor_value_info('y', T.FLOAT, ['batch', 768])])\n\
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]), sys.argv[1])\n";
    let flat = dir.path().join("flat.onnx");
    succeeded(
        std::process::Command::new(python())
            .args(["-c", script])
            .arg(&flat),
    );
    let (code, err) = run(&[flat.to_str().unwrap(), "photos"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "has no image input of rank 4, [N, 3, H, W] or [N, H, W, 3] (its inputs: `x`)"
        ),
        "{err}"
    );
    let identity = models().join("identity_nchw.onnx");
    let (code, err) = run(&[identity.to_str().unwrap(), "photos"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "has neither a convolution after its input nor a transformer block over a grid of \
             patches, so no layer can be chosen for you; list its tensors with `layerwise layers \
             MODEL --shapes` and name them in `[[layers]] tensor`"
        ),
        "{err}"
    );
}
