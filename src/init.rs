//! `layerwise init MODEL IMAGES`: a starter config for a model and an image folder.
//!
//! The model is read and probed once, on a zero input of the size its input declares (224 x 224
//! where it is symbolic), so that the layers chosen have their real shapes: a CNN's first and
//! last convolutions, each taken after its activation when one follows (through a
//! `BatchNormalization` too; SiLU's `Sigmoid` and `Mul` included), or a transformer's residual
//! stream after its first and last blocks; and the model's output when it is a vector. The
//! `[preprocess]` block follows the input's layout, size and element type. Every key is
//! explained in a comment, and the text is parsed as a config before it is returned, so `check`
//! takes it as it is.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::config::Config;
use crate::error::PlanError;
use crate::model::inspect::{self, Listing, ProbeInput, TensorRow};
use crate::model::runtime::{self, SearchPath};
use crate::model::{ElementType, Graph, ModelFile, Node, TensorInfo};
use crate::plan::InputType;

/// The size fed to a model whose input height and width are symbolic.
const DEFAULT_SIZE: [usize; 2] = [224, 224];

/// Operators taken as a convolution's activation when they are its only consumer.
const ACTIVATIONS: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Sigmoid",
    "Tanh",
    "Gelu",
    "Mish",
    "Softplus",
];

/// The model's image input, as the starter feeds it.
#[derive(Debug, Clone)]
struct ImageInput {
    /// The graph input's name.
    name: String,
    /// Whether it is `[N, H, W, 3]` rather than `[N, 3, H, W]`.
    nhwc: bool,
    /// `[height, width]` fed.
    size: [usize; 2],
    /// Whether the model declares that size (else [`DEFAULT_SIZE`], to be checked).
    declared_size: bool,
    /// Whether it takes `uint8` pixels (the model normalises itself).
    uint8: bool,
    /// How many inputs the model has (a `model.input` line is written when more than one).
    of: usize,
}

/// A layer of the starter config.
#[derive(Debug, Clone)]
struct Choice {
    /// The layer's name in the config.
    name: &'static str,
    /// The tensor.
    tensor: String,
    /// Why this tensor: a comment.
    why: String,
    /// Its probed shape, as `layerwise layers` shows it.
    shape: String,
    /// Its channels, for a map layer (`None` for a vector).
    channels: Option<usize>,
    /// Whether it is the study's last map layer (its best images are kept).
    last: bool,
}

/// The starter config for the model at `model` and the images under `images`, as TOML text.
/// Paths in it are relative to `config_dir`, the folder the config will be saved in.
pub fn starter(model: &Path, images: &Path, config_dir: &Path) -> Result<String, PlanError> {
    let file = ModelFile::read(model).map_err(|problem| PlanError::Model {
        path: model.to_owned(),
        problem,
    })?;
    let input = image_input(&file)?;
    let graph = file.graph.clone();
    let runtime = runtime::load(&SearchPath::standard(None))?;
    let probe = ProbeInput {
        name: input.name.clone(),
        shape: match input.nhwc {
            true => vec![1, input.size[0], input.size[1], 3],
            false => vec![1, 3, input.size[0], input.size[1]],
        },
        input_type: if input.uint8 {
            InputType::Uint8
        } else {
            InputType::Float32
        },
    };
    let listing = inspect::list(file, Some((runtime, probe)), 0)?;
    let layers = choose_layers(&graph, &listing).ok_or_else(|| PlanError::Model {
        path: model.to_owned(),
        problem: "has neither a convolution after its input nor a transformer block over a grid \
                  of patches, so no layer can be chosen for you; list its tensors with \
                  `layerwise layers MODEL --shapes` and name them in `[[layers]] tensor`"
            .into(),
    })?;
    let paths = Paths {
        model: relative_to(model, config_dir),
        images: relative_to(images, config_dir),
        labelled: has_subfolders(images),
    };
    let text = render(&stem(model), &paths, &input, &layers);
    Config::from_toml(&text).map_err(|problem| PlanError::Model {
        path: model.to_owned(),
        problem: format!("the starter config written for it does not parse ({problem}): a bug"),
    })?;
    Ok(text)
}

/// The model's image input: its first input of rank 4.
fn image_input(file: &ModelFile) -> Result<ImageInput, PlanError> {
    let inputs = &file.graph.inputs;
    let error = |problem: String| PlanError::Model {
        path: file.path.clone(),
        problem,
    };
    let input = inputs
        .iter()
        .find(|i| layout_of(i).is_some())
        .ok_or_else(|| {
            error(format!(
                "has no image input of rank 4, [N, 3, H, W] or [N, H, W, 3] (its inputs: {})",
                inputs
                    .iter()
                    .map(|i| format!("`{}`", i.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let (nhwc, size) = layout_of(input).expect("found by its layout");
    Ok(ImageInput {
        name: input.name.clone(),
        nhwc,
        size: size.unwrap_or(DEFAULT_SIZE),
        declared_size: size.is_some(),
        uint8: input.element_type == Some(ElementType::UINT8),
        of: inputs.len(),
    })
}

/// Whether a rank-4 input is NHWC (its last axis holds 3; otherwise it is taken as NCHW, as
/// most exports are, their channel axis symbolic or not), and its `[H, W]` when declared;
/// `None` for an input of another rank.
fn layout_of(input: &TensorInfo) -> Option<(bool, Option<[usize; 2]>)> {
    let dims = input.shape.as_deref()?;
    let [_, a, b, c] = dims else {
        return None;
    };
    let size = |h: &crate::model::Dim, w: &crate::model::Dim| Some([h.fixed()?, w.fixed()?]);
    let nhwc = c.fixed() == Some(3) && a.fixed() != Some(3);
    Some(match nhwc {
        true => (true, size(a, b)),
        false => (false, size(b, c)),
    })
}

/// The layers of the study: first and last conv (after their activations) or first and last
/// transformer block, then the model's output when it is a vector.
fn choose_layers(graph: &Graph, listing: &Listing) -> Option<Vec<Choice>> {
    let rows: HashMap<&str, &TensorRow> = listing
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut layers = transformer_blocks(graph, listing).or_else(|| convolutions(graph, &rows))?;
    if let Some(output) = vector_output(graph, &rows) {
        layers.push(output);
    }
    Some(layers)
}

/// The dimensions of a probed shape, `[1, 64, 224, 224]`.
fn dims(row: &TensorRow) -> Vec<usize> {
    row.shape
        .trim_matches(['[', ']'])
        .split(", ")
        .filter_map(|d| d.parse().ok())
        .collect()
}

/// The first and last convolutions with a rank-4 output, each after its activation.
fn convolutions(graph: &Graph, rows: &HashMap<&str, &TensorRow>) -> Option<Vec<Choice>> {
    let convs: Vec<&Node> = graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "Conv")
        .filter(|n| {
            rows.get(n.outputs[0].as_str())
                .is_some_and(|r| dims(r).len() == 4)
        })
        .collect();
    let (first, last) = (convs.first()?, convs.last()?);
    let choice = |node: &Node, name: &'static str, which: &str, last: bool| {
        let (tensor, after) = after_activation(graph, &node.outputs[0]);
        let row = rows.get(tensor.as_str())?;
        let d = dims(row);
        Some(Choice {
            name,
            why: format!("the {which} convolution ({}){after}", shown_node(node)),
            shape: row.shape.clone(),
            channels: Some(d[1]),
            tensor,
            last,
        })
    };
    if std::ptr::eq(*first, *last) {
        return Some(vec![choice(first, "conv", "only", true)?]);
    }
    Some(vec![
        choice(first, "first_conv", "first", false)?,
        choice(last, "last_conv", "last", true)?,
    ])
}

/// A node as a comment names it: its name, else its first output.
fn shown_node(node: &Node) -> String {
    match node.name.is_empty() {
        true => format!("`{}`", node.outputs[0]),
        false => format!("node `{}`", node.name),
    }
}

/// The tensor that holds `tensor` after its activation, and what was followed (a comment
/// fragment): through a lone `BatchNormalization`, then a lone activation or SiLU's
/// `Sigmoid` + `Mul`; `tensor` itself when none follows.
fn after_activation(graph: &Graph, tensor: &str) -> (String, String) {
    let consumers: Vec<&Node> = graph
        .nodes
        .iter()
        .filter(|n| n.inputs.iter().any(|i| i == tensor))
        .collect();
    match consumers.as_slice() {
        [one] if one.op_type == "BatchNormalization" => {
            let (t, after) = after_activation(graph, &one.outputs[0]);
            (t, format!(", after BatchNormalization{after}"))
        }
        [one] if one.op_type == "Add" => {
            let (t, after) = after_activation(graph, &one.outputs[0]);
            match after.is_empty() {
                true => (tensor.to_owned(), String::new()),
                false => (t, format!(", after the residual Add{after}")),
            }
        }
        [one] if ACTIVATIONS.contains(&one.op_type.as_str()) => (
            one.outputs[0].clone(),
            format!(", after its {}", one.op_type),
        ),
        [a, b] => match silu(a, b).or_else(|| silu(b, a)) {
            Some(mul) => (mul.outputs[0].clone(), ", after its SiLU".into()),
            None => (tensor.to_owned(), String::new()),
        },
        _ => (tensor.to_owned(), String::new()),
    }
}

/// `mul` when `sigmoid` and `mul` are SiLU's two nodes (`x * Sigmoid(x)`).
fn silu<'g>(sigmoid: &'g Node, mul: &'g Node) -> Option<&'g Node> {
    (sigmoid.op_type == "Sigmoid"
        && mul.op_type == "Mul"
        && mul.inputs.iter().any(|i| *i == sigmoid.outputs[0]))
    .then_some(mul)
}

/// The residual stream after the first and last transformer blocks. The stream is the longest
/// chain of `Add` nodes over the image's patches, each taking the one before it directly, where
/// that one also feeds something else (the next block's normalisation: a bias or a branch's
/// last `Add` feeds only its residual `Add`). A pre-norm block adds twice (attention, MLP), so
/// a block ends at every second `Add` of the chain, counted from its end (a chain of odd length
/// starts with the position embedding's).
fn transformer_blocks(graph: &Graph, listing: &Listing) -> Option<Vec<Choice>> {
    let chain = residual_chain(graph, listing);
    let first = match chain.len() {
        0 => return None,
        1 | 2 => chain[chain.len() - 1],
        n => chain[1 + n % 2],
    };
    let last = *chain.last()?;
    let choice = |row: &TensorRow, name: &'static str, which: &str, last: bool| Choice {
        name,
        why: format!(
            "the residual stream after the {which} transformer block: {}",
            row.tokens.clone().unwrap_or_default()
        ),
        tensor: row.name.clone(),
        shape: row.shape.clone(),
        channels: dims(row).last().copied(),
        last,
    };
    if std::ptr::eq(first, last) {
        return Some(vec![choice(first, "block", "only", true)]);
    }
    Some(vec![
        choice(first, "first_block", "first", false),
        choice(last, "last_block", "last", true),
    ])
}

/// The residual stream's `Add` tensors, in graph order (see [`transformer_blocks`]).
fn residual_chain<'l>(graph: &Graph, listing: &'l Listing) -> Vec<&'l TensorRow> {
    let producers: HashMap<&str, &Node> = graph
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut consumers: HashMap<&str, usize> = HashMap::new();
    for input in graph.nodes.iter().flat_map(|n| &n.inputs) {
        *consumers.entry(input.as_str()).or_default() += 1;
    }
    let adds: Vec<&TensorRow> = listing
        .tensors
        .iter()
        .filter(|t| t.tokens.is_some() && t.op == "Add")
        .collect();
    let at: HashMap<&str, usize> = adds
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    // For each Add, the stream Add it takes (an earlier one, of its shape, that feeds more).
    let previous: Vec<Option<usize>> = adds
        .iter()
        .map(|t| {
            producers[t.name.as_str()].inputs.iter().find_map(|input| {
                let feeds_more = consumers.get(input.as_str()).copied().unwrap_or(0) >= 2;
                let i = *at.get(through_copies(&producers, input))?;
                (feeds_more && adds[i].shape == t.shape).then_some(i)
            })
        })
        .collect();
    let mut length = vec![0usize; adds.len()];
    for i in 0..adds.len() {
        length[i] = previous[i].map_or(1, |p| length[p] + 1);
    }
    let Some(mut end) = (0..adds.len()).max_by_key(|&i| (length[i], std::cmp::Reverse(i))) else {
        return Vec::new();
    };
    let mut chain = vec![adds[end]];
    while let Some(p) = previous[end] {
        chain.push(adds[p]);
        end = p;
    }
    chain.reverse();
    chain
}

/// The tensor `tensor` is a copy of, through `Cast`, `Identity` and `Transpose` nodes (OpenAI
/// CLIP's LayerNorm casts the stream it also adds to; a sequence-first model transposes it
/// between blocks; the chain's shape check keeps what is linked alike).
fn through_copies<'g>(producers: &HashMap<&str, &'g Node>, tensor: &'g str) -> &'g str {
    let mut tensor = tensor;
    while let Some(node) = producers.get(tensor) {
        match (node.op_type.as_str(), node.inputs.first()) {
            ("Cast" | "Identity" | "Transpose", Some(input)) => tensor = input,
            _ => break,
        }
    }
    tensor
}

/// The model's output when it is one vector per image (`[N, K]`: class scores, an embedding).
fn vector_output(graph: &Graph, rows: &HashMap<&str, &TensorRow>) -> Option<Choice> {
    let [output] = graph.outputs.as_slice() else {
        return None;
    };
    let row = rows.get(output.name.as_str())?;
    let [1, k] = dims(row)[..] else {
        return None;
    };
    Some(Choice {
        name: "output",
        tensor: output.name.clone(),
        why: format!("the model's output, {k} values per image, to the `vectors` table"),
        shape: row.shape.clone(),
        channels: None,
        last: false,
    })
}

/// The config's paths, as written.
struct Paths {
    /// The model, relative to the config's folder.
    model: PathBuf,
    /// The image folder, relative to the config's folder.
    images: PathBuf,
    /// Whether the folder has subfolders (their names become labels).
    labelled: bool,
}

/// The config's text.
fn render(name: &str, paths: &Paths, input: &ImageInput, layers: &[Choice]) -> String {
    let mut out = String::from(
        "# A starter config written by `layerwise init`: check it with `layerwise check FILE`,\n\
         # then run it with `layerwise run FILE`. Every key is in docs/config.md; relative paths\n\
         # are taken from this file's folder.\n",
    );
    out += &line(
        "name",
        &quoted(name),
        "the experiment, recorded in every output",
    );
    out += &input_section(paths);
    out += &model_section(paths, input);
    out += &preprocess_section(input);
    out += "\n[run]\n";
    out += &line("batch_size", "8", "images per model call");
    out += &line("threads", "0", "0: every core");
    for layer in layers {
        out += &layer_section(layer);
    }
    out += "\n[output]\n";
    out += &line(
        "dir",
        &quoted(&format!("out/{name}")),
        "the run's tables; `layerwise report` writes the atlas in it",
    );
    out
}

/// `key = value`, its comment aligned as in the shipped configs.
fn line(key: &str, value: &str, comment: &str) -> String {
    let assignment = format!("{key} = {value}");
    match comment.is_empty() {
        true => format!("{assignment}\n"),
        false => format!("{assignment:<36} # {comment}\n"),
    }
}

/// A section's header line, with its comment.
fn header(header: &str, comment: &str) -> String {
    format!("\n{header:<36} # {comment}\n")
}

/// `[input]`.
fn input_section(paths: &Paths) -> String {
    let mut out = header("[input]", "an image folder; docs/datasets.md for shards");
    out += &line(
        "root",
        &quoted(&paths.images.display().to_string()),
        "walked recursively, files sorted by path",
    );
    out += &match paths.labelled {
        true => line(
            "label",
            "\"parent\"",
            "each image's folder name is its label",
        ),
        false => line(
            "label",
            "\"none\"",
            "no subfolders, no labels (\"parent\": folder names)",
        ),
    };
    out
}

/// `[model]`.
fn model_section(paths: &Paths, input: &ImageInput) -> String {
    let mut out = String::from("\n[model]\n");
    out += &line("path", &quoted(&paths.model.display().to_string()), "");
    if input.of > 1 {
        let of = format!("the image input, of the model's {}", input.of);
        out += &line("input", &quoted(&input.name), &of);
    }
    out
}

/// `[preprocess]`: the input's layout and size; ImageNet's normalisation for a float input.
fn preprocess_section(input: &ImageInput) -> String {
    let [h, w] = input.size;
    let size_note = match input.declared_size {
        true => "the model's input size".to_owned(),
        false => "symbolic in the model: set the size it was trained at".to_owned(),
    };
    let layout = match input.nhwc {
        true => "\"NHWC\"",
        false => "\"NCHW\"",
    };
    let mut out = header("[preprocess]", "how an image becomes the model's input");
    out += &line("size", &format!("[{h}, {w}]"), &size_note);
    out += &line(
        "resize",
        "\"shorter-side-crop\"",
        "keep the aspect ratio, crop the centre (\"stretch\": squash)",
    );
    out += &line("layout", layout, "as the model's input lies");
    out += &line("channel_order", "\"RGB\"", "\"BGR\" for Caffe-style models");
    if input.uint8 {
        out +=
            "# The model takes uint8 pixels and normalises them itself: no scale, mean or std.\n";
        return out;
    }
    out += "# torchvision's and timm's ImageNet normalisation, (pixel * scale - mean) / std: use your\n\
            # model's own (docs/models.md has it for common exporters; Keras' VGG16 is\n\
            # channel_order = \"BGR\", scale = 1.0, mean = [103.939, 116.779, 123.68], std = [1, 1, 1]).\n";
    out += &line("scale", "0.00392156862745098", "1 / 255");
    out += &line("mean", "[0.485, 0.456, 0.406]", "");
    out += &line("std", "[0.229, 0.224, 0.225]", "");
    out
}

/// One `[[layers]]` entry.
fn layer_section(layer: &Choice) -> String {
    let mut out = format!("\n[[layers]]\n# {}\n", layer.why);
    out += &line("name", &quoted(layer.name), "");
    out += &line("tensor", &quoted(&layer.tensor), &layer.shape);
    if let Some(channels) = layer.channels {
        let kept = channels.min(8);
        out += &line(
            "keep",
            &quoted(&format!("0..{kept}")),
            &format!(
                "maps stored per image: channels 0..{} (\"all\": all {channels})",
                kept - 1
            ),
        );
        if layer.last {
            out += &line(
                "top_k",
                "16",
                "each channel's 16 most exciting images, with their maps",
            );
        }
    }
    out
}

/// A TOML basic string: quotes and backslashes escaped, control characters as `\uXXXX`.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The model file's stem, as the experiment's name.
fn stem(model: &Path) -> String {
    model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "study".into())
}

/// Whether `folder` holds a subfolder.
fn has_subfolders(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

/// `path` as seen from the folder `base`, both made absolute from the current folder and
/// `.` and `..` resolved by name (a symbolic link stays as it was given).
pub fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (p, b) = (lexical(path), lexical(base));
    let (p, b): (Vec<Component>, Vec<Component>) =
        (p.components().collect(), b.components().collect());
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut relative: PathBuf = b[common..].iter().map(|_| Component::ParentDir).collect();
    relative.extend(&p[common..]);
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    relative
}

/// `path` made absolute, `.` dropped and `..` taking off the name before it.
fn lexical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_relative_to_the_configs_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data/images/cat")).unwrap();
        std::fs::create_dir_all(root.join("configs")).unwrap();
        assert_eq!(
            relative_to(&root.join("data/images"), &root.join("configs")),
            Path::new("../data/images")
        );
        assert_eq!(
            relative_to(&root.join("configs"), &root.join("configs")),
            Path::new(".")
        );
        assert_eq!(
            relative_to(
                &root.join("configs/../data/./images"),
                &root.join("configs")
            ),
            Path::new("../data/images")
        );
        assert_eq!(
            relative_to(&root.join("data/images/cat"), root),
            Path::new("data/images/cat")
        );
        assert!(has_subfolders(&root.join("data/images")));
        assert!(!has_subfolders(&root.join("configs")));
    }

    #[test]
    fn strings_are_quoted_as_toml_reads_them() {
        for text in ["plain", "with \"quotes\"", "back\\slash", "new\nline"] {
            let line = format!("x = {}", quoted(text));
            let table: toml::Table = toml::from_str(&line).unwrap();
            assert_eq!(table["x"].as_str(), Some(text));
        }
    }
}
