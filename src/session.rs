//! The ONNX Runtime session, with the requested tensors exposed as outputs.

use ndarray::ArrayViewD;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::TensorRef;

use crate::error::PlanError;
use crate::model::ModelFile;
use crate::plan::Plan;
use crate::runtime::Runtime;

/// The shape of one image's slice of an extracted tensor (the batch axis removed).
pub type ImageShape = Vec<usize>;

/// Runs batches through the model and hands out the requested tensors.
pub struct Extractor {
    session: Session,
    options: RunOptions<HasSelectedOutputs>,
    input: String,
    tensors: Vec<String>,
    input_shape: Vec<usize>,
    image_len: usize,
    batch: usize,
    fixed_batch: bool,
    shapes: Vec<ImageShape>,
}

impl Extractor {
    /// Creates the session with `plan.tensors()` exposed, then makes one probe run on a zero
    /// input to learn each tensor's real shape and check it is a float32 tensor with a batch axis.
    pub fn open(runtime: &Runtime, plan: &Plan, model: ModelFile) -> Result<Extractor, PlanError> {
        let path = model.path.clone();
        let model_error = |problem: String| PlanError::Model {
            path: path.clone(),
            problem,
        };
        let tensors: Vec<String> = plan.tensors().into_iter().map(String::from).collect();
        let bytes = model.with_outputs(tensors.iter().map(String::as_str));
        let session = (|| -> Result<Session, String> {
            let builder = Session::builder(&runtime.environment).map_err(|e| e.to_string())?;
            let mut builder = builder
                .with_intra_threads(plan.run.threads)
                .map_err(|e| e.to_string())?;
            builder
                .commit_from_memory(&bytes)
                .map_err(|e| e.to_string())
        })()
        .map_err(|e| model_error(format!("ONNX Runtime cannot load it: {e}")))?;
        drop(bytes);
        let fixed_batch = plan.model.fixed_batch.is_some();
        let probe_batch = plan.model.fixed_batch.unwrap_or(1);
        let input_shape = plan.preprocess.tensor_shape(1)[1..].to_vec();
        let selector = tensors
            .iter()
            .fold(OutputSelector::no_default(), |s, t| s.with(t.as_str()));
        let options = RunOptions::new()
            .map_err(|e| model_error(format!("ONNX Runtime cannot set up a run: {e}")))?
            .with_outputs(selector);
        let mut extractor = Extractor {
            session,
            options,
            input: plan.model.input.clone(),
            tensors,
            image_len: plan.preprocess.image_len(),
            input_shape,
            batch: plan.run.batch_size,
            fixed_batch,
            shapes: Vec::new(),
        };
        let zeros = vec![0.0; probe_batch * extractor.image_len];
        let shapes = extractor
            .run(&zeros, probe_batch, |views| {
                views
                    .iter()
                    .map(|v| v.shape()[1..].to_vec())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| model_error(format!("the probe run on a zero input failed: {e}")))?;
        extractor.shapes = shapes;
        Ok(extractor)
    }

    /// Images per model call (the model's own, when it fixes one).
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The per-image shape of each exposed tensor, in `Plan::tensors()` order.
    pub fn shapes(&self) -> &[ImageShape] {
        &self.shapes
    }

    /// The index of `tensor` in the exposed tensors.
    pub fn tensor_index(&self, tensor: &str) -> usize {
        self.tensors
            .iter()
            .position(|t| t == tensor)
            .expect("every layer's tensor is exposed")
    }

    /// Runs `images` images whose input values fill the start of `input`, then gives `reduce`
    /// one view per exposed tensor, cut to those images. With a fixed batch size, `input` must
    /// hold a whole batch (the rest zero padding).
    pub fn run<R>(
        &mut self,
        input: &[f32],
        images: usize,
        reduce: impl FnOnce(&[ArrayViewD<'_, f32>]) -> R,
    ) -> Result<R, ort::Error> {
        let fed = if self.fixed_batch {
            input.len() / self.image_len
        } else {
            images
        };
        let mut shape = Vec::with_capacity(1 + self.input_shape.len());
        shape.push(fed);
        shape.extend_from_slice(&self.input_shape);
        let tensor = TensorRef::from_array_view((shape, &input[..fed * self.image_len]))?;
        let outputs = self
            .session
            .run_with_options(ort::inputs![self.input.as_str() => tensor], &self.options)?;
        let mut views = Vec::with_capacity(self.tensors.len());
        for name in &self.tensors {
            let view = outputs[name.as_str()]
                .try_extract_array::<f32>()
                .map_err(|e| {
                    ort::Error::new(format!("tensor `{name}` cannot be read as float32: {e}"))
                })?;
            if view.ndim() < 2 || view.shape()[0] != fed {
                return Err(ort::Error::new(format!(
                    "tensor `{name}` has shape {:?}, which has no batch axis of {fed}",
                    view.shape()
                )));
            }
            views.push(view.slice_axis_move(ndarray::Axis(0), (0..images).into()));
        }
        Ok(reduce(&views))
    }
}
