//! Extraction: the full tensors of chosen layers for a list of images, in memory, with no file
//! written. The same engine as `layerwise run` (decoding, preprocessing, selectors, session
//! options, runtime lookup), its config made from a request instead of a file; the batches'
//! tensors are copied into one array per layer instead of reduced.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use crate::engine::{BatchResult, Prepared};
use crate::input::{self, Content, Sample};
use crate::model::session::BatchTensors;
use crate::plan::{ConfigSource, Overrides};

/// What to extract, as a config would say it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The ONNX model.
    pub model: PathBuf,
    /// The layers: each a selector (a name, a glob or `op:Type#n`) or a `[[layers]]` table.
    pub layers: Vec<Value>,
    /// The `[preprocess]` keys.
    pub preprocess: Map<String, Value>,
    /// More `[run]` keys (`batch_size`, `threads`, `provider`, `device`, `onnxruntime` ...).
    pub run: Map<String, Value>,
    /// What messages call the request, e.g. `extract(...)`.
    pub name: String,
}

/// The images to extract from.
#[derive(Debug, Clone)]
pub enum Images {
    /// Image files (JPEG, PNG ...), decoded as a run decodes them.
    Paths(Vec<PathBuf>),
    /// Decoded 8-bit RGB images.
    Pixels(Vec<Arc<image::RgbImage>>),
}

/// What to do with an image that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop with an error naming the image.
    Raise,
    /// Leave it out, and list it in [`Extracted::errors`].
    Skip,
}

/// One layer's activations over the images that were read.
#[derive(Debug, Clone)]
pub struct LayerTensor {
    /// The layer's name (as the tables would name it).
    pub name: String,
    /// The tensor it is.
    pub tensor: String,
    /// `[images, ...]`: the tensor's per-image shape after the image axis (a sequence-first
    /// tensor's batch axis moved to the front).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// The result of [`extract`].
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// One per layer, in the order the layers were asked for (a glob's tensors in graph order).
    pub layers: Vec<LayerTensor>,
    /// The indices of the images that were read, in order: row `i` of every layer is image
    /// `read[i]`.
    pub read: Vec<usize>,
    /// The images left out, with why.
    pub errors: Vec<(usize, String)>,
}

/// The config a request stands for: a folder input that is never listed, statistics reduced
/// on the host (so the session exposes the tensors themselves), no output written.
fn config_text(request: &Request) -> Result<String> {
    let layers: Vec<Value> = request
        .layers
        .iter()
        .map(|layer| match layer {
            Value::String(selector) => json!({ "tensor": selector }),
            other => other.clone(),
        })
        .collect();
    let mut run = request.run.clone();
    run.insert("reduce".into(), json!("host"));
    let config = json!({
        "name": "extract",
        "input": { "root": "." },
        "model": { "path": request.model },
        "preprocess": request.preprocess,
        "layers": layers,
        "run": run,
        "output": { "dir": "extract-writes-nothing" },
    });
    let table = toml::Value::try_from(without_nulls(config)).context("the request as TOML")?;
    Ok(toml::to_string(&table)?)
}

/// `value` with its null members left out (TOML has no null: a key not given is the default).
pub fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Runs `images` through the model and returns the full tensors of the requested layers.
/// Memory: the result, plus the tensors of at most two batches.
pub fn extract(request: &Request, images: &Images, on_error: OnError) -> Result<Extracted> {
    let source = ConfigSource::Text {
        text: config_text(request)?,
        name: PathBuf::from(&request.name),
        folder: std::env::current_dir().context("the current folder")?,
    };
    let mut prepared = Prepared::load_source(&source, &Overrides::default())?;
    let samples = samples(images);
    let pool = prepared.pool()?;
    let indices: Vec<usize> = prepared.reducers.iter().map(|r| r.tensor_index).collect();
    let mut out = Collector::new(&prepared, samples.len());
    let mut batcher = prepared.batcher(&pool);
    batcher.capture_tensors();
    batcher.process_all(&mut input::Slice(&samples), |batch| {
        out.take(batch, &indices, on_error)
    })?;
    Ok(out.finish())
}

/// Samples numbered by their index in `images`.
fn samples(images: &Images) -> Vec<Sample> {
    let sample = |i: usize, path: String, content: Content| Sample {
        image_id: i as u64,
        path,
        source: None,
        key: None,
        label: None,
        content,
    };
    match images {
        Images::Paths(paths) => paths
            .iter()
            .enumerate()
            .map(|(i, p)| sample(i, p.display().to_string(), Content::File(p.clone())))
            .collect(),
        Images::Pixels(pixels) => pixels
            .iter()
            .enumerate()
            .map(|(i, p)| sample(i, format!("images[{i}]"), Content::Pixels(p.clone())))
            .collect(),
    }
}

/// The layers' arrays, filled batch by batch.
struct Collector {
    result: Extracted,
}

impl Collector {
    /// Empty arrays of each layer's per-image shape (from the session), with room for
    /// `images`.
    fn new(prepared: &Prepared, images: usize) -> Collector {
        let layers = (prepared.plan.layers.iter().zip(&prepared.reducers))
            .map(|(layer, reducer)| {
                let per_image = &prepared.extractor.shapes()[reducer.tensor_index];
                LayerTensor {
                    name: layer.name.clone(),
                    tensor: layer.tensor.clone(),
                    shape: std::iter::once(0)
                        .chain(per_image.iter().copied())
                        .collect(),
                    values: Vec::with_capacity(per_image.iter().product::<usize>() * images),
                }
            })
            .collect();
        Collector {
            result: Extracted {
                layers,
                ..Extracted::default()
            },
        }
    }

    /// Copies a batch's tensors into the arrays; a failed image stops the extraction unless
    /// they are skipped.
    fn take(&mut self, batch: BatchResult, indices: &[usize], on: OnError) -> Result<()> {
        let captured = batch.captured.expect("the batcher captures tensors");
        if let (OnError::Raise, Some((id, reason))) = (on, captured.failed.first()) {
            anyhow::bail!(
                "image {id} cannot be used: {reason} (errors=\"skip\" leaves such images out)"
            );
        }
        let ids = captured.ok_ids.iter().map(|&id| id as usize);
        self.result.read.extend(ids);
        let failed = captured.failed.into_iter();
        (self.result.errors).extend(failed.map(|(id, reason)| (id as usize, reason)));
        if let Some(tensors) = &captured.tensors {
            self.append(tensors, indices);
        }
        Ok(())
    }

    /// Appends each layer's slice of a batch.
    fn append(&mut self, tensors: &BatchTensors, indices: &[usize]) {
        let views = tensors.views();
        for (layer, &index) in self.result.layers.iter_mut().zip(indices) {
            let view = &views[index];
            debug_assert_eq!(view.shape()[1..], layer.shape[1..]);
            layer.shape[0] += view.shape()[0];
            match view.as_slice() {
                Some(slice) => layer.values.extend_from_slice(slice),
                None => layer.values.extend(view.iter().copied()),
            }
        }
    }

    fn finish(self) -> Extracted {
        self.result
    }
}
