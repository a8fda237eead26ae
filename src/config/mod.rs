//! The pipeline config: one TOML file per experiment, parsed as written.
//!
//! This module only mirrors the file. Defaults that need no outside knowledge are applied
//! here; everything that must be checked against the file system or the model is done when
//! the config becomes a [`Plan`](crate::plan::Plan).
//!
//! The types also describe themselves as a JSON Schema ([`config_schema`], checked in as
//! `schemas/config.schema.json`): their doc comments are the descriptions an editor shows, and
//! the limits that validation enforces without the model are stated there too.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::error::PlanError;

pub mod codecs;
pub mod identity;

pub use codecs::{Codecs, Compression, Compressions, TableCompression};

/// A whole pipeline config, as read from its TOML file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Experiment name, recorded in the outputs; not empty.
    #[schemars(pattern(r"\S"))]
    pub name: String,
    /// `[input]`: where the images come from.
    pub input: InputConfig,
    /// `[model]`: the ONNX model.
    pub model: ModelConfig,
    /// `[preprocess]`: how an image becomes the model's input tensor.
    #[serde(default)]
    pub preprocess: PreprocessConfig,
    /// `[run]`: batching, threads, the execution provider and the runtime library.
    #[serde(default)]
    pub run: RunConfig,
    /// `[[layers]]`: the tensors to extract, at least one.
    #[schemars(length(min = 1))]
    pub layers: Vec<LayerConfig>,
    /// `[output]`: where and how the Parquet dataset is written.
    #[serde(default)]
    pub output: OutputConfig,
    /// The folder relative paths are taken from (the config file's; not a key of the file).
    #[serde(skip)]
    #[schemars(skip)]
    pub folder: PathBuf,
}

/// `[input]`: where the images come from. Exactly one of `root` (a folder walked), `list`
/// (a file naming the images), `webdataset` (tar shards) or `parquet` (Parquet files holding
/// the image bytes) says it; `list` may be given with `root`, the folder its paths are
/// relative to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_source)]
pub struct InputConfig {
    /// The folder image paths are relative to: walked recursively unless `list` is given. A
    /// relative path is taken from the config file's folder.
    pub root: Option<PathBuf>,
    /// A list of images instead of a walk: a text file with one path per line, or a CSV or
    /// Parquet file with a `path` column (and optionally `label`); paths relative to `root`,
    /// or to the list's folder when `root` is not set.
    pub list: Option<PathBuf>,
    /// WebDataset tar shards, one part each: a path or a list of them, with brace ranges
    /// (`shards/{00000..00127}.tar`, zero padding kept as written) and globs; local (relative
    /// to the config file's folder) or `s3://bucket/key`.
    pub webdataset: Option<Patterns>,
    /// Parquet files holding the image bytes (img2dataset's output, Hugging Face datasets),
    /// one part each, in the same forms as `webdataset`.
    pub parquet: Option<Patterns>,
    /// Where each sample's image is. WebDataset: the member extension(s) holding it, the
    /// first present in a sample taken (default: jpg, jpeg, png, webp). Parquet: the column
    /// (default: `image` as a Hugging Face struct {bytes, path}, else a binary column named
    /// jpg, jpeg, png or webp).
    pub image_field: Option<Patterns>,
    /// Where each sample's label is. WebDataset: a member extension whose text is the label
    /// (`txt`, `cls`), or `json:FIELD` for a field of the `.json` member. Parquet: a column
    /// (a Hugging Face ClassLabel column gives its class names). Default: no label.
    #[schemars(length(min = 1))]
    pub label_field: Option<String>,
    /// Parquet only: the column naming each sample, recorded as `images.key` (default: the
    /// row number).
    #[schemars(length(min = 1))]
    pub key_field: Option<String>,
    /// File extensions taken, compared case-insensitively, with or without the dot.
    #[serde(default = "default_extensions")]
    #[schemars(length(min = 1), inner(pattern(r"[^.]")))]
    pub extensions: Vec<String>,
    /// How each image's label is found in a folder or list (shards use `label_field`).
    #[serde(default)]
    pub label: LabelSource,
    /// Images with more pixels (width x height, read from the header) are refused before
    /// decoding, as `too large`: a guard against decompression bombs and giant scans.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

/// The shard formats `[input]` can name: each one's key, and what its shards are (for
/// messages). Each key is a field of [`InputConfig`] holding the shards' [`Patterns`]
/// ([`InputConfig::shards`]), read by the format registered under the same key in
/// `input::FORMATS`; a test checks that the three agree. A new format is its file in
/// `src/input/`, its line in `input::FORMATS`, and its key here and in [`InputConfig`].
pub const SHARD_FORMATS: [(&str, &str); 2] = [
    ("webdataset", "tar shards"),
    ("parquet", "Parquet files with the image bytes"),
];

/// The schema says what parsing cannot: exactly one source, a folder or list or one shard
/// format.
fn one_source(schema: &mut Schema) {
    let files = json_schema!({"anyOf": [{"required": ["root"]}, {"required": ["list"]}]});
    let shards = SHARD_FORMATS.map(|(key, _)| json_schema!({"required": [key]}));
    let sources: Vec<Schema> = std::iter::once(files).chain(shards).collect();
    schema.insert(
        "oneOf".into(),
        serde_json::to_value(sources).expect("schemas serialize"),
    );
}

impl InputConfig {
    /// The shard formats this config names, with their patterns: each key of
    /// [`SHARD_FORMATS`] that is set.
    pub fn shards(&self) -> Vec<(&'static str, &Patterns)> {
        let fields = [&self.webdataset, &self.parquet];
        SHARD_FORMATS
            .iter()
            .zip(fields)
            .filter_map(|((key, _), patterns)| Some((*key, patterns.as_ref()?)))
            .collect()
    }

    /// The folder that the paths of a folder or list input are relative to: `root`, else the
    /// list's folder; `None` for shard inputs.
    pub fn files_root(&self) -> Option<PathBuf> {
        match (&self.root, &self.list) {
            (Some(root), _) => Some(root.clone()),
            (None, Some(list)) => Some(list.parent().map(Path::to_owned).unwrap_or_default()),
            (None, None) => None,
        }
    }
}

/// One text or a list of them, as a config may give either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Patterns {
    /// One.
    One(#[schemars(length(min = 1))] String),
    /// Several, in this order.
    Many(#[schemars(length(min = 1), inner(length(min = 1)))] Vec<String>),
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Patterns;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text or a list of texts, e.g. \"shards/{00000..00009}.tar\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Patterns, E> {
                if v.is_empty() {
                    return Err(E::invalid_length(0, &"a non-empty text"));
                }
                Ok(Patterns::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Patterns, A::Error> {
                let mut texts = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    if text.is_empty() {
                        return Err(serde::de::Error::invalid_length(0, &"a non-empty text"));
                    }
                    texts.push(text);
                }
                if texts.is_empty() {
                    return Err(serde::de::Error::invalid_length(0, &"at least one text"));
                }
                Ok(Patterns::Many(texts))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Patterns {
    /// The texts, in order.
    pub fn texts(&self) -> Vec<String> {
        match self {
            Patterns::One(text) => vec![text.clone()],
            Patterns::Many(texts) => texts.clone(),
        }
    }
}

/// The default `[input] max_pixels`: 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

fn default_max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

fn default_extensions() -> Vec<String> {
    ["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp"]
        .map(String::from)
        .to_vec()
}

/// Where an image's label comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    /// The name of the folder holding the file (null for files directly in `root`).
    #[default]
    Parent,
    /// No labels.
    None,
}

/// `[model]`: the ONNX file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Path to the `.onnx` file; a relative path is taken from the config file's folder.
    pub path: PathBuf,
    /// The graph input fed with images; optional when the model has one input.
    pub input: Option<String>,
}

/// `[preprocess]`: decode, resize and normalise. `scale`, `mean` and `std` apply to float
/// inputs; a `uint8` model input is fed the pixel bytes as they are.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    /// `[height, width]` of the model input; optional when the model's H and W are static.
    #[schemars(inner(range(min = 1)))]
    pub size: Option<[u32; 2]>,
    /// How the image is brought to `size`.
    #[serde(default)]
    pub resize: ResizeMode,
    /// Layout of the model input.
    #[serde(default)]
    pub layout: Layout,
    /// Order of the colour channels in the model input.
    #[serde(default)]
    pub channel_order: ChannelOrder,
    /// Pixel values (0..255) are multiplied by this first (default 1/255); finite, not 0.
    pub scale: Option<f32>,
    /// Subtracted per channel (in `channel_order`) after scaling (default 0): three values.
    #[schemars(length(equal = 3))]
    pub mean: Option<Vec<f32>>,
    /// Divides per channel (in `channel_order`) after the mean (default 1): three finite,
    /// non-zero values.
    #[schemars(length(equal = 3))]
    pub std: Option<Vec<f32>>,
}

/// How an image is brought to the model's input size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Resize to exactly `size`, ignoring the aspect ratio.
    #[default]
    Stretch,
    /// Resize so the image covers `size`, then crop the centre.
    ShorterSideCrop,
}

/// The memory layout of the model's image input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Layout {
    /// `[batch, channels, height, width]` (PyTorch, most ONNX exports).
    #[default]
    NCHW,
    /// `[batch, height, width, channels]` (Keras and TensorFlow exports).
    NHWC,
}

/// The order of the colour channels fed to the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ChannelOrder {
    /// Red, green, blue.
    #[default]
    RGB,
    /// Blue, green, red (Caffe, Keras' VGG16 `preprocess_input`).
    BGR,
}

/// `[run]`: execution settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Images per model call (a model with a fixed batch size uses its own).
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1))]
    pub batch_size: usize,
    /// Worker threads for decoding and for ONNX Runtime; 0 means all cores.
    #[serde(default)]
    pub threads: usize,
    /// Images per output part file (and per unit of resuming and sharding).
    #[serde(default = "default_part_size")]
    #[schemars(range(min = 1))]
    pub part_size: usize,
    /// Path to the ONNX Runtime shared library; the `ORT_DYLIB_PATH` environment variable
    /// takes precedence over it.
    pub onnxruntime: Option<PathBuf>,
    /// Where the model runs.
    #[serde(default)]
    pub provider: Provider,
    /// The GPU to use with `cuda` or `tensorrt`.
    #[serde(default)]
    pub device: u32,
    /// Threads decoding images (default, or 0: `threads`).
    pub decode_threads: Option<usize>,
    /// ONNX Runtime's intra-op threads (default, or 0: `threads` on the CPU, 1 with a GPU).
    pub inference_threads: Option<usize>,
    /// Batches of rows that may wait for the Parquet writer thread.
    #[serde(default = "default_queue_depth")]
    #[schemars(range(min = 1))]
    pub queue_depth: usize,
    /// The share of images (0 to 1) that may fail to decode before the run counts as failed:
    /// above it, the run still writes every part, then exits with status 4. 1.0 (the default)
    /// never fails for bad images.
    #[serde(default = "default_max_error_fraction")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_fraction: f64,
    /// Where statistics and stored maps are computed: `host` (by layerwise, from the whole
    /// tensors), `graph` (by ONNX Runtime, on its execution provider, from reductions appended
    /// to the model, so that only they leave it) or `auto` (`graph` on a GPU, `host` on the
    /// CPU, where it measures faster).
    #[serde(default)]
    pub reduce: Reduce,
}

/// Where a layer's tensor is reduced to statistics and stored maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// `graph` with a GPU provider, `host` on the CPU.
    #[default]
    Auto,
    /// By layerwise, from the whole tensors copied out of the session.
    Host,
    /// By ONNX Runtime, from nodes appended to the model.
    Graph,
}

fn default_max_error_fraction() -> f64 {
    1.0
}

fn default_queue_depth() -> usize {
    2
}

/// The execution provider that runs the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA (the `onnxruntime-gpu` wheel's library).
    Cuda,
    /// NVIDIA TensorRT (the `onnxruntime-gpu` wheel's library, with TensorRT installed).
    Tensorrt,
}

impl Provider {
    /// The name a config gives it, e.g. `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::Tensorrt => "tensorrt",
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            batch_size: default_batch_size(),
            threads: 0,
            part_size: default_part_size(),
            onnxruntime: None,
            provider: Provider::default(),
            device: 0,
            decode_threads: None,
            inference_threads: None,
            queue_depth: default_queue_depth(),
            max_error_fraction: default_max_error_fraction(),
            reduce: Reduce::default(),
        }
    }
}

fn default_batch_size() -> usize {
    16
}

fn default_part_size() -> usize {
    1000
}

/// One `[[layers]]` entry: a tensor of the graph to extract.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// Name used in the output tables; `{tensor}` and `{index}` are filled in. Defaults to
    /// the tensor's name.
    #[schemars(length(min = 1))]
    pub name: Option<String>,
    /// The tensor: an exact name, `op:Conv#0` / `op:Relu#-1`, or a glob such as `block*_conv*`.
    pub tensor: String,
    /// Channels whose whole maps are stored (the `maps` table); none by default.
    #[serde(default)]
    pub keep: Keep,
    /// Axis of the channels in the tensor (not 0, the batch axis). Default: 1, except for a
    /// rank-3 tensor of a transformer whose tokens lie as a grid over the image (see `tokens`):
    /// its last axis. Given, it is taken as is (a rank-3 tensor's other axis is then its
    /// maps' height, of width 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub channel_axis: Option<usize>,
    /// How the tokens of a rank-3 transformer tensor (`[batch, tokens, dim]`) lie: `prefix`
    /// tokens (class, registers, distillation) then a `grid` of patches, height x width, row by
    /// row. Each of the `dim` channels then has a map over the grid (the prefix tokens left
    /// out). Inferred when left out, from the token count, the input's size and the model's
    /// patch convolution; set it when the run says the inference is ambiguous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// The vectors written to the `positions` table, one row per image and position, each
    /// the activation across every channel there: "none", "prefix" (a transformer's prefix
    /// tokens: the class token, registers), "all" (every token, or every pixel of a map), or
    /// N (N positions of the grid per image, drawn without replacement by a generator seeded
    /// by the image's id and the layer's name, so reruns, resumes and shards draw the same).
    /// Default: "prefix" for a transformer's token grid, else "none".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Positions>,
    /// Element type of the `positions` vectors: "float16" (default: half the bytes) or
    /// "float32". Every layer with positions in a run has the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions_dtype: Option<MapDtype>,
    /// The tensor's batch axis: 0, or 1 for a sequence-first tensor (`[tokens, batch, dim]`,
    /// as OpenAI CLIP's transformer runs). Found by the probe run when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1))]
    pub batch_axis: Option<usize>,
    /// Keep, for every channel, the maps of the k images that excite it most (the `top` table).
    pub top_k: Option<usize>,
    /// What "excite most" means for `top_k`.
    #[serde(default)]
    pub top_by: TopBy,
    /// Stored maps (in `maps` and `top`) are average-pooled over `pool` x `pool` blocks:
    /// 1 (default, as computed), 2, 4 or 8. Statistics always use the full maps. A layer that
    /// stores no maps (no `keep`, no `top_k`) is refused a pool other than 1.
    #[serde(default = "default_pool")]
    #[schemars(extend("enum" = [1, 2, 4, 8]))]
    pub pool: usize,
}

fn default_pool() -> usize {
    1
}

/// The score that ranks images for `top_k`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TopBy {
    /// The map's largest value (the peak response).
    #[default]
    Max,
    /// The map's mean (the overall response).
    Mean,
}

/// Which positions of a layer go to the `positions` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// None.
    None,
    /// A transformer's prefix tokens.
    Prefix,
    /// Every token, or every pixel of a map.
    All,
    /// This many positions of the grid per image, drawn without replacement.
    Sample(u32),
}

impl Serialize for Positions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Positions::None => s.serialize_str("none"),
            Positions::Prefix => s.serialize_str("prefix"),
            Positions::All => s.serialize_str("all"),
            Positions::Sample(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Positions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Positions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""none", "prefix", "all", or a number of positions per image"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Positions, E> {
                match v {
                    "none" => Ok(Positions::None),
                    "prefix" => Ok(Positions::Prefix),
                    "all" => Ok(Positions::All),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Positions, E> {
                match u32::try_from(v) {
                    Ok(n) if n > 0 => Ok(Positions::Sample(n)),
                    _ => Err(E::invalid_value(
                        serde::de::Unexpected::Signed(v),
                        &"at least 1 position per image",
                    )),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Positions, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for Positions {
    fn schema_name() -> Cow<'static, str> {
        "Positions".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The vectors written to the `positions` table.",
            "oneOf": [
                {"const": "none", "description": "None."},
                {"const": "prefix", "description": "A transformer's prefix tokens (the class token, registers)."},
                {"const": "all", "description": "Every token, or every pixel of a map."},
                {
                    "type": "integer", "minimum": 1, "maximum": u32::MAX,
                    "description": "This many positions of the grid per image, drawn without replacement (seeded by the image's id and the layer's name)."
                }
            ]
        })
    }
}

/// How the tokens of a transformer tensor lie over the image: `prefix` tokens, then a `grid`
/// of patches, row by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// Tokens before the patches: a class token, registers, a distillation token (0 for
    /// models without, such as SigLIP).
    pub prefix: usize,
    /// The patches' grid, [height, width] (e.g. [16, 16] for 224 x 224 input and patches of
    /// 14).
    #[schemars(inner(range(min = 1)))]
    pub grid: [usize; 2],
}

impl Tokens {
    /// The number of tokens: the prefix and the grid.
    pub fn count(&self) -> usize {
        self.prefix + self.grid[0] * self.grid[1]
    }
}

impl fmt::Display for Tokens {
    /// `16 x 16 patches + 1 prefix token`, or `14 x 14 patches` without any (SigLIP).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let [h, w] = self.grid;
        write!(f, "{h} x {w} patches")?;
        match self.prefix {
            0 => Ok(()),
            1 => write!(f, " + 1 prefix token"),
            p => write!(f, " + {p} prefix tokens"),
        }
    }
}

/// Which channels of a layer have their maps stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Every channel.
    All,
    /// These channels, in this order.
    Channels(Vec<u32>),
}

impl Default for Keep {
    fn default() -> Self {
        Keep::Channels(Vec::new())
    }
}

/// Written back as in a config: `"all"` or the list.
impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::All => s.serialize_str("all"),
            Keep::Channels(channels) => channels.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Keep;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a list of channel numbers, a range such as "0..64", or "all""#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Keep, E> {
                if v == "all" {
                    return Ok(Keep::All);
                }
                parse_range(v).map(|r| Keep::Channels(r.collect())).ok_or_else(|| {
                    E::invalid_value(
                        serde::de::Unexpected::Str(v),
                        &r#""all", a half-open range "A..B" with A < B (channels A to B - 1, as in Rust), or a list such as [0, 11, 12]"#,
                    )
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Keep, A::Error> {
                let mut channels = Vec::new();
                while let Some(c) = seq.next_element::<u32>()? {
                    channels.push(c);
                }
                Ok(Keep::Channels(channels))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What [`Keep`]'s deserializer takes: `"all"`, a list of distinct channel numbers (the plan
/// refuses a repeated one), or a range string. The range's `A < B` and the channel count of
/// the layer cannot be said in a schema; the parser and the plan check them.
impl JsonSchema for Keep {
    fn schema_name() -> Cow<'static, str> {
        "Keep".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Channels whose whole maps are stored: \"all\", a list of channel numbers, or a half-open range \"A..B\".",
            "oneOf": [
                {
                    "const": "all",
                    "description": "Every channel."
                },
                {
                    "type": "array",
                    "items": { "type": "integer", "minimum": 0, "maximum": u32::MAX },
                    "uniqueItems": true,
                    "description": "These channels, in this order, each once; [] (the default) stores no maps."
                },
                {
                    "type": "string",
                    "pattern": RANGE_PATTERN,
                    "description": "The channels A to B - 1, as in Rust (\"0..64\": 0 to 63); A must be less than B."
                }
            ]
        })
    }
}

/// A range string as [`parse_range`] reads it: two unsigned integers (a `+` sign allowed, as
/// Rust parses them) around `..`, spaces allowed around each.
const RANGE_PATTERN: &str = r"^\s*\+?[0-9]+\s*\.\.\s*\+?[0-9]+\s*$";

/// `"A..B"` with `A < B`: the channels `A` to `B - 1`.
fn parse_range(text: &str) -> Option<std::ops::Range<u32>> {
    let (start, end) = text.split_once("..")?;
    let (start, end): (u32, u32) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (start < end).then_some(start..end)
}

/// `[output]`: the Parquet dataset.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Output folder, or `s3://bucket/prefix` for object storage; `--out` overrides it, and
    /// one of them is needed.
    pub dir: Option<PathBuf>,
    /// Parquet codecs: by default `"snappy"` for `maps` and `"zstd"` for the other tables
    /// but `positions`; one codec for all of them (`compression = "zstd"`), or a codec per
    /// table (`[output.compression]`, `maps = "lz4_raw"`). A run may be resumed with other
    /// codecs: they change the bytes on disk, not the values.
    #[serde(default, skip_serializing_if = "Compressions::is_default")]
    pub compression: Compressions,
    /// Parquet compression codec of the `positions` table: none by default, since position
    /// vectors barely compress (zstd makes float16 ones 9% smaller, at 2.4 times the writer's
    /// CPU; `benches/RESULTS.md`).
    // Left out of the run's identity (and so of the schema's defaults) when it is the default,
    // so that runs of versions without the key resume.
    #[serde(
        default = "Compression::none",
        skip_serializing_if = "Compression::is_none"
    )]
    pub positions_compression: Compression,
    /// Element type of stored maps.
    #[serde(default)]
    pub map_dtype: MapDtype,
    /// Write each part's `positions` rows in a seeded random order across the part's images
    /// (up to 128 MiB of rows shuffled at a time, seeded by the part's number), so that reading
    /// part files and row groups in random order gives a well-mixed stream for training.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shuffle: bool,
}

impl Default for OutputConfig {
    fn default() -> OutputConfig {
        OutputConfig {
            dir: None,
            compression: Compressions::default(),
            positions_compression: Compression::none(),
            map_dtype: MapDtype::default(),
            shuffle: false,
        }
    }
}

/// Element type of the stored map values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MapDtype {
    /// 32-bit floats, exactly as the model computed them.
    #[default]
    Float32,
    /// 16-bit floats: half the bytes, about 3 significant digits.
    Float16,
}

/// The JSON Schema (draft 2020-12) of a pipeline config, as `layerwise schema` prints it and
/// `schemas/config.schema.json` holds it: for editor completion and validation of the TOML
/// files, and for CI. It says what parsing checks (keys, types, values) and the limits that
/// validation checks without the model (`batch_size` at least 1, `pool` 1, 2, 4 or 8, ...).
pub fn config_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Config);
    schema.insert("$id".into(), "urn:layerwise:config".into());
    schema.insert("title".into(), "layerwise pipeline config".into());
    schema.insert(
        "description".into(),
        "One TOML file per experiment, for `layerwise run`, `check`, `layers` and `plot`. \
         Relative paths are taken from the config file's folder."
            .into(),
    );
    let mut value = schema.to_value();
    tidy(&mut value);
    value
}

/// Two touches for TOML files and editors: an optional key is absent or set, never null (TOML
/// has no null), so null leaves the types and the tables' defaults; and the lines of every
/// `description` that the doc comments wrapped are joined, for the editor to wrap (a blank
/// line, a paragraph break, is kept).
fn tidy(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    let only = only.clone();
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Object(default)) = map.get_mut("default") {
                default.retain(|_, v| !v.is_null());
            }
            if let Some(Value::String(text)) = map.get_mut("description") {
                *text = text
                    .split("\n\n")
                    .map(|paragraph| paragraph.replace('\n', " "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

impl Config {
    /// Reads and parses a config file. Errors name the file, the line and the key.
    pub fn from_file(path: &Path) -> Result<Config, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::ConfigUnreadable {
            path: path.to_owned(),
            source: e,
        })?;
        Config::from_toml(&text).map_err(|message| PlanError::ConfigSyntax {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses a config from TOML text; the error is toml's message, which shows the line,
    /// preceded by the key path and, for an unknown key, followed by the closest valid one.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            let key = e.span().and_then(|span| key_path(text, span.start));
            let hint = closest_key(e.message()).unwrap_or_default();
            let text = e.to_string();
            let text = text.trim_end();
            match key {
                Some(key) => format!("`{key}`: {text}{hint}"),
                None => format!("{text}{hint}"),
            }
        })
    }
}

impl Config {
    /// A config as a run recorded it (`run.json`, the part files' provenance), by this version or
    /// any other: keys this version does not know (retired, or added later) are left out before
    /// it is read, so that a run stays readable when a key leaves the format.
    pub fn from_recorded(mut value: serde_json::Value) -> Result<Config, serde_json::Error> {
        static SCHEMA: std::sync::LazyLock<serde_json::Value> =
            std::sync::LazyLock::new(config_schema);
        known_keys_only(&SCHEMA, &SCHEMA, &mut value);
        serde_json::from_value(value)
    }
}

/// Leaves out of `value` the object members that `node` (a part of `schema`) does not describe,
/// recursively; values whose schema has no properties (texts, lists of numbers, one of several
/// forms) are kept whole.
fn known_keys_only(
    schema: &serde_json::Value,
    node: &serde_json::Value,
    value: &mut serde_json::Value,
) {
    use serde_json::Value;
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix("#/$defs/")
            .and_then(|name| schema["$defs"].get(name))
            .unwrap_or(&Value::Null),
        None => node,
    };
    match value {
        Value::Object(map) => {
            let Some(properties) = node.get("properties").and_then(Value::as_object) else {
                return;
            };
            map.retain(|key, _| properties.contains_key(key));
            for (key, member) in map.iter_mut() {
                known_keys_only(schema, &properties[key], member);
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.get("items") {
                items
                    .iter_mut()
                    .for_each(|v| known_keys_only(schema, item, v));
            }
        }
        _ => {}
    }
}

/// The dotted path of the key at byte `at`, e.g. `run.batch_size`: the table header above it
/// (`[[layers]]` tables numbered, `layers[1]`) and the key on its line.
fn key_path(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?.trim_start();
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let mut table = None;
    let mut layers = 0;
    for header in before[..line_start].lines().map(str::trim) {
        if header == "[[layers]]" {
            table = Some(format!("layers[{layers}]"));
            layers += 1;
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = Some(name.trim().to_owned());
        }
    }
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}

/// For toml's "unknown field `x`, expected one of `a`, `b`" message: "; did you mean `a`?"
/// with the valid key closest to `x`.
fn closest_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected ")?.1;
    let closest = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::jaro_winkler(unknown, k), k))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    (closest.0 > 0.7).then(|| format!("; did you mean `{}`?", closest.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSIC: &str = r#"
name = "vgg16-faces"
[input]
root = "data/man_woman"
[model]
path = "models/vgg16.onnx"
[preprocess]
channel_order = "BGR"
scale = 1.0
mean = [103.939, 116.779, 123.68]
[[layers]]
name = "block1_conv1"
tensor = "block1_conv1"
keep = [0, 11, 12, 27, 30, 34]
[[layers]]
name = "block5_conv3"
tensor = "block5_conv3"
keep = "all"
"#;

    #[test]
    fn parses_the_classic_study_with_defaults() {
        let c = Config::from_toml(CLASSIC).unwrap();
        assert_eq!(c.input.extensions.len(), 8);
        assert_eq!(c.input.label, LabelSource::Parent);
        assert_eq!(c.preprocess.channel_order, ChannelOrder::BGR);
        assert_eq!(c.preprocess.layout, Layout::NCHW);
        assert_eq!(c.preprocess.std, None);
        assert_eq!(c.preprocess.scale, Some(1.0));
        assert_eq!(c.run.batch_size, 16);
        assert_eq!(
            c.layers[0].keep,
            Keep::Channels(vec![0, 11, 12, 27, 30, 34])
        );
        assert_eq!(c.layers[1].keep, Keep::All);
        assert_eq!(c.layers[1].channel_axis, None);
        assert_eq!(c.output.compression, Compressions::default());
        assert_eq!(c.output.map_dtype, MapDtype::Float32);
    }

    #[test]
    fn keep_takes_half_open_ranges() {
        let text = CLASSIC.replace(r#"keep = "all""#, r#"keep = "2..6""#);
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(c.layers[1].keep, Keep::Channels(vec![2, 3, 4, 5]));
        for wrong in ["6..2", "3..3", "0..", "a..b"] {
            let text = CLASSIC.replace(r#"keep = "all""#, &format!("keep = \"{wrong}\""));
            let err = Config::from_toml(&text).unwrap_err();
            assert!(err.starts_with("`layers[1].keep`: "), "{err}");
            assert!(
                err.contains(
                    r#"a half-open range "A..B" with A < B (channels A to B - 1, as in Rust)"#
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn keep_defaults_to_no_maps_and_rejects_other_words() {
        let text = CLASSIC.replace(r#"keep = "all""#, r#"keep = "some""#);
        let err = Config::from_toml(&text).unwrap_err();
        assert!(
            err.contains(r#"expected "all", a half-open range"#),
            "{err}"
        );
        let text = CLASSIC.replace(r#"keep = "all""#, "");
        assert_eq!(
            Config::from_toml(&text).unwrap().layers[1].keep,
            Keep::Channels(vec![])
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_the_valid_ones() {
        let text = CLASSIC.replace("[preprocess]", "[preprocess]\nmeans = [1, 2, 3]");
        let err = Config::from_toml(&text).unwrap_err();
        assert!(err.contains("unknown field `means`"), "{err}");
        assert!(err.contains("`mean`"), "{err}");
    }

    #[test]
    fn a_recorded_config_is_read_without_the_keys_this_version_does_not_know() {
        let c = Config::from_toml(CLASSIC).unwrap();
        let mut value = serde_json::to_value(&c).unwrap();
        value["retired"] = 1.into();
        value["run"]["retired_speed_knob"] = 2.into();
        value["layers"][1]["retired_layer_key"] = "x".into();
        assert!(serde_json::from_value::<Config>(value.clone()).is_err());
        let read = Config::from_recorded(value).unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&c).unwrap()
        );
    }

    #[test]
    fn keep_all_round_trips_as_the_word_all() {
        let c = Config::from_toml(CLASSIC).unwrap();
        let json = serde_json::to_value(&c.layers[1]).unwrap();
        assert_eq!(json["keep"], "all");
    }
}
