//! `layerwise._native`: the Python binding of the library's surface ([`layerwise::api`]).
//! The Python package (`python/layerwise`) wraps it: it turns the images a user gives into
//! paths or RGB arrays, reads the Arrow streams into pyarrow and draws progress; this side
//! runs the engine with the GIL released and turns every error, and any panic, into a Python
//! exception of the kind the command's exit status says.

use std::ffi::OsString;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator};
use arrow_schema::SchemaRef;
use layerwise::api;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyDict};

create_exception!(
    layerwise,
    ConfigError,
    PyValueError,
    "A mistake in a config, a model, a layer, an argument or a table: what the command exits 2 \
     for (retrying will not help)."
);
create_exception!(
    layerwise,
    RunError,
    PyRuntimeError,
    "Anything else that stopped the work (I/O, the runtime, too many bad images): what the \
     command exits 1 or 4 for."
);

/// The Python exception for an error, by the exit status the command would give it.
fn to_py(err: anyhow::Error) -> PyErr {
    let message = layerwise::error::describe(&err);
    match layerwise::error::exit_code(&err) {
        2 => ConfigError::new_err(message),
        130 => PyKeyboardInterrupt::new_err(message),
        _ => RunError::new_err(message),
    }
}

/// Runs `work` with the GIL released; an error or a panic becomes the Python exception.
fn engine<T: Send>(py: Python<'_>, work: impl FnOnce() -> anyhow::Result<T> + Send) -> PyResult<T> {
    py.detach(|| caught(work)).map_err(to_py)
}

/// `work`'s result, a panic turned into an error.
fn caught<T>(work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(anyhow::anyhow!(
            "layerwise failed inside ({what}); please report it with the call that caused it"
        ))
    })
}

/// Record batches with their schema, handed to pyarrow through the Arrow C stream interface
/// (`__arrow_c_stream__`, the PyCapsule protocol): `pyarrow.table(stream)` takes them without
/// a copy.
#[pyclass(module = "layerwise._native", frozen)]
struct ArrowStream {
    schema: SchemaRef,
    batches: std::sync::Mutex<Option<Vec<RecordBatch>>>,
}

#[pymethods]
impl ArrowStream {
    /// Exports the batches as an `arrow_array_stream` capsule (once).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batches = self
            .batches
            .lock()
            .map_err(|_| RunError::new_err("the stream is broken"))?
            .take()
            .ok_or_else(|| RunError::new_err("the stream was read already"))?;
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), self.schema.clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> ArrowStream {
    ArrowStream {
        schema,
        batches: std::sync::Mutex::new(Some(batches)),
    }
}

/// Runs the command line `argv` (the script's path first) and returns its exit status (101,
/// as a Rust program's, for a failure inside layerwise).
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<OsString>) -> u8 {
    if let Some(script) = argv.first() {
        let path = PathBuf::from(script);
        api::set_own_executable(std::path::absolute(&path).unwrap_or(path));
    }
    py.detach(|| {
        caught(|| Ok(layerwise::cli::main(argv))).unwrap_or_else(|err| {
            eprintln!("error: {}", layerwise::error::describe(&err));
            101
        })
    })
}

/// Says which Python environment the package is imported in (`sys.executable`), where the
/// ONNX Runtime library of the `onnxruntime` wheel is looked for.
#[pyfunction]
fn set_executable(path: PathBuf) {
    api::set_own_executable(path);
}

/// The tensors of a model or config, as `layerwise layers` lists them.
#[pyfunction]
#[pyo3(signature = (target, shapes=false))]
fn layers(py: Python<'_>, target: PathBuf, shapes: bool) -> PyResult<ArrowStream> {
    let batch = engine(py, || api::layers(&target, shapes))?;
    Ok(stream(batch.schema(), vec![batch]))
}

/// A JSON object's members, or a mistake naming `what`.
fn json_object(text: &str, what: &str) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(ConfigError::new_err(format!("{what} must be a dict"))),
    }
}

/// The full tensors of `layers` for `paths` or `pixels` (RGB uint8 arrays, height x width x
/// 3): a dict of layer name -> float32 array `[images, ...]`, the indices of the images
/// read, and the images left out with why.
#[pyfunction]
#[pyo3(signature = (model, layers, preprocess, run, paths=None, pixels=None, skip=false))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn extract<'py>(
    py: Python<'py>,
    model: PathBuf,
    layers: Vec<String>,
    preprocess: &str,
    run: &str,
    paths: Option<Vec<PathBuf>>,
    pixels: Option<Vec<PyReadonlyArray3<'py, u8>>>,
    skip: bool,
) -> PyResult<(Bound<'py, PyDict>, Vec<usize>, Vec<(usize, String)>)> {
    let layers = layers
        .iter()
        .map(|l| serde_json::from_str(l).map_err(|e| ConfigError::new_err(e.to_string())))
        .collect::<PyResult<Vec<serde_json::Value>>>()?;
    let request = api::Request {
        model,
        layers,
        preprocess: json_object(preprocess, "preprocess")?,
        run: json_object(run, "the run options")?,
        name: "extract(...)".into(),
    };
    let images = match (paths, pixels) {
        (Some(paths), _) => api::Images::Paths(paths),
        (None, Some(arrays)) => {
            api::Images::Pixels(arrays.iter().map(rgb_image).collect::<PyResult<Vec<_>>>()?)
        }
        (None, None) => api::Images::Paths(Vec::new()),
    };
    let on_error = match skip {
        true => api::OnError::Skip,
        false => api::OnError::Raise,
    };
    let extracted = engine(py, || api::extract(&request, &images, on_error))?;
    let arrays = PyDict::new(py);
    for layer in extracted.layers {
        let flat = PyArray1::from_vec(py, layer.values);
        arrays.set_item(layer.name, flat.reshape(layer.shape)?)?;
    }
    Ok((arrays, extracted.read, extracted.errors))
}

/// One `height x width x 3` uint8 array as an RGB image (copied).
fn rgb_image(array: &PyReadonlyArray3<'_, u8>) -> PyResult<Arc<image::RgbImage>> {
    let shape = array.shape();
    let (height, width) = (shape[0] as u32, shape[1] as u32);
    if shape[2] != 3 {
        return Err(ConfigError::new_err(format!(
            "an image array is {} x {} x {}: it must be height x width x 3 (RGB)",
            shape[0], shape[1], shape[2]
        )));
    }
    let values: Vec<u8> = match array.as_slice() {
        Ok(slice) => slice.to_vec(),
        Err(_) => array.as_array().iter().copied().collect(),
    };
    image::RgbImage::from_raw(width, height, values)
        .map(Arc::new)
        .ok_or_else(|| ConfigError::new_err("an image array's size does not match its shape"))
}

/// Runs a config (a file, or TOML text when `text`) as `layerwise run` does and returns
/// `run.json`'s record as JSON text. `progress(done, total, errors)` is called about five
/// times a second while it runs; Ctrl-C (`KeyboardInterrupt`) stops it after the batch in
/// progress, keeping the committed parts.
#[pyfunction]
#[pyo3(signature = (config, text=false, out=None, shard=None, limit=None, overwrite=false, quiet=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    config: String,
    text: bool,
    out: Option<PathBuf>,
    shard: Option<String>,
    limit: Option<usize>,
    overwrite: bool,
    quiet: bool,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let source = match text {
        true => api::ConfigSource::Text {
            text: config,
            name: PathBuf::from("<dict>"),
            folder: std::env::current_dir()?,
        },
        false => api::ConfigSource::File(PathBuf::from(config)),
    };
    let (shard, shard_source) = match shard {
        Some(text) => (
            api::Shard::parse(&text).map_err(|e| to_py(e.into()))?,
            "shard=",
        ),
        None => api::Shard::from_env(None, |name| std::env::var(name).ok())
            .map_err(|e| to_py(e.into()))?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watch = Arc::new(api::Watch::default());
    let options = api::RunOptions {
        overwrite,
        quiet,
        shard,
        shard_source,
        stop: Some(stop.clone()),
        watch: Some(watch.clone()),
    };
    let overrides = api::Overrides { out, limit };
    let mut interrupt = None;
    let record = std::thread::scope(|scope| {
        let running = scope.spawn(|| caught(|| api::run(&source, &overrides, options)));
        loop {
            // Looked at before the counts, so that the last display shows the last batch.
            let finished = running.is_finished();
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let counts = (load(&watch.done), load(&watch.total), load(&watch.errors));
            let shown = progress.as_ref().map(|p| p.call1(counts).map(drop));
            // Ctrl-C, or a progress display that failed: the run stops after its batch.
            if let Err(e) = py.check_signals().and(shown.unwrap_or(Ok(()))) {
                stop.store(true, Ordering::SeqCst);
                interrupt.get_or_insert(e);
            }
            if finished {
                break;
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(200)));
        }
        py.detach(|| running.join())
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the run's thread failed")))
            .map_err(to_py)
    });
    if let Some(interrupted) = interrupt {
        return Err(interrupted);
    }
    let record = record?;
    String::from_utf8(record.to_json().map_err(to_py)?)
        .map_err(|e| RunError::new_err(e.to_string()))
}

/// A config given as JSON text (a dict) as the TOML text of a config file.
#[pyfunction]
fn config_toml(json: &str) -> PyResult<String> {
    let value = serde_json::from_str(json).map_err(|e| ConfigError::new_err(e.to_string()))?;
    api::config_from_json(value).map_err(to_py)
}

/// A run opened for reading.
#[pyclass(module = "layerwise._native", frozen)]
struct Run {
    inner: api::Run,
}

/// How a figure is drawn.
fn style(cols: usize, levels: Option<u32>, shared_scale: bool) -> api::Style {
    api::Style {
        cols,
        levels,
        shared_scale,
    }
}

#[pymethods]
impl Run {
    /// Opens a run's folder (or `s3://...`), finished or partial.
    #[new]
    fn open(py: Python<'_>, location: PathBuf) -> PyResult<Run> {
        let inner = engine(py, || api::Run::open(&location))?;
        Ok(Run { inner })
    }

    /// What `run.json` (or a partial run's parts) says: name, tool, model, runtime, start,
    /// completeness, parts, layers, config, as JSON text.
    fn facts(&self) -> PyResult<String> {
        let stored = &self.inner.stored;
        let facts = &stored.facts;
        let value = serde_json::json!({
            "name": facts.name,
            "tool": facts.tool,
            "model": facts.model,
            "onnxruntime": facts.onnxruntime,
            "started_at": facts.started_at,
            "complete": facts.complete,
            "timings": facts.timings,
            "parts": [facts.parts.0, facts.parts.1],
            "layers": stored.layers,
            "config": stored.config,
            "dir": stored.dir,
        });
        Ok(value.to_string())
    }

    /// A table's rows (all, or one layer's) as an Arrow stream.
    #[pyo3(signature = (name, layer=None))]
    fn table(&self, py: Python<'_>, name: &str, layer: Option<&str>) -> PyResult<ArrowStream> {
        let (schema, batches) = engine(py, || self.inner.table(name, layer))?;
        Ok(stream(schema, batches))
    }

    /// One image's stored maps of a layer: a float32 array `[channels, height, width]` and
    /// its channels.
    #[pyo3(signature = (layer, image, channels=None))]
    fn map<'py>(
        &self,
        py: Python<'py>,
        layer: &str,
        image: &str,
        channels: Option<Vec<u32>>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<u32>)> {
        let (shape, order, values) =
            engine(py, || self.inner.map(layer, image, channels.as_deref()))?;
        let array = PyArray1::from_vec(py, values).reshape(shape)?;
        Ok((array.into_any(), order))
    }

    /// `layerwise plot channels` as PNG bytes.
    #[pyo3(signature = (layer, image, channels=None, cols=7, levels=None, shared_scale=false))]
    #[allow(clippy::too_many_arguments)]
    fn plot_channels<'py>(
        &self,
        py: Python<'py>,
        layer: &str,
        image: &str,
        channels: Option<Vec<u32>>,
        cols: usize,
        levels: Option<u32>,
        shared_scale: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let look = style(cols, levels, shared_scale);
        let png = engine(py, || {
            self.inner
                .plot_channels(layer, image, channels.as_deref(), look)
        })?;
        Ok(PyBytes::new(py, &png))
    }

    /// `layerwise plot images` as PNG bytes.
    #[pyo3(signature = (layer, channel, images=None, cols=7, levels=None, shared_scale=false))]
    #[allow(clippy::too_many_arguments)]
    fn plot_images<'py>(
        &self,
        py: Python<'py>,
        layer: &str,
        channel: u32,
        images: Option<&str>,
        cols: usize,
        levels: Option<u32>,
        shared_scale: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let look = style(cols, levels, shared_scale);
        let png = engine(py, || self.inner.plot_images(layer, channel, images, look))?;
        Ok(PyBytes::new(py, &png))
    }

    /// `layerwise plot top` as PNG bytes.
    #[pyo3(signature = (layer, channel, k=16, cols=7, levels=None, shared_scale=false))]
    #[allow(clippy::too_many_arguments)]
    fn plot_top<'py>(
        &self,
        py: Python<'py>,
        layer: &str,
        channel: u32,
        k: usize,
        cols: usize,
        levels: Option<u32>,
        shared_scale: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let look = style(cols, levels, shared_scale);
        let png = engine(py, || self.inner.plot_top(layer, channel, k, look))?;
        Ok(PyBytes::new(py, &png))
    }

    /// `layerwise compare`: the similarity rows as an Arrow stream, the heat map as PNG bytes
    /// and the record as JSON text; written into `out` too when given.
    #[pyo3(signature = (other=None, layers=None, features="mean", rsa=None, seed=0, out=None))]
    #[allow(clippy::too_many_arguments)]
    fn compare<'py>(
        &self,
        py: Python<'py>,
        other: Option<PyRef<'py, Run>>,
        layers: Option<Vec<String>>,
        features: &str,
        rsa: Option<usize>,
        seed: u64,
        out: Option<PathBuf>,
    ) -> PyResult<(ArrowStream, Bound<'py, PyBytes>, String)> {
        let other = other.as_ref().map(|o| &o.inner);
        let compared = engine(py, || {
            (self.inner).compare(other, layers, features, (rsa, seed), out.as_deref())
        })?;
        let schema = compared.table.schema();
        Ok((
            stream(schema, vec![compared.table]),
            PyBytes::new(py, &compared.png),
            compared.record,
        ))
    }

    /// `layerwise report`: writes the atlas and returns its `index.html`.
    #[pyo3(signature = (out=None, compare=None))]
    fn report(
        &self,
        py: Python<'_>,
        out: Option<PathBuf>,
        compare: Option<PathBuf>,
    ) -> PyResult<PathBuf> {
        engine(py, || self.inner.report(out, compare))
    }
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Large buffers (batches, maps, the runtime's arena) go back to the system when freed, as
    // in the command, so that a session's memory does not stay with the interpreter.
    layerwise::cpu::tune_allocator();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("RunError", m.py().get_type::<RunError>())?;
    m.add_class::<ArrowStream>()?;
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_function(wrap_pyfunction!(set_executable, m)?)?;
    m.add_function(wrap_pyfunction!(layers, m)?)?;
    m.add_function(wrap_pyfunction!(extract, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(config_toml, m)?)?;
    Ok(())
}
