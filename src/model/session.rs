//! The ONNX Runtime session, with the requested tensors exposed as outputs.

use std::path::Path;

use ndarray::{ArrayViewD, Axis};
use ort::ep::ExecutionProvider;
use ort::session::builder::SessionBuilder;
use ort::session::{
    HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionInputValue, SessionOutputs,
};
use ort::value::{DynValue, TensorElementType, TensorRef};

use crate::config::Provider;
use crate::error::PlanError;
use crate::model::runtime::{self, Runtime};
use crate::model::ModelFile;
use crate::plan::{InputElement, InputType};
use crate::plan::{ModelSpec, Preprocess};

/// The batch axis of a tensor of `shape` on a batch of `batch`: 0 when it leads, else 1 for a
/// sequence-first tensor of rank 3 or more (`[tokens, batch, dim]`).
fn batch_axis(shape: &[usize], batch: usize) -> Option<usize> {
    match shape {
        [first, ..] if *first == batch && shape.len() >= 2 => Some(0),
        [_, second, _, ..] if *second == batch => Some(1),
        _ => None,
    }
}

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
    /// Each exposed tensor's batch axis: 0, or 1 for a sequence-first tensor.
    batch_axes: Vec<usize>,
    /// The added index inputs: name, and indices per image.
    indices: Vec<(String, usize)>,
}

/// The session option that tells ONNX Runtime where external initializer files are when the
/// model is loaded from memory.
const EXTERNAL_DATA_FOLDER: &str = "session.model_external_initializers_file_folder_path";

/// Where and with how many threads a session runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Execution {
    /// ONNX Runtime's intra-op threads (0: ONNX Runtime's default).
    pub threads: usize,
    /// The execution provider.
    pub provider: Provider,
    /// The GPU, for `cuda` and `tensorrt`.
    pub device: u32,
}

/// Registers the GPU execution provider a run asks for, or says which library provides it.
fn register_provider(
    builder: &mut SessionBuilder,
    runtime: &Runtime,
    execution: Execution,
) -> Result<(), PlanError> {
    let device = execution.device as i32;
    if execution.provider != Provider::Cpu {
        runtime.gpu_libraries();
    }
    let (name, available, registered) = match execution.provider {
        Provider::Cpu => return Ok(()),
        Provider::Cuda => {
            let ep = ort::ep::CUDA::default().with_device_id(device);
            ("CUDA", ort::ep::CUDA::is_available(), ep.register(builder))
        }
        Provider::Tensorrt => {
            let ep = ort::ep::TensorRT::default().with_device_id(device);
            (
                "TensorRT",
                ort::ep::TensorRT::is_available(),
                ep.register(builder),
            )
        }
    };
    let wheel = runtime.gpu_remedy();
    if !available.unwrap_or(false) {
        return Err(PlanError::Runtime(format!(
            "`[run] provider = \"{}\"` needs ONNX Runtime's {name} execution provider, which the \
             library in use ({}, version {}) does not have: {wheel}",
            name.to_lowercase(),
            runtime.located.path.display(),
            runtime.version
        )));
    }
    registered.map_err(|e| {
        let advice = match runtime.gpu_libraries() {
            [] => {
                "It needs the NVIDIA driver, and the CUDA and cuDNN libraries its onnxruntime-gpu \
                   release was built for, of which none are beside the runtime \
                   (site-packages/nvidia/*/lib): pip install \"onnxruntime-gpu[cuda,cudnn]\" (what \
                   \"layerwise[gpu]\" installs) brings them, or load the cluster's CUDA and cuDNN \
                   modules"
                    .to_owned()
            }
            found => format!(
                "The {} CUDA libraries beside the runtime (in {}) were loaded, so what is missing \
                 is named above: libcuda.so.1 comes with the NVIDIA driver (nvidia-smi shows it), \
                 TensorRT's libnvinfer with NVIDIA's tensorrt wheels or the cluster's module",
                found.len(),
                runtime::packages_folder(&runtime.located.path)
                    .unwrap_or(&runtime.located.path)
                    .display()
            ),
        };
        PlanError::Runtime(format!(
            "ONNX Runtime's {name} execution provider could not start on GPU {device}: {}.\n\
             {advice}; or set `[run] provider = \"cpu\"`",
            e.to_string().trim_end()
        ))
    })
}

/// A model of one `Relu` over a float vector, `x` -> `y` (written by `onnx.helper`: IR 7,
/// opset 13), that [`probe`] runs.
const PROBE_MODEL: &[u8] = include_bytes!("probe.onnx");

/// Opens a session on `execution`'s provider and runs a one-node model through it: what a
/// run does first, without a model of its own. The errors are those a run would give.
pub fn probe(runtime: &Runtime, execution: Execution) -> Result<(), PlanError> {
    let failed = |e: String| PlanError::Runtime(format!("ONNX Runtime cannot run a model: {e}"));
    let mut builder = Session::builder(&runtime.environment)
        .and_then(|b| Ok(b.with_intra_threads(execution.threads)?))
        .map_err(|e| failed(e.to_string()))?;
    register_provider(&mut builder, runtime, execution)?;
    let mut session = builder
        .commit_from_memory(PROBE_MODEL)
        .map_err(|e| failed(e.to_string()))?;
    let x = [-1f32, 2.0];
    let tensor =
        TensorRef::from_array_view(([x.len()], &x[..])).map_err(|e| failed(e.to_string()))?;
    let outputs = session
        .run(ort::inputs!["x" => tensor])
        .map_err(|e| failed(e.to_string()))?;
    let (_, y) = outputs["y"]
        .try_extract_tensor::<f32>()
        .map_err(|e| failed(e.to_string()))?;
    if y != [0.0, 2.0] {
        return Err(failed(format!("Relu([-1, 2]) gave {y:?}, not [0, 2]")));
    }
    Ok(())
}

/// What a session hands out: tensors of the model, and outputs of the nodes appended to it.
#[derive(Debug, Clone, Default)]
pub struct Exposure {
    /// The tensors fetched from each run, in order (made graph outputs).
    pub outputs: Vec<String>,
    /// Serialized `GraphProto` fields appended to the model (the nodes behind some outputs).
    pub appended: Vec<u8>,
    /// Inputs the appended fields add besides the image: int64 `[N, count]` indices, by name
    /// and count.
    pub indices: Vec<(String, usize)>,
}

impl Exposure {
    /// The model's own tensors, nothing appended.
    pub fn tensors(tensors: impl IntoIterator<Item = impl Into<String>>) -> Exposure {
        Exposure {
            outputs: tensors.into_iter().map(Into::into).collect(),
            appended: Vec::new(),
            indices: Vec::new(),
        }
    }
}

/// Creates a session over `model` with `exposure`'s nodes appended and its outputs exposed as
/// graph outputs. External initializer files resolve against the model's folder.
pub fn open_session(
    runtime: &Runtime,
    model: &mut ModelFile,
    exposure: &Exposure,
    execution: Execution,
) -> Result<Session, PlanError> {
    let path = model.path.clone();
    let folder = path.parent().unwrap_or(Path::new(".")).to_owned();
    let missing: Vec<&String> = model
        .graph
        .external_files
        .iter()
        .filter(|f| !folder.join(f).is_file())
        .collect();
    if let Some(file) = missing.first() {
        return Err(PlanError::Model {
            path,
            problem: format!(
                "keeps its weights in the external file `{file}`, which is not in {}; \
                 keep the .onnx file and its data files together",
                folder.display()
            ),
        });
    }
    let load_error = |e: String| PlanError::Model {
        path: path.clone(),
        problem: format!("ONNX Runtime cannot load it: {e}"),
    };
    let builder = (|| -> Result<SessionBuilder, String> {
        let builder = Session::builder(&runtime.environment).map_err(|e| e.to_string())?;
        let builder = builder
            .with_intra_threads(execution.threads)
            .map_err(|e| e.to_string())?;
        // Decoding and writing share the cores: idle ONNX Runtime threads must not spin.
        let builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| e.to_string())?;
        // Memory patterns pre-plan every tensor of a batch at once: more memory, no speed here.
        let builder = builder
            .with_memory_pattern(false)
            .map_err(|e| e.to_string())?;
        builder
            .with_config_entry(EXTERNAL_DATA_FOLDER, folder.to_string_lossy())
            .map_err(|e| e.to_string())
    })();
    let mut builder = builder.map_err(load_error)?;
    register_provider(&mut builder, runtime, execution)?;
    let tensors = exposure.outputs.iter().map(String::as_str);
    model
        .exposing(tensors, &exposure.appended, |bytes| {
            builder.commit_from_memory(bytes)
        })
        .map_err(|e| load_error(e.to_string()))
}

/// Run options that fetch exactly `tensors`.
pub fn fetching(tensors: &[String]) -> Result<RunOptions<HasSelectedOutputs>, ort::Error> {
    let selector = tensors
        .iter()
        .fold(OutputSelector::no_default(), |s, t| s.with(t.as_str()));
    Ok(RunOptions::new()?.with_outputs(selector))
}

/// Runs `session` once on an all-zero input of `shape` and the given element type (and zero
/// `indices`, the added index inputs), fetching `tensors`. The CPU arena then gives back the
/// regions this run left free: sized for the probe's batch, they would stay as fragments beside
/// the regions the real batches need.
pub fn zero_input_run<R>(
    session: &mut Session,
    tensors: &[String],
    (input, indices): (&str, &[(String, usize)]),
    shape: Vec<usize>,
    input_type: InputType,
    read: impl FnOnce(&SessionOutputs<'_>) -> R,
) -> Result<R, ort::Error> {
    let mut options = fetching(tensors)?;
    options.set("memory.enable_memory_arena_shrinkage", "cpu:0")?;
    let batch = shape[0];
    let len = shape.iter().product();
    let zero_indices: Vec<Vec<i64>> = indices.iter().map(|(_, n)| vec![0; batch * n]).collect();
    let outputs = match input_type {
        InputType::Float32 => {
            let zeros = vec![0f32; len];
            let tensor = TensorRef::from_array_view((shape, &zeros[..]))?;
            let inputs = with_indices(input, tensor.into(), indices, &zero_indices, batch)?;
            session.run_with_options(inputs, &options)?
        }
        InputType::Uint8 => {
            let zeros = vec![0u8; len];
            let tensor = TensorRef::from_array_view((shape, &zeros[..]))?;
            let inputs = with_indices(input, tensor.into(), indices, &zero_indices, batch)?;
            session.run_with_options(inputs, &options)?
        }
    };
    Ok(read(&outputs))
}

/// A run's inputs: the image tensor as `input`, and each index input (`[batch, count]`) from
/// `values`.
fn with_indices<'v>(
    input: &str,
    tensor: SessionInputValue<'v>,
    indices: &[(String, usize)],
    values: &'v [Vec<i64>],
    batch: usize,
) -> Result<Vec<(String, SessionInputValue<'v>)>, ort::Error> {
    let mut inputs = vec![(input.to_owned(), tensor)];
    for ((name, count), values) in indices.iter().zip(values) {
        let tensor = TensorRef::from_array_view(([batch, *count], &values[..]))?;
        inputs.push((name.clone(), SessionInputValue::from(tensor)));
    }
    Ok(inputs)
}

/// The ONNX name of an element type, e.g. `int64`.
pub fn element_name(t: TensorElementType) -> String {
    format!("{t:?}").to_lowercase()
}

/// What a session needs of a plan: the model's input, how an image becomes its tensor, images
/// per call, and where and how it runs.
#[derive(Debug, Clone, Copy)]
pub struct SessionSpec<'a> {
    /// The model's input, and the batch size it fixes.
    pub model: &'a ModelSpec,
    /// How an image becomes the input tensor (its shape and element type).
    pub preprocess: &'a Preprocess,
    /// Images per model call (a model with a fixed batch size uses its own).
    pub batch_size: usize,
    /// Threads, provider and device.
    pub execution: Execution,
}

impl Extractor {
    /// Creates the session with `exposure`'s outputs, checks that each is a float32 tensor,
    /// then makes one probe run on a zero input to learn each output's real shape.
    pub fn open(
        runtime: &Runtime,
        spec: SessionSpec,
        model: &mut ModelFile,
        exposure: &Exposure,
    ) -> Result<Extractor, PlanError> {
        let path = model.path.clone();
        let model_error = |problem: String| PlanError::Model {
            path: path.clone(),
            problem,
        };
        let tensors = exposure.outputs.clone();
        let mut session = open_session(runtime, model, exposure, spec.execution)?;
        for outlet in session.outputs() {
            match outlet.dtype().tensor_type() {
                Some(TensorElementType::Float32) => {}
                other => {
                    let kind = other.map_or("non-tensor".to_owned(), element_name);
                    return Err(model_error(format!(
                        "tensor `{}` holds {kind} values; layerwise extracts float32 activations. \
                         Pick another tensor: `layerwise layers {}` shows each tensor's type",
                        outlet.name(),
                        path.display()
                    )));
                }
            }
        }
        let fixed_batch = spec.model.fixed_batch.is_some();
        let probe_batch = spec.model.fixed_batch.unwrap_or(1);
        let input_shape = spec.preprocess.tensor_shape(1)[1..].to_vec();
        let probe = zero_input_run(
            &mut session,
            &tensors,
            (&spec.model.input, &exposure.indices),
            spec.preprocess.tensor_shape(probe_batch).to_vec(),
            spec.preprocess.input_type,
            |outputs| {
                tensors
                    .iter()
                    .map(|t| {
                        let shape = outputs[t.as_str()].dtype().tensor_shape().cloned();
                        shape.map(|s| s.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>())
                    })
                    .collect::<Vec<_>>()
            },
        )
        .map_err(|e| model_error(format!("the probe run on a zero input failed: {e}")))?;
        let (mut shapes, mut batch_axes) = (Vec::new(), Vec::new());
        for (tensor, shape) in tensors.iter().zip(probe) {
            let axis = shape.as_deref().and_then(|s| batch_axis(s, probe_batch));
            match (shape, axis) {
                (Some(mut shape), Some(axis)) => {
                    shape.remove(axis);
                    shapes.push(shape);
                    batch_axes.push(axis);
                }
                (other, _) => {
                    return Err(model_error(format!(
                        "tensor `{tensor}` has shape {other:?} on a batch of {probe_batch}: \
                         it has no batch axis, so it cannot be split per image"
                    )))
                }
            }
        }
        let options = fetching(&tensors)
            .map_err(|e| model_error(format!("ONNX Runtime cannot set up a run: {e}")))?;
        Ok(Extractor {
            session,
            options,
            input: spec.model.input.clone(),
            tensors,
            image_len: spec.preprocess.image_len(),
            input_shape,
            batch: spec.batch_size,
            fixed_batch,
            shapes,
            batch_axes,
            indices: exposure.indices.clone(),
        })
    }

    /// Images per model call (the model's own, when it fixes one).
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The per-image shape of each exposed tensor, in `Plan::tensors()` order.
    pub fn shapes(&self) -> &[ImageShape] {
        &self.shapes
    }

    /// The batch axis of each exposed tensor: 0, or 1 for a sequence-first one.
    pub fn batch_axes(&self) -> &[usize] {
        &self.batch_axes
    }

    /// The index of `tensor` in the exposed tensors.
    pub fn tensor_index(&self, tensor: &str) -> usize {
        self.tensors
            .iter()
            .position(|t| t == tensor)
            .expect("every layer's tensor is exposed")
    }

    /// Runs `images` images whose input values fill the start of `input` and returns the
    /// exposed tensors, owned, so that they can be reduced while the next batch runs. With a
    /// fixed batch size, `input` must hold a whole batch (the rest zero padding).
    pub fn run<T: InputElement>(
        &mut self,
        input: &[T],
        images: usize,
        mut indices: Vec<Vec<i64>>,
    ) -> Result<BatchTensors, ort::Error> {
        let fed = if self.fixed_batch {
            input.len() / self.image_len
        } else {
            images
        };
        let mut shape = Vec::with_capacity(1 + self.input_shape.len());
        shape.push(fed);
        shape.extend_from_slice(&self.input_shape);
        let tensor = TensorRef::from_array_view((shape, &input[..fed * self.image_len]))?;
        // A fixed batch's padding images get position 0.
        for (values, (_, count)) in indices.iter_mut().zip(&self.indices) {
            values.resize(fed * count, 0);
        }
        let inputs = with_indices(&self.input, tensor.into(), &self.indices, &indices, fed)?;
        let mut outputs = self.session.run_with_options(inputs, &self.options)?;
        let mut values = Vec::with_capacity(self.tensors.len());
        for (name, &axis) in self.tensors.iter().zip(&self.batch_axes) {
            let value = outputs
                .remove(name.as_str())
                .ok_or_else(|| ort::Error::new(format!("tensor `{name}` was not computed")))?;
            let view = value.try_extract_array::<f32>().map_err(|e| {
                ort::Error::new(format!("tensor `{name}` cannot be read as float32: {e}"))
            })?;
            if view.ndim() < 2 + axis || view.shape()[axis] != fed {
                return Err(ort::Error::new(format!(
                    "tensor `{name}` has shape {:?}, which has no batch axis of {fed}",
                    view.shape()
                )));
            }
            values.push(value);
        }
        Ok(BatchTensors {
            values,
            images,
            batch_axes: self.batch_axes.clone(),
        })
    }
}

/// The exposed tensors of one model call, owned by the caller (ONNX Runtime allocated them for
/// this call only), each checked to be float32 with a batch axis.
pub struct BatchTensors {
    values: Vec<DynValue>,
    images: usize,
    batch_axes: Vec<usize>,
}

impl BatchTensors {
    /// One view per exposed tensor, in the extractor's order, batch first (a sequence-first
    /// tensor's axes swapped, not copied), cut to the images of the batch (without a fixed
    /// batch's padding).
    pub fn views(&self) -> Vec<ArrayViewD<'_, f32>> {
        self.values
            .iter()
            .zip(&self.batch_axes)
            .map(|(value, &axis)| {
                let mut view = value
                    .try_extract_array::<f32>()
                    .expect("checked to be float32 when the batch ran");
                view.swap_axes(0, axis);
                view.slice_axis_move(Axis(0), (0..self.images).into())
            })
            .collect()
    }

    /// The bytes of the tensors (with a fixed batch's padding).
    pub fn bytes(&self) -> usize {
        self.values
            .iter()
            .map(|value| {
                let view = value
                    .try_extract_array::<f32>()
                    .expect("checked to be float32 when the batch ran");
                view.len() * std::mem::size_of::<f32>()
            })
            .sum()
    }
}
