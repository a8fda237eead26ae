//! The engine: a plan made ready to process images (its runtime, session and reducers) and the
//! batches it turns into rows (decode in parallel, run, reduce), overlapping the stages. The
//! part loop of a run ([`crate::pipeline`]), `check`, `plot` and a binding call it; it knows
//! nothing of parts, markers or `run.json`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fast_image_resize::Resizer;
use rayon::prelude::*;

use crate::config::identity::RunIdentity;
use crate::config::Reduce;
use crate::cpu::{self, thread_time, Ledger, Meter};
use crate::error::PlanError;
use crate::input::preprocess::SourceSize;
use crate::input::{self, Content, Sample, SampleReader};
use crate::model::reduction::{self, LayerGraph};
use crate::model::runtime::{self, Runtime, SearchPath};
use crate::model::session::{BatchTensors, Execution, Exposure, Extractor, SessionSpec};
use crate::model::ModelFile;
use crate::output::provenance::{
    self, LayerInfo, LayoutRecord, ModelInfo, Provenance, RuntimeInfo,
};
use crate::output::tables::{Formats, ImageRef, ImageStatus, Rows};
use crate::plan::{ConfigSource, Overrides, Plan, ReduceMode};
use crate::plan::{InputElement, InputType, Preprocess};
use crate::reduce::layout::Decided;
use crate::reduce::top::LayerTop;
use crate::reduce::{self, LayerKind, LayerReducer};

/// A plan made ready to process images: its session, and its layers' reducers.
pub struct Prepared {
    /// The validated plan.
    pub plan: Plan,
    /// The ONNX Runtime library in use.
    pub runtime: &'static Runtime,
    /// The session with the plan's tensors exposed.
    pub extractor: Extractor,
    /// One reducer per layer, in plan order.
    pub reducers: Vec<LayerReducer>,
    /// The layers with their real shapes, as recorded in `run.json`.
    pub layers: Vec<LayerInfo>,
    /// The tables' list formats (element types, the `positions` vectors' length).
    pub formats: Formats,
}

impl Prepared {
    /// Validates a config against its model and runtime, opens the session and checks every
    /// layer against its tensor's real shape; nothing is read from the input folder.
    pub fn load(config: &Path, overrides: &Overrides) -> Result<Prepared> {
        Prepared::load_source(&config.into(), overrides)
    }

    /// [`Prepared::load`] for a config from anywhere.
    pub fn load_source(source: &ConfigSource, overrides: &Overrides) -> Result<Prepared> {
        let (plan, model) = Plan::load_source(source, overrides)?;
        Prepared::new(plan, model).map_err(|e| crate::error::in_config(e, source.path()))
    }

    /// Prepares a validated plan over its model.
    pub fn new(plan: Plan, mut model: ModelFile) -> Result<Prepared> {
        let runtime = runtime::load(&SearchPath::standard(plan.config.run.onnxruntime.clone()))?;
        tracing::info!(
            "ONNX Runtime {} from {} ({})",
            runtime.version,
            runtime.located.path.display(),
            runtime.located.source
        );
        let tensors = Exposure::tensors(plan.tensors());
        let mut extractor = Extractor::open(runtime, session_spec(&plan), &mut model, &tensors)?;
        let mut reducers = plan
            .layers
            .iter()
            .map(|layer| {
                let index = extractor.tensor_index(&layer.tensor);
                let batch_axis = extractor.batch_axes()[index];
                LayerReducer::new(layer, index, &extractor.shapes()[index], batch_axis)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if plan.run.reduce == ReduceMode::Graph {
            match reduce_in_graph(&mut reducers, model.graph.opset) {
                Ok(exposure) => {
                    drop(extractor);
                    extractor =
                        Extractor::open(runtime, session_spec(&plan), &mut model, &exposure)?;
                    check_graph_shapes(&reducers, &extractor, &model.path)?;
                    tracing::info!("statistics and stored maps are computed in the model's graph");
                }
                Err(problem) if plan.config.run.reduce == Reduce::Graph => {
                    return Err(PlanError::Model {
                        path: model.path.clone(),
                        problem,
                    }
                    .into())
                }
                Err(problem) => {
                    tracing::info!("statistics are computed here, not in the graph: {problem}")
                }
            }
        }
        let layers: Vec<LayerInfo> = plan
            .layers
            .iter()
            .zip(&reducers)
            .map(|(l, r)| LayerInfo::of(l, r))
            .collect();
        layers.iter().for_each(log_layer);
        let formats = reduce::formats(plan.output.map_dtype, &reducers)?;
        Ok(Prepared {
            plan,
            runtime,
            extractor,
            reducers,
            layers,
            formats,
        })
    }

    /// The run's identity, with the layout of each layer entry that left it to layerwise made
    /// explicit as it resolved (channels on axis 1, as 0.1.0 recorded every layer, or the
    /// inferred token grid): runs compare by how their tensors were read, so a run of an
    /// earlier version resumes where it read its layers the same way, and not where it did not.
    pub fn identity(&self) -> RunIdentity {
        let mut config = self.plan.config.clone();
        for (i, entry) in config.layers.iter_mut().enumerate() {
            if entry.channel_axis.is_some() || entry.tokens.is_some() {
                continue;
            }
            let layouts: Vec<_> = (self.plan.layers.iter().zip(&self.reducers))
                .filter(|(layer, _)| layer.position == i)
                .map(|(_, reducer)| reducer.layout)
                .collect();
            if let [first, rest @ ..] = layouts.as_slice() {
                if rest.iter().all(|layout| layout == first) {
                    match first.tokens {
                        Some(tokens) => entry.tokens = Some(tokens),
                        None => entry.channel_axis = Some(first.channel_axis),
                    }
                }
            }
        }
        RunIdentity::of(&config, &self.plan.model.sha256)
    }

    /// What produced the dataset, as of now.
    pub fn provenance(&self) -> Provenance {
        Provenance {
            name: self.plan.name.clone(),
            tool: format!("layerwise {}", env!("CARGO_PKG_VERSION")),
            onnxruntime: RuntimeInfo {
                version: self.runtime.version.clone(),
                library: self.runtime.located.path.display().to_string(),
            },
            model: ModelInfo {
                path: self.plan.model.path.display().to_string(),
                sha256: self.plan.model.sha256.clone(),
            },
            layers: self.layers.clone(),
            config: self.plan.config.clone(),
            config_folder: self.plan.config.folder.display().to_string(),
            started_at: provenance::now_rfc3339(),
        }
    }

    /// A batcher over this engine whose workers are `pool`'s (from [`Prepared::pool`]): for a
    /// few images outside a run (figures, maps computed again).
    pub fn batcher<'a>(&'a mut self, pool: &'a rayon::ThreadPool) -> Batcher<'a> {
        Batcher::new(
            &self.plan,
            &mut self.extractor,
            &self.reducers,
            self.formats,
            pool,
        )
    }

    /// The worker threads for decoding and reduction.
    pub fn pool(&self) -> Result<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.plan.run.threads)
            .thread_name(|i| format!("{}-{i}", cpu::WORKER))
            .start_handler(|_| cpu::yield_to_inference())
            .build()
            .context("cannot start the worker threads")
    }
}

/// What the session needs of `plan`.
fn session_spec(plan: &Plan) -> SessionSpec<'_> {
    SessionSpec {
        model: &plan.model,
        preprocess: &plan.preprocess,
        batch_size: plan.run.batch_size,
        execution: Execution {
            threads: plan.run.inference_threads,
            provider: plan.run.provider,
            device: plan.run.device,
        },
    }
}

/// What the session must expose for `reducers` to take their maps layers from reductions
/// appended to the model; points each reducer at its outputs.
fn reduce_in_graph(reducers: &mut [LayerReducer], opset: Option<i64>) -> Result<Exposure, String> {
    let layers: Vec<LayerGraph> = reducers.iter().filter_map(LayerReducer::graph).collect();
    let appended = reduction::append(&layers, opset)?;
    let mut outputs: Vec<String> = Vec::new();
    let vectors = reducers
        .iter()
        .filter(|r| r.graph().is_none())
        .map(|r| r.tensor());
    let reduced = appended.outputs.iter().flat_map(|o| {
        let sampled = o.sampled.as_ref().map(|s| &s.output);
        std::iter::once(&o.stats)
            .chain(&o.maps)
            .chain(&o.prefix)
            .chain(sampled)
            .map(String::as_str)
    });
    for name in vectors.chain(reduced) {
        if !outputs.iter().any(|o| o == name) {
            outputs.push(name.to_owned());
        }
    }
    let index = |name: &str| outputs.iter().position(|o| o == name).expect("exposed");
    let mut reduced = appended.outputs.iter();
    for r in reducers.iter_mut() {
        match r.graph().is_some() {
            true => r.reduced_in_graph(reduced.next().expect("one per maps layer"), index),
            false => r.tensor_index = index(r.tensor()),
        }
    }
    let indices = appended
        .outputs
        .iter()
        .filter_map(|o| o.sampled.as_ref())
        .map(|s| (s.input.clone(), s.count))
        .collect();
    Ok(Exposure {
        outputs,
        appended: appended.graph,
        indices,
    })
}

/// Checks that the appended reductions give the shapes the reducers expect.
fn check_graph_shapes(
    reducers: &[LayerReducer],
    extractor: &Extractor,
    model: &Path,
) -> Result<(), PlanError> {
    for r in reducers {
        for (index, want) in r.graph_shapes() {
            let got = &extractor.shapes()[index];
            if *got != want {
                return Err(PlanError::Model {
                    path: model.to_owned(),
                    problem: format!(
                        "the reductions appended for layer {} give per-image shape {got:?}, not \
                         {want:?}; set `[run] reduce = \"host\"`",
                        r.name
                    ),
                });
            }
        }
    }
    Ok(())
}

fn log_layer(l: &LayerInfo) {
    if l.selector != l.tensor {
        tracing::info!(
            "layer {}: selector `{}` picked tensor {}",
            l.name,
            l.selector,
            l.tensor
        );
    }
    let kept = match l.kind {
        LayerKind::Maps => format!(", {} maps kept", l.kept.len()),
        LayerKind::Vector => String::new(),
    };
    let how = match l.layout {
        Some(LayoutRecord {
            decided: Decided::Inferred,
            batch_axis,
            ..
        }) => match batch_axis {
            1 => " (sequence first; inferred, set `tokens` to override)",
            _ => " (inferred; set `tokens` to override)",
        },
        Some(LayoutRecord { batch_axis: 1, .. }) => " (sequence first)",
        _ => "",
    };
    tracing::info!(
        "layer {} (tensor {}): {}{how}{kept}",
        l.name,
        l.tensor,
        l.describe()
    );
}

/// Turns batches of listed files into rows: decode in parallel, run, reduce. Two input buffers
/// let the next batch decode while the current one runs.
pub struct Batcher<'a> {
    stage: Stage<'a>,
    input: InputBuffers,
}

/// What a batch goes through, besides its input buffer.
struct Stage<'a> {
    plan: &'a Plan,
    pool: &'a rayon::ThreadPool,
    cpu: Arc<Ledger>,
    extractor: &'a mut Extractor,
    reducers: &'a [LayerReducer],
    formats: Formats,
    tops: Vec<Option<LayerTop>>,
    times: StageTimes,
    capture: bool,
}

/// Wall time spent in each stage, summed over batches (decoding overlaps the others).
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Reading, decoding and preprocessing images (in parallel).
    pub decode: Duration,
    /// ONNX Runtime.
    pub model: Duration,
    /// Statistics, kept maps, vectors and top maps.
    pub reduce: Duration,
    /// Waiting for the writer thread to take a batch.
    pub write_wait: Duration,
}

/// The two reused input tensors, in the model input's element type.
enum InputBuffers {
    F32([Vec<f32>; 2]),
    U8([Vec<u8>; 2]),
}

/// A batch decoded into an input buffer: each file's status, and the ids of the images that
/// decoded, which fill the start of the buffer.
struct Decoded {
    statuses: Vec<ImageStatus>,
    ok_ids: Vec<u64>,
    took: Duration,
}

/// What one batch produced.
pub struct BatchResult {
    /// Its rows (without the layers' rows when its tensors are captured).
    pub rows: Rows,
    /// Its tensors, when the batcher captures them ([`Batcher::capture_tensors`]).
    pub captured: Option<Captured>,
    /// Its first image id, and one past its last.
    pub ids: (u64, u64),
    /// Images run through the model.
    pub ok: u64,
    /// Images that could not be used.
    pub error: u64,
}

/// A batch's tensors as the model produced them, handed over instead of reduced.
pub struct Captured {
    /// The exposed tensors; a layer's is at its reducer's `tensor_index`.
    pub tensors: Option<BatchTensors>,
    /// The images in them, in order (those that decoded).
    pub ok_ids: Vec<u64>,
    /// The images that could not be used, with why.
    pub failed: Vec<(u64, String)>,
}

impl<'a> Batcher<'a> {
    /// A batcher over a prepared session whose rows' list columns are as `formats`
    /// ([`Prepared::formats`]) says; `pool` ([`Prepared::pool`]) decodes and reduces.
    pub fn new(
        plan: &'a Plan,
        extractor: &'a mut Extractor,
        reducers: &'a [LayerReducer],
        formats: Formats,
        pool: &'a rayon::ThreadPool,
    ) -> Self {
        let len = extractor.batch_size() * plan.preprocess.image_len();
        let input = match plan.preprocess.input_type {
            InputType::Float32 => InputBuffers::F32([vec![0.0; len], vec![0.0; len]]),
            InputType::Uint8 => InputBuffers::U8([vec![0; len], vec![0; len]]),
        };
        let stage = Stage {
            plan,
            pool,
            cpu: Arc::default(),
            extractor,
            reducers,
            formats,
            tops: reducers.iter().map(LayerReducer::top_tracker).collect(),
            times: StageTimes::default(),
            capture: false,
        };
        Batcher { stage, input }
    }

    /// From now on hands each batch's tensors to the caller ([`BatchResult::captured`])
    /// instead of reducing them: the layers get no rows, the `images` rows are still made.
    pub fn capture_tensors(&mut self) {
        self.stage.capture = true;
    }

    /// Where the CPU time of its batches goes; readers and writers of its parts add theirs.
    pub fn cpu(&self) -> &Arc<Ledger> {
        &self.stage.cpu
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.stage.extractor.batch_size()
    }

    /// Processes one batch (at most [`Batcher::batch_size`] samples) into `rows`; returns the
    /// numbers of images ok and in error.
    pub fn process(&mut self, batch: &[Sample], rows: &mut Rows) -> Result<(u64, u64)> {
        assert!(
            batch.len() <= self.batch_size(),
            "a batch of {} samples for batches of {}",
            batch.len(),
            self.batch_size()
        );
        let mut result = None;
        let mut reader = input::Slice(batch);
        self.process_all(&mut reader, |r| {
            result = Some(r);
            Ok(())
        })?;
        let r = result.expect("one batch");
        *rows = r.rows;
        Ok((r.ok, r.error))
    }

    /// Processes the samples of `reader` in batches, reading and decoding each next batch (on
    /// the worker threads) while the current one runs; hands each batch's rows to `done` as
    /// soon as they are complete.
    pub fn process_all(
        &mut self,
        reader: &mut dyn SampleReader,
        done: impl FnMut(BatchResult) -> Result<()>,
    ) -> Result<()> {
        match &mut self.input {
            InputBuffers::F32(buffers) => pipelined(&mut self.stage, buffers, reader, done),
            InputBuffers::U8(buffers) => pipelined(&mut self.stage, buffers, reader, done),
        }
    }

    /// The time spent in each stage so far.
    pub fn times(&self) -> StageTimes {
        self.stage.times
    }

    /// Moves the best maps kept since the last call into `rows.top`, ending a part.
    pub fn drain_top(&mut self, rows: &mut Rows) {
        let stage = &mut self.stage;
        for (r, top) in stage.reducers.iter().zip(&mut stage.tops) {
            if let Some(top) = top {
                top.drain_into(&r.name, &mut rows.top);
            }
        }
    }
}

/// The most bytes of one batch's tensors that wait to be reduced while the next batch runs;
/// larger ones (VGG16's first layer at batch 16 is 205 MB) are reduced before it, so that the
/// peak memory does not hold two of them.
pub const OVERLAP_BYTES: usize = 64 << 20;

/// Three batches at once: batch k runs on the calling thread from one input buffer while, on
/// the worker pool, batch k + 1 is read and decoded into the other and the tensors of batch
/// k - 1 are reduced. ONNX Runtime's threads and the one that calls it keep their priority,
/// the workers yield to them ([`cpu::yield_to_inference`]); at most one batch's tensors wait,
/// and only up to [`OVERLAP_BYTES`].
fn pipelined<T: InputElement>(
    stage: &mut Stage,
    buffers: &mut [Vec<T>; 2],
    reader: &mut dyn SampleReader,
    mut done: impl FnMut(BatchResult) -> Result<()>,
) -> Result<()> {
    let size = stage.extractor.batch_size();
    let preprocess = &stage.plan.preprocess;
    let [mut current, mut next] = buffers.each_mut();
    let mut batch = reader.next_batch(size);
    if batch.is_empty() {
        return Ok(());
    }
    let (cpu, pool) = (stage.cpu.clone(), stage.pool);
    let mut decoded = pool.install(|| decode(preprocess, current, &batch, &cpu.decode));
    let mut ran: Option<Ran> = None;
    loop {
        stage.times.decode += decoded.took;
        let (mut read, mut reduced) = (None, None);
        let (reducers, tops, capture) = (stage.reducers, &mut stage.tops, stage.capture);
        let running = pool.in_place_scope(|scope| {
            scope.spawn(|_| {
                let following = reader.next_batch(size);
                let decoded = (!following.is_empty())
                    .then(|| decode(preprocess, next, &following, &cpu.decode));
                read = Some((following, decoded));
            });
            if let Some(previous) = ran.take() {
                scope.spawn(|_| reduced = Some(previous.reduce(reducers, tops, capture)));
            }
            infer(
                (stage.extractor, reducers),
                &stage.formats,
                &mut stage.times,
                current,
                &batch,
                decoded,
            )
        });
        if let Some((result, took)) = reduced {
            stage.times.reduce += took;
            done(result)?;
        }
        let running = running?;
        if running.bytes() <= OVERLAP_BYTES {
            ran = Some(running);
        } else {
            reduce_now(stage, running, &mut done)?;
        }
        let (following, decoded_next) = read.expect("the scope waits for its tasks");
        std::mem::swap(&mut current, &mut next);
        match decoded_next {
            Some(d) => (decoded, batch) = (d, following),
            None => break,
        }
    }
    match ran {
        Some(last) => reduce_now(stage, last, &mut done),
        None => Ok(()),
    }
}

/// Reduces a batch that ran (on the worker pool, while the calling thread waits) and hands its
/// rows to `done`.
fn reduce_now(
    stage: &mut Stage,
    ran: Ran,
    done: &mut impl FnMut(BatchResult) -> Result<()>,
) -> Result<()> {
    let pool = stage.pool;
    let capture = stage.capture;
    let (result, took) = pool.install(|| ran.reduce(stage.reducers, &mut stage.tops, capture));
    stage.times.reduce += took;
    done(result)
}

/// Decodes `batch` into `input` in parallel (the CPU time to `cpu`) and moves the images that
/// decoded to the front.
fn decode<T: InputElement>(
    preprocess: &Preprocess,
    input: &mut [T],
    batch: &[Sample],
    cpu: &Meter,
) -> Decoded {
    let started = Instant::now();
    let len = preprocess.image_len();
    let results: Vec<Result<SourceSize, String>> = input[..batch.len() * len]
        .par_chunks_mut(len)
        .zip(batch.par_iter())
        .map_init(Resizer::new, |resizer, (slot, sample)| {
            cpu.time(|| match &sample.content {
                Content::Failed(problem) => Err(problem.clone()),
                Content::File(path) => preprocess.load_into(path, resizer, slot),
                Content::Bytes(bytes) => preprocess.decode_into(bytes, resizer, slot),
                Content::Pixels(image) => preprocess.pixels_into(image, resizer, slot),
            })
        })
        .collect();
    let mut ok_ids = Vec::with_capacity(batch.len());
    let mut statuses = Vec::with_capacity(batch.len());
    for (slot, (entry, result)) in batch.iter().zip(results).enumerate() {
        statuses.push(match result {
            Ok(size) => {
                if slot != ok_ids.len() {
                    input.copy_within(slot * len..(slot + 1) * len, ok_ids.len() * len);
                }
                ok_ids.push(entry.image_id);
                ImageStatus::Ok {
                    width: size.width,
                    height: size.height,
                }
            }
            Err(message) => ImageStatus::Error(message),
        });
    }
    Decoded {
        statuses,
        ok_ids,
        took: started.elapsed(),
    }
}

/// Runs a decoded batch through the model; every file gets its `images` row.
fn infer<T: InputElement>(
    (extractor, reducers): (&mut Extractor, &[LayerReducer]),
    formats: &Formats,
    times: &mut StageTimes,
    input: &[T],
    batch: &[Sample],
    decoded: Decoded,
) -> Result<Ran> {
    let mut rows = Rows::new(formats);
    let mut failed = Vec::new();
    for (sample, status) in batch.iter().zip(&decoded.statuses) {
        if let ImageStatus::Error(reason) = status {
            failed.push((sample.image_id, reason.clone()));
        }
        let image = ImageRef {
            image_id: sample.image_id,
            path: &sample.path,
            label: sample.label.as_deref(),
            source: sample.source.as_deref(),
            key: sample.key.as_deref(),
        };
        rows.images.push(image, status);
    }
    let ok_ids = decoded.ok_ids;
    let tensors = if ok_ids.is_empty() {
        None
    } else {
        let (started, cpu_started) = (Instant::now(), thread_time());
        // The positions that layers gather in the graph, in the order of its index inputs.
        let indices = reducers
            .iter()
            .filter_map(|r| r.graph_indices(&ok_ids))
            .collect();
        let tensors = extractor
            .run(input, ok_ids.len(), indices)
            .context("ONNX Runtime failed on a batch")?;
        cpu::model_call(thread_time() - cpu_started);
        times.model += started.elapsed();
        Some(tensors)
    };
    let ok = ok_ids.len() as u64;
    let ids = (
        batch.first().map_or(0, |s| s.image_id),
        batch.last().map_or(0, |s| s.image_id + 1),
    );
    let result = BatchResult {
        rows,
        captured: None,
        ids,
        ok,
        error: batch.len() as u64 - ok,
    };
    Ok(Ran {
        result,
        tensors,
        ok_ids,
        failed,
    })
}

/// A batch that has run through the model: its `images` rows, and the tensors of the images
/// that decoded, still to be reduced.
struct Ran {
    result: BatchResult,
    tensors: Option<BatchTensors>,
    ok_ids: Vec<u64>,
    failed: Vec<(u64, String)>,
}

impl Ran {
    /// The bytes of its tensors.
    fn bytes(&self) -> usize {
        self.tensors.as_ref().map_or(0, BatchTensors::bytes)
    }

    /// Reduces the tensors into the batch's rows (in parallel on the current pool), or hands
    /// them over as they are when `capture`; returns the result with the wall time it took.
    fn reduce(
        mut self,
        reducers: &[LayerReducer],
        tops: &mut [Option<LayerTop>],
        capture: bool,
    ) -> (BatchResult, Duration) {
        let started = Instant::now();
        if capture {
            self.result.captured = Some(Captured {
                tensors: self.tensors,
                ok_ids: self.ok_ids,
                failed: self.failed,
            });
            return (self.result, started.elapsed());
        }
        if let Some(tensors) = &self.tensors {
            let views = tensors.views();
            reduce::reduce_batch(reducers, &views, &self.ok_ids, &mut self.result.rows, tops);
        }
        (self.result, started.elapsed())
    }
}
