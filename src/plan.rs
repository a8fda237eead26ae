//! A validated plan: the config checked against itself, the file system and the model,
//! with every default resolved, before any image is read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::config::{
    ChannelOrder, Codecs, Config, Keep, LabelSource, LayerConfig, Layout, MapDtype, Patterns,
    Positions, PreprocessConfig, Provider, Reduce, ResizeMode, Tokens, TopBy, SHARD_FORMATS,
};
use crate::error::PlanError;
use crate::location::Location;
use crate::model::select::{self, Selector};
use crate::model::{Dim, ElementType, Graph, ModelFile, TensorInfo};

/// What the command line may change in a config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--out`: the output folder.
    pub out: Option<PathBuf>,
    /// `--limit`: only the first N images of the listing.
    pub limit: Option<usize>,
}

/// A config made ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Experiment name.
    pub name: String,
    /// The config as given, with paths made absolute (recorded as provenance).
    pub config: Config,
    /// The images to read.
    pub input: InputSpec,
    /// The model and how it is fed.
    pub model: ModelSpec,
    /// Image to tensor.
    pub preprocess: Preprocess,
    /// The tensors to extract.
    pub layers: Vec<LayerSpec>,
    /// Batching and threads.
    pub run: RunSpec,
    /// The dataset written.
    pub output: OutputSpec,
}

/// Where the images come from.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The folder, list or shards.
    pub source: InputSource,
    /// `--limit`: only the first N images of a listing, or of each shard.
    pub limit: Option<usize>,
}

/// The kinds of input.
#[derive(Debug, Clone)]
pub enum InputSource {
    /// Files of a folder (walked) or of a list.
    Files(FilesSpec),
    /// Shards of one format (WebDataset tar files, Parquet files, ...), one part each.
    Shards(ShardsSpec),
}

/// An image folder and how it is listed.
#[derive(Debug, Clone)]
pub struct FilesSpec {
    /// Folder walked recursively (and that a list's paths are relative to).
    pub root: PathBuf,
    /// Lower-case extensions without the dot.
    pub extensions: Vec<String>,
    /// How labels are found.
    pub label: LabelSource,
    /// A list of images to read instead of walking `root`.
    pub list: Option<PathBuf>,
}

/// Shards named by patterns, and where their samples' fields are, as configured: the format
/// (`input::FORMATS`) checks and reads the fields.
#[derive(Debug, Clone)]
pub struct ShardsSpec {
    /// The format's key in `[input]` ([`crate::config::SHARD_FORMATS`]).
    pub format: &'static str,
    /// The patterns as configured: brace ranges and globs, local or `s3://`.
    pub patterns: Vec<String>,
    /// The folder local patterns are relative to (the config file's).
    pub folder: PathBuf,
    /// `input.image_field`, as configured; empty: the format's default.
    pub image_field: Vec<String>,
    /// `input.label_field`, as configured.
    pub label_field: Option<String>,
    /// `input.key_field`, as configured.
    pub key_field: Option<String>,
}

/// The model file and its image input.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Path to the ONNX file.
    pub path: PathBuf,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// The graph input fed with images.
    pub input: String,
    /// A batch size the model fixes, if it fixes one.
    pub fixed_batch: Option<usize>,
}

/// One tensor to extract.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// Name in the output tables.
    pub name: String,
    /// Tensor in the graph.
    pub tensor: String,
    /// The selector that picked it, as written in the config.
    pub selector: String,
    /// Index of its `[[layers]]` entry, for messages.
    pub position: usize,
    /// Channels whose maps are stored.
    pub keep: Keep,
    /// Axis of the channels, as configured (`None`: 1, or a token grid's last axis).
    pub channel_axis: Option<usize>,
    /// How a transformer tensor's tokens lie, as configured (`None`: inferred).
    pub tokens: Option<Tokens>,
    /// The batch axis, as configured (`None`: found by the probe run).
    pub batch_axis: Option<usize>,
    /// What a token layout is inferred from.
    pub grid_hints: GridHints,
    /// The positions written to `positions`, as configured (`None`: by the layout).
    pub positions: Option<Positions>,
    /// Element type of the `positions` vectors.
    pub positions_dtype: MapDtype,
    /// Images kept per channel in the `top` table, and how they are ranked.
    pub top: Option<(usize, TopBy)>,
    /// Side of the blocks stored maps are average-pooled over (1: not pooled).
    pub pool: usize,
}

/// What the layout of a transformer tensor's tokens is inferred from: the model input's size
/// and its patch convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridHints {
    /// The model input's height and width.
    pub input: [usize; 2],
    /// The patch size, [height, width], of the model's patch convolution, if it has one.
    pub patch: Option<[usize; 2]>,
}

/// Batching, threads and the execution provider, resolved.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Images per model call.
    pub batch_size: usize,
    /// Threads decoding images and reducing tensors.
    pub threads: usize,
    /// ONNX Runtime's intra-op threads.
    pub inference_threads: usize,
    /// Images per output part.
    pub part_size: usize,
    /// Where the model runs.
    pub provider: Provider,
    /// The GPU, for `cuda` and `tensorrt`.
    pub device: u32,
    /// Batches that may wait for the writer thread.
    pub queue_depth: usize,
    /// The share of images that may fail before the run exits with status 4.
    pub max_error_fraction: f64,
    /// Where the maps layers are reduced (`reduce` resolved: never `auto`).
    pub reduce: ReduceMode,
}

/// Where a layer's statistics and maps are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReduceMode {
    /// By layerwise, from the whole tensor copied out of the session.
    #[default]
    Host,
    /// By ONNX Runtime, from reductions appended to the graph (`[run] reduce`).
    Graph,
}

/// The element type of the model's image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// `float32`: scaled and normalised pixels.
    Float32,
    /// `uint8`: the pixel bytes, unscaled.
    Uint8,
}

/// An element type that image input tensors are made of.
pub trait InputElement:
    ort::value::PrimitiveTensorElementType + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
    /// The tensor value for pixel value `v`, given `v * a + b` normalisation.
    fn from_pixel(v: u8, a: f32, b: f32) -> Self;
}

impl InputElement for f32 {
    fn from_pixel(v: u8, a: f32, b: f32) -> f32 {
        f32::from(v) * a + b
    }
}

impl InputElement for u8 {
    fn from_pixel(v: u8, _: f32, _: f32) -> u8 {
        v
    }
}

/// How a decoded image becomes model input, fully resolved (`input::preprocess` does it).
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Element type of the input tensor.
    pub input_type: InputType,
    /// Model input height.
    pub height: u32,
    /// Model input width.
    pub width: u32,
    /// How the image is brought to `height` x `width`.
    pub resize: ResizeMode,
    /// Layout of the input tensor.
    pub layout: Layout,
    /// Order of the colour channels in the tensor.
    pub channel_order: ChannelOrder,
    /// Pixel values (0..255) are multiplied by this first.
    pub scale: f32,
    /// Subtracted per tensor channel after scaling.
    pub mean: [f32; 3],
    /// Divides per tensor channel after the mean.
    pub std: [f32; 3],
    /// Images with more pixels than this are refused from their header, before decoding.
    pub max_pixels: u64,
}

impl Preprocess {
    /// Number of values one image occupies in the input tensor.
    pub fn image_len(&self) -> usize {
        3 * self.height as usize * self.width as usize
    }

    /// The input tensor shape for `batch` images.
    pub fn tensor_shape(&self, batch: usize) -> [usize; 4] {
        let (h, w) = (self.height as usize, self.width as usize);
        match self.layout {
            Layout::NCHW => [batch, 3, h, w],
            Layout::NHWC => [batch, h, w, 3],
        }
    }
}

/// The dataset written.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// Output folder, or prefix in a bucket: parsed once, here.
    pub location: Location,
    /// The Parquet codec of each table.
    pub codecs: Codecs,
    /// Element type of stored maps.
    pub map_dtype: MapDtype,
    /// `positions` rows shuffled within each part.
    pub shuffle: bool,
}

/// Where a config comes from: a file, or TOML text held in memory (a binding's dict).
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file; its relative paths are taken from its folder.
    File(PathBuf),
    /// TOML text; its relative paths are taken from `folder`.
    Text {
        /// The config.
        text: String,
        /// What messages and the manifest call it, e.g. `<dict>`.
        name: PathBuf,
        /// The folder its relative paths are taken from.
        folder: PathBuf,
    },
}

impl ConfigSource {
    /// The file, or the name of the text, for messages and the manifest.
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::File(path) => path,
            ConfigSource::Text { name, .. } => name,
        }
    }

    /// Reads the config with its relative paths resolved.
    pub fn read(&self) -> Result<Config, PlanError> {
        match self {
            ConfigSource::File(path) => read_config(path),
            ConfigSource::Text { text, name, folder } => {
                let config =
                    Config::from_toml(text).map_err(|message| PlanError::ConfigSyntax {
                        path: name.clone(),
                        message,
                    })?;
                Ok(resolve_paths(config, folder))
            }
        }
    }
}

impl From<&Path> for ConfigSource {
    fn from(path: &Path) -> ConfigSource {
        ConfigSource::File(path.to_owned())
    }
}

impl Plan {
    /// Reads a config file and its model, and validates both.
    pub fn load(config_path: &Path, overrides: &Overrides) -> Result<(Plan, ModelFile), PlanError> {
        Plan::load_source(&config_path.into(), overrides)
    }

    /// Reads a config and its model, and validates both.
    pub fn load_source(
        source: &ConfigSource,
        overrides: &Overrides,
    ) -> Result<(Plan, ModelFile), PlanError> {
        let config = source.read()?;
        let model = read_model(&config).map_err(|e| e.in_file(source.path()))?;
        let plan = Plan::new(config, &model, overrides).map_err(|e| e.in_file(source.path()))?;
        Ok((plan, model))
    }

    /// Validates a config whose paths are already resolved against its model.
    pub fn new(
        config: Config,
        model: &ModelFile,
        overrides: &Overrides,
    ) -> Result<Plan, PlanError> {
        if config.name.trim().is_empty() {
            return Err(PlanError::invalid(
                "name",
                "is empty; give the experiment a name",
            ));
        }
        let input = input_spec(&config, overrides)?;
        let (model_spec, preprocess) = ModelSpec::resolve(&config, model)?;
        let hints = GridHints {
            input: [preprocess.height as usize, preprocess.width as usize],
            patch: model.graph.patch_size(),
        };
        let layers = layers(&config, model, hints).map_err(|e| e.into_plan_error(&model.path))?;
        let run = run_spec(&config, model_spec.fixed_batch)?;
        let output = output_spec(&config, overrides)?;
        let mut config = config;
        config.output.dir = Some(output.location.display().into());
        Ok(Plan {
            name: config.name.clone(),
            model: model_spec,
            input,
            preprocess,
            layers,
            run,
            output,
            config,
        })
    }

    /// The distinct tensors to expose, in layer order.
    pub fn tensors(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        self.layers
            .iter()
            .map(|l| l.tensor.as_str())
            .filter(|t| seen.insert(*t))
            .collect()
    }
}

impl ModelSpec {
    /// The model's image input and how images become its tensor, from a config's `[model]`
    /// and `[preprocess]` (its layers are not looked at).
    pub fn resolve(
        config: &Config,
        model: &ModelFile,
    ) -> Result<(ModelSpec, Preprocess), PlanError> {
        let misfit = |e: Misfit| e.into_plan_error(&model.path);
        let input = image_input(config, &model.graph)
            .map_err(Misfit::Model)
            .map_err(misfit)?;
        let preprocess = preprocess(config, input).map_err(misfit)?;
        let fixed_batch = input
            .shape
            .as_ref()
            .and_then(|s| s.first())
            .and_then(Dim::fixed);
        let spec = ModelSpec {
            path: model.path.clone(),
            sha256: model.sha256.clone(),
            input: input.name.clone(),
            fixed_batch,
        };
        Ok((spec, preprocess))
    }
}

/// Reads a config file with its relative paths resolved against the config's folder.
pub fn read_config(path: &Path) -> Result<Config, PlanError> {
    let config = Config::from_file(path)?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    Ok(resolve_paths(config, folder.unwrap_or(Path::new("."))))
}

/// Reads the model a config names.
pub fn read_model(config: &Config) -> Result<ModelFile, PlanError> {
    ModelFile::read(&config.model.path).map_err(|problem| PlanError::Model {
        path: config.model.path.clone(),
        problem,
    })
}

/// Relative paths in a config resolve against the config file's folder.
fn resolve_paths(mut config: Config, base: &Path) -> Config {
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
    let resolve = |p: &mut PathBuf| *p = normalize(&base.join(&*p));
    for p in [config.input.root.as_mut(), config.input.list.as_mut()]
        .into_iter()
        .flatten()
    {
        resolve(p);
    }
    resolve(&mut config.model.path);
    if let Some(p) = config.run.onnxruntime.as_mut() {
        resolve(p);
    }
    if let Some(p) = config
        .output
        .dir
        .as_mut()
        .filter(|p| !crate::location::is_remote(p))
    {
        resolve(p);
    }
    config.folder = base;
    config
}

/// Whether a declared input looks like an image batch: rank 4 with 3 channels first or last.
fn looks_like_image(input: &TensorInfo) -> bool {
    input
        .shape
        .as_deref()
        .is_some_and(|s| s.len() == 4 && (s[1] == Dim::Fixed(3) || s[3] == Dim::Fixed(3)))
}

/// A declared shape as `[batch, 3, 224, 224]` (`?` for unknown dimensions).
pub fn shape_text(shape: Option<&[Dim]>) -> String {
    let Some(shape) = shape else {
        return "[?]".into();
    };
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Symbolic(s) => s.clone(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Removes `.` and `..` components without touching the file system (`base.join` keeps an
/// absolute path as it is).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A mismatch found while validating: in the config itself, or between config and model.
enum Misfit {
    Config(PlanError),
    Model(String),
}

impl Misfit {
    /// The error to report, naming the model file for a model misfit.
    fn into_plan_error(self, model: &Path) -> PlanError {
        match self {
            Misfit::Config(e) => e,
            Misfit::Model(problem) => PlanError::Model {
                path: model.to_owned(),
                problem,
            },
        }
    }
}

impl From<PlanError> for Misfit {
    fn from(e: PlanError) -> Self {
        Misfit::Config(e)
    }
}

/// The input a config names, checked against the file system (its model is not needed).
pub fn input_spec(config: &Config, overrides: &Overrides) -> Result<InputSpec, PlanError> {
    if overrides.limit == Some(0) {
        return Err(PlanError::invalid("--limit", "must be at least 1"));
    }
    let input = &config.input;
    let shards = input.shards();
    let given: Vec<&str> = [
        ("root", input.root.is_some()),
        ("list", input.list.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .chain(shards.iter().map(|(key, _)| *key))
    .collect();
    let source = match (shards.as_slice(), given.len()) {
        ([(format, patterns)], 1) => InputSource::Shards(shards_spec(config, format, patterns)?),
        ([], 1..) => InputSource::Files(files_spec(config)?),
        _ => return Err(not_one_source(&given)),
    };
    Ok(InputSpec {
        source,
        limit: overrides.limit,
    })
}

/// The error of an `[input]` that names no source, or several.
fn not_one_source(given: &[&str]) -> PlanError {
    let has = match given {
        [] => "none of them".to_owned(),
        _ => given.join(" and "),
    };
    let shards = SHARD_FORMATS.map(|(key, what)| format!("{key} ({what})"));
    PlanError::invalid(
        "input",
        format!(
            "must set exactly one of root (a folder to walk), list (a file naming the images; \
             root may be given too, as the folder its paths are relative to), {}; it sets {has}",
            enumerate(&shards, "or")
        ),
    )
}

/// `a`, `a and b`, `a, b and c` (with `and` or another word).
fn enumerate(items: &[impl AsRef<str>], word: &str) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    match items.split_last() {
        Some((last, [_, ..])) => format!("{} {word} {last}", items[..items.len() - 1].join(", ")),
        _ => items.concat(),
    }
}

/// A folder walked, or a list of files.
fn files_spec(config: &Config) -> Result<FilesSpec, PlanError> {
    let input = &config.input;
    for (key, set) in [
        ("image_field", input.image_field.is_some()),
        ("label_field", input.label_field.is_some()),
        ("key_field", input.key_field.is_some()),
    ] {
        if set {
            let formats = SHARD_FORMATS.map(|(key, _)| key);
            return Err(PlanError::invalid(
                format!("input.{key}"),
                format!(
                    "applies to {} inputs; a folder or list uses `label`",
                    enumerate(&formats, "and")
                ),
            ));
        }
    }
    let root = input
        .files_root()
        .expect("input_spec checked that root or list is set");
    if !root.is_dir() {
        return Err(PlanError::invalid(
            "input.root",
            format!(
                "is {}, which is not a folder; point it at the folder of images (a relative \
                 path is taken from the config file's folder)",
                root.display()
            ),
        ));
    }
    let extensions: Vec<String> = input
        .extensions
        .iter()
        .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
        .collect();
    if extensions.is_empty() || extensions.iter().any(String::is_empty) {
        return Err(PlanError::invalid(
            "input.extensions",
            "must list at least one non-empty extension, e.g. [\"jpg\", \"png\"]",
        ));
    }
    if let Some(list) = &input.list {
        if !list.is_file() {
            return Err(PlanError::invalid(
                "input.list",
                format!("is {}, which is not a file", list.display()),
            ));
        }
    }
    Ok(FilesSpec {
        list: input.list.clone(),
        root,
        extensions,
        label: input.label,
    })
}

/// Shards of `format` named by patterns, with `image_field`, `label_field` and `key_field` as
/// configured (the format checks what they mean to it when the input is listed).
fn shards_spec(
    config: &Config,
    format: &'static str,
    patterns: &Patterns,
) -> Result<ShardsSpec, PlanError> {
    let input = &config.input;
    for (key, field) in [
        ("label_field", &input.label_field),
        ("key_field", &input.key_field),
    ] {
        if field.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(PlanError::invalid(
                format!("input.{key}"),
                "is empty; name a field, or leave the key out",
            ));
        }
    }
    Ok(ShardsSpec {
        format,
        patterns: patterns.texts(),
        folder: config.folder.clone(),
        image_field: input
            .image_field
            .as_ref()
            .map_or_else(Vec::new, Patterns::texts),
        label_field: input.label_field.clone(),
        key_field: input.key_field.clone(),
    })
}

/// The graph input that receives images: the configured one, or the only one.
fn image_input<'g>(config: &Config, graph: &'g Graph) -> Result<&'g TensorInfo, String> {
    let describe = |i: &TensorInfo| {
        let looks = if looks_like_image(i) {
            ", image-like"
        } else {
            ""
        };
        format!("`{}` {}{looks}", i.name, shape_text(i.shape.as_deref()))
    };
    let all = || {
        graph
            .inputs
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let input = match &config.model.input {
        Some(name) => graph
            .inputs
            .iter()
            .find(|i| &i.name == name)
            .ok_or_else(|| format!("has no input `{name}`; its inputs are {}", all()))?,
        None => match graph.inputs.as_slice() {
            [only] => only,
            [] => return Err("has no graph input to feed images to".into()),
            _ => {
                return Err(format!(
                    "has several inputs ({}); set `model.input` in [model] to the one that \
                     takes images",
                    all()
                ))
            }
        },
    };
    if let Some(other) = graph.inputs.iter().find(|i| i.name != input.name) {
        return Err(format!(
            "needs input {} besides `{}`, and layerwise feeds only the images",
            describe(other),
            input.name
        ));
    }
    match input.element_type {
        Some(ElementType::FLOAT) | Some(ElementType::UINT8) | None => Ok(input),
        Some(other) => Err(format!(
            "input `{}` takes {} tensors; layerwise feeds images as float32 or uint8",
            input.name,
            other.name()
        )),
    }
}

fn preprocess(config: &Config, input: &TensorInfo) -> Result<Preprocess, Misfit> {
    let p = &config.preprocess;
    let layout = p.layout;
    let (channel_axis, h_axis, w_axis) = match layout {
        Layout::NCHW => (1, 2, 3),
        Layout::NHWC => (3, 1, 2),
    };
    let shape = input.shape.as_deref();
    if let Some(shape) = shape {
        if shape.len() != 4 {
            return Err(Misfit::Model(format!(
                "input `{}` has rank {}; an image input has rank 4 ({layout:?})",
                input.name,
                shape.len()
            )));
        }
        if let Some(c) = shape[channel_axis].fixed().filter(|&c| c != 3) {
            let other = if layout == Layout::NCHW {
                "NHWC"
            } else {
                "NCHW"
            };
            return Err(Misfit::Model(format!(
                "input `{}` has {c} at axis {channel_axis}, where layout {layout:?} puts the 3 colour \
                 channels; if the model takes {other} input, set `preprocess.layout = \"{other}\"`",
                input.name
            )));
        }
    }
    let model_size = shape.and_then(|s| Some([s[h_axis].fixed()?, s[w_axis].fixed()?]));
    let [height, width] = match (p.size, model_size) {
        (Some(size), Some(fixed)) if [size[0] as usize, size[1] as usize] != fixed => {
            return Err(Misfit::Model(format!(
                "input `{}` is fixed at {} x {} (height x width), but `preprocess.size` is {:?}; \
                 remove `preprocess.size` or set it to [{}, {}]",
                input.name, fixed[0], fixed[1], size, fixed[0], fixed[1]
            )))
        }
        (Some(size), _) => size,
        (None, Some(fixed)) => [fixed[0] as u32, fixed[1] as u32],
        (None, None) => {
            return Err(PlanError::invalid(
                "preprocess.size",
                format!(
                    "is needed: the height and width of model input `{}` are not fixed; \
                     set e.g. `size = [224, 224]`",
                    input.name
                ),
            )
            .into())
        }
    };
    if height == 0 || width == 0 {
        return Err(PlanError::invalid("preprocess.size", "must be at least [1, 1]").into());
    }
    let input_type = match input.element_type {
        Some(ElementType::UINT8) => InputType::Uint8,
        _ => InputType::Float32,
    };
    let (scale, mean, std) = normalisation(p, input_type, &input.name)?;
    Ok(Preprocess {
        input_type,
        height,
        width,
        resize: p.resize,
        layout,
        channel_order: p.channel_order,
        scale,
        mean,
        std,
        max_pixels: config.input.max_pixels,
    })
}

/// `scale`, `mean` and `std` with their defaults, checked; a `uint8` input takes none of them.
fn normalisation(
    p: &PreprocessConfig,
    input_type: InputType,
    input: &str,
) -> Result<(f32, [f32; 3], [f32; 3]), PlanError> {
    if input_type == InputType::Uint8 {
        if let Some(key) = [
            ("scale", p.scale.is_some()),
            ("mean", p.mean.is_some()),
            ("std", p.std.is_some()),
        ]
        .iter()
        .find_map(|(k, set)| set.then_some(k))
        {
            return Err(PlanError::invalid(
                format!("preprocess.{key}"),
                format!(
                    "is set, but model input `{input}` takes uint8 pixel bytes as they are; \
                     remove `{key}` (the model normalises inside)"
                ),
            ));
        }
        return Ok((1.0, [0.0; 3], [1.0; 3]));
    }
    let triple =
        |key: &str, values: &Option<Vec<f32>>, default: f32| -> Result<[f32; 3], PlanError> {
            let Some(values) = values else {
                return Ok([default; 3]);
            };
            <[f32; 3]>::try_from(values.as_slice()).map_err(|_| {
                PlanError::invalid(
                    format!("preprocess.{key}"),
                    format!(
                        "has {} values; give one per colour channel (3)",
                        values.len()
                    ),
                )
            })
        };
    let mean = triple("mean", &p.mean, 0.0)?;
    let std = triple("std", &p.std, 1.0)?;
    if let Some(i) = std.iter().position(|s| *s == 0.0 || !s.is_finite()) {
        return Err(PlanError::invalid(
            format!("preprocess.std[{i}]"),
            "must be a finite, non-zero number (it divides)",
        ));
    }
    let scale = p.scale.unwrap_or(1.0 / 255.0);
    if !scale.is_finite() || scale == 0.0 {
        return Err(PlanError::invalid(
            "preprocess.scale",
            "must be a finite, non-zero number",
        ));
    }
    Ok((scale, mean, std))
}

/// Expands every `[[layers]]` selector into layers, with their names, and checks them.
fn layers(
    config: &Config,
    model: &ModelFile,
    grid_hints: GridHints,
) -> Result<Vec<LayerSpec>, Misfit> {
    let graph = &model.graph;
    if config.layers.is_empty() {
        return Err(PlanError::invalid(
            "layers",
            "is empty; add at least one [[layers]] entry with a `tensor`",
        )
        .into());
    }
    let tensors = graph.extractable();
    let mut names = HashSet::new();
    let mut specs = Vec::new();
    for (i, layer) in config.layers.iter().enumerate() {
        let key = |field: &str| format!("layers[{i}].{field}");
        let selector =
            Selector::parse(&layer.tensor).map_err(|e| PlanError::invalid(key("tensor"), e))?;
        // A tensor literally named like a glob is still picked by its name.
        let picked = match Selector::Exact(layer.tensor.clone()).select(&tensors) {
            exact if !exact.is_empty() => exact,
            _ => selector.select(&tensors),
        };
        if picked.is_empty() {
            return Err(Misfit::Model(nothing_picked(
                &selector,
                &layer.tensor,
                i,
                model,
            )));
        }
        match layer.name.as_deref() {
            Some("") => return Err(PlanError::invalid(key("name"), "is empty").into()),
            Some(name) if picked.len() > 1 && !select::is_template(name) => {
                return Err(PlanError::invalid(
                    key("name"),
                    format!(
                        "is `{name}`, but `{}` picks {} tensors; use a template such as \"{{tensor}}\" or \"{name}_{{index}}\", or leave `name` out",
                        layer.tensor,
                        picked.len()
                    ),
                )
                .into())
            }
            _ => {}
        }
        check_layout(layer, &key)?;
        if let Keep::Channels(channels) = &layer.keep {
            let mut seen = HashSet::new();
            if let Some(c) = channels.iter().find(|c| !seen.insert(**c)) {
                return Err(
                    PlanError::invalid(key("keep"), format!("lists channel {c} twice")).into(),
                );
            }
        }
        for tensor in picked {
            let name = select::layer_name(layer.name.as_deref(), &tensor);
            if !names.insert(name.clone()) {
                return Err(PlanError::invalid(
                    key("name"),
                    format!(
                        "gives the name `{name}` (tensor `{}`), which an earlier layer has; \
                         layer names must differ",
                        tensor.name
                    ),
                )
                .into());
            }
            if !matches!(layer.pool, 1 | 2 | 4 | 8) {
                return Err(PlanError::invalid(
                    key("pool"),
                    format!(
                        "is {}; stored maps can be average-pooled by 2, 4 or 8 (or 1, not at all)",
                        layer.pool
                    ),
                )
                .into());
            }
            let stores_none = layer.keep == Keep::Channels(Vec::new()) && layer.top_k.is_none();
            if layer.pool != 1 && stores_none {
                return Err(PlanError::invalid(
                    key("pool"),
                    format!(
                        "is {}, but the layer stores no maps to pool (it has no `keep` and no \
                         `top_k`); statistics always use the full maps. Add `keep` or `top_k`, \
                         or remove `pool`",
                        layer.pool
                    ),
                )
                .into());
            }
            specs.push(LayerSpec {
                name,
                tensor: tensor.name.to_owned(),
                selector: layer.tensor.clone(),
                position: i,
                keep: layer.keep.clone(),
                channel_axis: layer.channel_axis,
                tokens: layer.tokens,
                batch_axis: layer.batch_axis,
                grid_hints,
                positions: layer.positions,
                positions_dtype: layer.positions_dtype.unwrap_or(MapDtype::Float16),
                top: layer.top_k.map(|k| (k, layer.top_by)),
                pool: layer.pool,
            });
        }
    }
    Ok(specs)
}

/// `channel_axis`, `tokens` and `batch_axis` as far as they can be checked without the
/// tensor's shape.
fn check_layout(layer: &LayerConfig, key: &dyn Fn(&str) -> String) -> Result<(), PlanError> {
    if layer.channel_axis == Some(0) {
        return Err(PlanError::invalid(
            key("channel_axis"),
            "cannot be 0, the batch axis",
        ));
    }
    if let (Some(tokens), Some(axis)) = (layer.tokens, layer.channel_axis) {
        if axis != 2 {
            return Err(PlanError::invalid(
                key("channel_axis"),
                format!(
                    "is {axis}, but `tokens` puts the channels on the last axis of `[batch, \
                     tokens, dim]`, axis 2; remove `channel_axis` (or `tokens = {{ prefix = {}, \
                     grid = [{}, {}] }}`)",
                    tokens.prefix, tokens.grid[0], tokens.grid[1]
                ),
            ));
        }
    }
    if layer.tokens.is_some_and(|t| t.grid.contains(&0)) {
        return Err(PlanError::invalid(
            key("tokens.grid"),
            "has a side of 0; give the patches' grid as [height, width]",
        ));
    }
    if layer.batch_axis.is_some_and(|axis| axis > 1) {
        return Err(PlanError::invalid(
            key("batch_axis"),
            "must be 0 (batch first) or 1 (sequence first: `[tokens, batch, dim]`)",
        ));
    }
    Ok(())
}

/// Says why a selector picked nothing, and how to see what there is.
fn nothing_picked(selector: &Selector, text: &str, i: usize, model: &ModelFile) -> String {
    let graph = &model.graph;
    let see_all = format!(
        "`layerwise layers {}` lists every tensor",
        model.path.display()
    );
    match selector {
        Selector::Exact(_) => format!(
            "has no tensor `{text}` (layers[{i}].tensor); the closest names are: {}; {see_all}",
            graph.closest_tensors(text, 5).join(", ")
        ),
        Selector::Op { op, .. } => {
            let count = graph.nodes.iter().filter(|n| &n.op_type == op).count();
            if count == 0 {
                let mut ops: Vec<&str> = graph.nodes.iter().map(|n| n.op_type.as_str()).collect();
                ops.sort_unstable();
                ops.dedup();
                format!(
                    "`{text}` (layers[{i}].tensor) picks nothing: the model has no {op} node; \
                     its operator types are {}",
                    ops.join(", ")
                )
            } else {
                format!(
                    "`{text}` (layers[{i}].tensor) picks nothing: the model has {count} {op} \
                     node(s), so the position runs from 0 to {} or from -1 to -{count}",
                    count - 1
                )
            }
        }
        Selector::Glob(_) => format!(
            "no tensor matches `{text}` (layers[{i}].tensor); {see_all}, and with \
             `--match '{text}'` what a pattern matches"
        ),
    }
}

fn run_spec(config: &Config, fixed_batch: Option<usize>) -> Result<RunSpec, PlanError> {
    let run = &config.run;
    if run.batch_size == 0 {
        return Err(PlanError::invalid("run.batch_size", "must be at least 1"));
    }
    if run.part_size == 0 {
        return Err(PlanError::invalid("run.part_size", "must be at least 1"));
    }
    if run.queue_depth == 0 {
        return Err(PlanError::invalid("run.queue_depth", "must be at least 1"));
    }
    if !(0.0..=1.0).contains(&run.max_error_fraction) {
        return Err(PlanError::invalid(
            "run.max_error_fraction",
            format!(
                "is {}; it is a share of the images, from 0 (no bad image allowed) to 1 (never \
                 fail for bad images)",
                run.max_error_fraction
            ),
        ));
    }
    let cores = match run.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let gpu = run.provider != Provider::Cpu;
    Ok(RunSpec {
        batch_size: fixed_batch.unwrap_or(run.batch_size),
        threads: run.decode_threads.filter(|&n| n > 0).unwrap_or(cores),
        inference_threads: run.inference_threads.filter(|&n| n > 0).unwrap_or(if gpu {
            1
        } else {
            cores
        }),
        part_size: run.part_size,
        provider: run.provider,
        device: run.device,
        queue_depth: run.queue_depth,
        max_error_fraction: run.max_error_fraction,
        reduce: match run.reduce {
            Reduce::Auto if gpu => ReduceMode::Graph,
            Reduce::Auto | Reduce::Host => ReduceMode::Host,
            Reduce::Graph => ReduceMode::Graph,
        },
    })
}

fn output_spec(config: &Config, overrides: &Overrides) -> Result<OutputSpec, PlanError> {
    let dir = overrides
        .out
        .clone()
        .or_else(|| config.output.dir.clone())
        .ok_or_else(|| {
            PlanError::invalid(
                "output.dir",
                "is not set; set it in the config or pass --out DIR",
            )
        })?;
    if !crate::location::is_remote(&dir) && dir.is_file() {
        return Err(PlanError::invalid(
            "output.dir",
            format!("is {}, which is a file; choose a folder", dir.display()),
        ));
    }
    Ok(OutputSpec {
        location: Location::of(&dir),
        codecs: config
            .output
            .compression
            .codecs(config.output.positions_compression),
        map_dtype: config.output.map_dtype,
        shuffle: config.output.shuffle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Node;

    fn graph(input_shape: Vec<Dim>) -> ModelFile {
        ModelFile {
            path: PathBuf::from("m.onnx"),
            bytes: Vec::new(),
            sha256: "00".into(),
            graph: Graph {
                inputs: vec![TensorInfo {
                    name: "input".into(),
                    element_type: Some(ElementType::FLOAT),
                    shape: Some(input_shape),
                }],
                outputs: vec![],
                nodes: ["block1_conv1", "block5_conv3"]
                    .iter()
                    .map(|t| Node {
                        name: format!("{t}/Relu"),
                        op_type: "Relu".into(),
                        inputs: Vec::new(),
                        outputs: vec![t.to_string()],
                        ints: Vec::new(),
                    })
                    .collect(),
                ..Graph::default()
            },
        }
    }

    fn nchw_224() -> ModelFile {
        graph(vec![
            Dim::Symbolic("batch".into()),
            Dim::Fixed(3),
            Dim::Fixed(224),
            Dim::Fixed(224),
        ])
    }

    fn config(extra_preprocess: &str, layers: &str) -> Config {
        let root = std::env::temp_dir();
        Config::from_toml(&format!(
            r#"
name = "t"
[input]
root = "{}"
[model]
path = "m.onnx"
[preprocess]
{extra_preprocess}
{layers}
[output]
dir = "/tmp/layerwise-plan-test-out"
"#,
            root.display()
        ))
        .unwrap()
    }

    const ONE_LAYER: &str = "[[layers]]\nname = \"b1\"\ntensor = \"block1_conv1\"\nkeep = [0, 11]";

    fn plan(extra: &str, layers: &str, model: &ModelFile) -> Result<Plan, String> {
        Plan::new(config(extra, layers), model, &Overrides::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn paths_resolve_against_the_config_folder() {
        assert_eq!(
            normalize(Path::new("/work/pipelines/../demo/./images")),
            Path::new("/work/demo/images")
        );
        let mut c = config("", ONE_LAYER);
        c.model.path = PathBuf::from("../models/m.onnx");
        let c = resolve_paths(c, Path::new("/work/pipelines"));
        assert_eq!(c.model.path, Path::new("/work/models/m.onnx"));
        assert_eq!(
            c.input.root,
            Some(std::env::temp_dir()),
            "absolute paths stay"
        );
    }

    #[test]
    fn size_comes_from_a_static_model_input() {
        let p = plan("", ONE_LAYER, &nchw_224()).unwrap();
        assert_eq!((p.preprocess.height, p.preprocess.width), (224, 224));
        assert_eq!(p.model.input, "input");
        assert_eq!(p.model.fixed_batch, None);
        assert_eq!(p.run.batch_size, 16);
    }

    #[test]
    fn several_inputs_need_model_input_and_only_one_can_be_fed() {
        let mut m = nchw_224();
        let mut second = m.graph.inputs[0].clone();
        second.name = "right".into();
        m.graph.inputs.push(second);
        let err = plan("", ONE_LAYER, &m).unwrap_err();
        assert_eq!(
            err,
            "model m.onnx: has several inputs (`input` [batch, 3, 224, 224], image-like; \
             `right` [batch, 3, 224, 224], image-like); set `model.input` in [model] to the one \
             that takes images"
        );
        let mut c = config("", ONE_LAYER);
        c.model.input = Some("right".into());
        let err = Plan::new(c, &m, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs input `input` [batch, 3, 224, 224], image-like besides `right`, and layerwise feeds only the images"),
            "{err}"
        );
    }

    #[test]
    fn a_fixed_batch_overrides_batch_size() {
        let m = graph(vec![
            Dim::Fixed(1),
            Dim::Fixed(3),
            Dim::Fixed(8),
            Dim::Fixed(8),
        ]);
        let p = plan("", ONE_LAYER, &m).unwrap();
        assert_eq!(p.model.fixed_batch, Some(1));
        assert_eq!(p.run.batch_size, 1);
    }

    #[test]
    fn wrong_layout_is_explained() {
        let err = plan("layout = \"NHWC\"", ONE_LAYER, &nchw_224()).unwrap_err();
        assert!(
            err.contains("has 224 at axis 3, where layout NHWC puts the 3 colour channels"),
            "{err}"
        );
        assert!(err.contains("set `preprocess.layout = \"NCHW\"`"), "{err}");
    }

    #[test]
    fn size_conflicting_with_a_static_input_is_refused() {
        let err = plan("size = [100, 100]", ONE_LAYER, &nchw_224()).unwrap_err();
        assert!(err.contains("is fixed at 224 x 224"), "{err}");
    }

    #[test]
    fn symbolic_spatial_dims_need_a_size() {
        let m = graph(vec![
            Dim::Symbolic("n".into()),
            Dim::Fixed(3),
            Dim::Symbolic("h".into()),
            Dim::Symbolic("w".into()),
        ]);
        let err = plan("", ONE_LAYER, &m).unwrap_err();
        assert!(
            err.starts_with("config: `preprocess.size` is needed"),
            "{err}"
        );
        let p = plan("size = [32, 48]", ONE_LAYER, &m).unwrap();
        assert_eq!((p.preprocess.height, p.preprocess.width), (32, 48));
    }

    #[test]
    fn unknown_tensor_lists_the_closest_names() {
        let layers = "[[layers]]\nname = \"x\"\ntensor = \"block1_conv\"";
        let err = plan("", layers, &nchw_224()).unwrap_err();
        assert_eq!(
            err,
            "model m.onnx: has no tensor `block1_conv` (layers[0].tensor); \
             the closest names are: block1_conv1, block5_conv3; \
             `layerwise layers m.onnx` lists every tensor"
        );
    }

    fn picked(layers: &str) -> Vec<(String, String)> {
        let p = plan("", layers, &nchw_224()).unwrap();
        p.layers.into_iter().map(|l| (l.name, l.tensor)).collect()
    }

    fn pair(name: &str, tensor: &str) -> (String, String) {
        (name.to_owned(), tensor.to_owned())
    }

    #[test]
    fn selectors_expand_into_named_layers() {
        let layers = "[[layers]]\ntensor = \"op:Relu#0\"\n[[layers]]\nname = \"last\"\ntensor = \"op:Relu#-1\"";
        assert_eq!(
            picked(layers),
            [
                pair("block1_conv1", "block1_conv1"),
                pair("last", "block5_conv3")
            ]
        );
        let layers = "[[layers]]\nname = \"L{index}_{tensor}\"\ntensor = \"block*\"";
        assert_eq!(
            picked(layers),
            [
                pair("L0_block1_conv1", "block1_conv1"),
                pair("L1_block5_conv3", "block5_conv3")
            ]
        );
        let p = plan("", "[[layers]]\ntensor = \"block?_conv3\"", &nchw_224()).unwrap();
        assert_eq!(p.layers[0].selector, "block?_conv3");
        assert_eq!(p.layers[0].name, "block5_conv3");
    }

    #[test]
    fn selectors_that_pick_nothing_or_too_much_are_explained() {
        let m = nchw_224();
        let err = plan("", "[[layers]]\ntensor = \"op:Relu#2\"", &m).unwrap_err();
        assert!(err.contains("`op:Relu#2` (layers[0].tensor) picks nothing: the model has 2 Relu node(s), so the position runs from 0 to 1 or from -1 to -2"), "{err}");
        let err = plan("", "[[layers]]\ntensor = \"op:Conv#0\"", &m).unwrap_err();
        assert!(
            err.contains("the model has no Conv node; its operator types are Relu"),
            "{err}"
        );
        let err = plan("", "[[layers]]\ntensor = \"conv*\"", &m).unwrap_err();
        assert!(err.contains("no tensor matches `conv*` (layers[0].tensor); `layerwise layers m.onnx` lists every tensor, and with `--match 'conv*'` what a pattern matches"), "{err}");
        let err = plan("", "[[layers]]\nname = \"b\"\ntensor = \"block*\"", &m).unwrap_err();
        assert!(err.contains("`layers[0].name` is `b`, but `block*` picks 2 tensors; use a template such as \"{tensor}\""), "{err}");
        let err = plan("", "[[layers]]\ntensor = \"op:Relu\"", &m).unwrap_err();
        assert!(
            err.contains("`layers[0].tensor` `op:Relu` needs a position"),
            "{err}"
        );
    }

    #[test]
    fn value_mistakes_name_their_key() {
        let m = nchw_224();
        let cases = [
            ("mean = [1.0, 2.0]", ONE_LAYER, "`preprocess.mean` has 2 values"),
            ("std = [1.0, 0.0, 1.0]", ONE_LAYER, "`preprocess.std[1]` must be a finite, non-zero"),
            ("size = [0, 224]", ONE_LAYER, "is fixed at 224 x 224"),
            (
                "",
                "[[layers]]\nname = \"a\"\ntensor = \"block1_conv1\"\n[[layers]]\nname = \"a\"\ntensor = \"block5_conv3\"",
                "`layers[1].name` gives the name `a` (tensor `block5_conv3`), which an earlier layer has",
            ),
            (
                "",
                "[[layers]]\nname = \"a\"\ntensor = \"block1_conv1\"\nkeep = [1, 1]",
                "`layers[0].keep` lists channel 1 twice",
            ),
            (
                "",
                "[[layers]]\nname = \"a\"\ntensor = \"block1_conv1\"\nchannel_axis = 0",
                "`layers[0].channel_axis` cannot be 0",
            ),
        ];
        for (extra, layers, expected) in cases {
            let err = plan(extra, layers, &m).unwrap_err();
            assert!(err.contains(expected), "{extra} {layers}: {err}");
        }
        let mut no_layers = config("", ONE_LAYER);
        no_layers.layers.clear();
        let err = Plan::new(no_layers, &m, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config: `layers` is empty; add at least one"),
            "{err}"
        );
    }
}
