//! `layerwise doctor`: what a user on a new node needs to know before a run, in one screen:
//! this executable, which ONNX Runtime library it found where (and where it looked), the
//! library's version and execution providers, whether a session really runs on each, the
//! CPUs a run would use and the GPUs the CUDA driver shows.

use std::ffi::{c_char, c_int, c_uint, CStr};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::Provider;
use crate::model::runtime::{self, SearchPath};
use crate::model::session::{self, Execution};

/// Everything `layerwise doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// layerwise's version.
    pub layerwise: String,
    /// This executable's path.
    pub executable: Option<PathBuf>,
    /// The prefix of the Python environment the executable is installed in, if it is.
    pub python_environment: Option<PathBuf>,
    /// The ONNX Runtime library and what it can do.
    pub onnxruntime: RuntimeFinding,
    /// The CPUs a run would use.
    pub cpus: Cpus,
    /// The GPUs the NVIDIA driver shows.
    pub gpus: Gpus,
    /// The provider a run is checked for (`cpu` unless a config says otherwise).
    pub provider: Provider,
    /// The config whose `[run]` settings (runtime library, provider, device) were checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Whether a run on that provider can start.
    pub ready: bool,
}

/// The library found, or why none could be used.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuntimeFinding {
    /// The shared library file.
    pub library: Option<PathBuf>,
    /// Which rule found it.
    pub found_via: Option<String>,
    /// The places looked at before it (or all of them, when none was found).
    pub looked_at: Vec<String>,
    /// The version the library reports.
    pub version: Option<String>,
    /// Why no library could be used, with what to do.
    pub error: Option<String>,
    /// The execution providers the library was built with.
    pub providers: Vec<String>,
    /// A session run on each provider layerwise can use.
    pub checks: Vec<ProviderCheck>,
    /// What installs a library with the GPU providers, when this one has none.
    pub gpu_remedy: Option<String>,
    /// The CUDA libraries loaded from beside the runtime for its GPU providers.
    pub gpu_libraries: Vec<PathBuf>,
}

/// Whether a one-node model ran on a provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderCheck {
    /// The provider.
    pub provider: Provider,
    /// Whether the session ran.
    pub ok: bool,
    /// What happened, or what to do.
    pub detail: String,
}

/// The CPUs a run would use.
#[derive(Debug, Clone, Serialize)]
pub struct Cpus {
    /// CPUs this process may run on (affinity and cgroup quota): a run's default `threads`.
    pub available: usize,
    /// CPUs online on the machine.
    pub online: usize,
}

/// The GPUs the NVIDIA driver shows this process (after `CUDA_VISIBLE_DEVICES`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gpus {
    /// The CUDA version the driver supports, e.g. `12.8`.
    pub driver_cuda: Option<String>,
    /// The devices, in CUDA's order (what `[run] device` counts).
    pub devices: Vec<Gpu>,
    /// Why there are none, when there are none.
    pub note: Option<String>,
    /// The value of `CUDA_VISIBLE_DEVICES`, if set.
    pub visible_devices: Option<String>,
}

/// One GPU.
#[derive(Debug, Clone, Serialize)]
pub struct Gpu {
    /// Its CUDA device index.
    pub index: u32,
    /// Its name, e.g. `NVIDIA H200`.
    pub name: String,
    /// Its memory in bytes.
    pub memory_bytes: u64,
}

/// Examines this node for a run on `provider` (GPU `device`) with the library `search` finds.
pub fn diagnose(search: &SearchPath, provider: Provider, device: u32) -> Diagnosis {
    let onnxruntime = find_runtime(search, device);
    let ready = onnxruntime
        .checks
        .iter()
        .any(|c| c.provider == provider && c.ok);
    Diagnosis {
        layerwise: env!("CARGO_PKG_VERSION").to_owned(),
        executable: crate::model::runtime::own_executable(),
        python_environment: search.installed.as_ref().map(|e| e.prefix.clone()),
        onnxruntime,
        cpus: Cpus {
            available: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // SAFETY: sysconf only reads a system value.
            online: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize,
        },
        gpus: cuda_devices(),
        provider,
        config: None,
        ready,
    }
}

/// Locates and loads the library, lists its providers and runs the probe model on each.
fn find_runtime(search: &SearchPath, device: u32) -> RuntimeFinding {
    let mut finding = RuntimeFinding::default();
    let runtime = match runtime::load(search) {
        Ok(runtime) => runtime,
        Err(e) => {
            finding.error = Some(e.to_string());
            return finding;
        }
    };
    finding.library = Some(runtime.located.path.clone());
    finding.found_via = Some(runtime.located.source.to_owned());
    finding.looked_at = runtime.located.looked.clone();
    finding.version = Some(runtime.version.clone());
    finding.providers = runtime.providers();
    let offered = |name: &str| finding.providers.iter().any(|p| p == name);
    let candidates = [
        (Provider::Cpu, true),
        (Provider::Cuda, offered("CUDAExecutionProvider")),
        (Provider::Tensorrt, offered("TensorrtExecutionProvider")),
    ];
    finding.checks = candidates
        .into_iter()
        .map(|(provider, offered)| {
            let execution = Execution {
                threads: 1,
                provider,
                device,
            };
            let outcome = if offered {
                session::probe(runtime, execution)
                    .map(|()| match provider {
                        Provider::Cpu => "a session ran".to_owned(),
                        _ => format!("a session ran on GPU {device}"),
                    })
                    .map_err(|e| e.to_string())
            } else {
                Err("not in this library (the onnxruntime-gpu wheel's has it)".to_owned())
            };
            ProviderCheck {
                provider,
                ok: outcome.is_ok(),
                detail: outcome.unwrap_or_else(|e| e),
            }
        })
        .collect();
    if offered("CUDAExecutionProvider") {
        finding.gpu_libraries = runtime.gpu_libraries().to_vec();
    } else {
        finding.gpu_remedy = Some(runtime.gpu_remedy());
    }
    finding
}

impl Diagnosis {
    /// The exit status: 0 when a run can start, 2 when it cannot (a setup problem that
    /// retrying does not fix).
    pub fn exit_code(&self) -> u8 {
        if self.ready {
            0
        } else {
            2
        }
    }

    /// The one-screen text report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "layerwise {}", self.layerwise);
        if let Some(config) = &self.config {
            line(
                &mut out,
                "config",
                format!(
                    "{} (its [run] onnxruntime, provider and device are what is checked)",
                    config.display()
                ),
            );
        }
        if let Some(exe) = &self.executable {
            let home = match &self.python_environment {
                Some(prefix) => format!("in the Python environment {}", prefix.display()),
                None => "not in a Python environment: built from a checkout".to_owned(),
            };
            line(
                &mut out,
                "executable",
                format!("{} ({home})", exe.display()),
            );
        }
        self.runtime_text(&mut out);
        let cpus = &self.cpus;
        let _ = writeln!(
            out,
            "CPUs: {} available to layerwise ({} online); a run uses {} threads unless [run] \
             threads says otherwise",
            cpus.available, cpus.online, cpus.available
        );
        self.gpu_text(&mut out);
        let provider = self.provider.name();
        if self.ready {
            let _ = writeln!(out, "ready: a run on `{provider}` can start");
        } else {
            let _ = writeln!(
                out,
                "not ready: a run on `{provider}` cannot start (see above)"
            );
        }
        out
    }

    /// The ONNX Runtime lines.
    fn runtime_text(&self, out: &mut String) {
        let r = &self.onnxruntime;
        let _ = writeln!(
            out,
            "ONNX Runtime {}",
            r.version.as_deref().unwrap_or("(none usable)")
        );
        if let Some(library) = &r.library {
            line(out, "library", library.display().to_string());
        }
        if let Some(via) = &r.found_via {
            line(out, "found via", via.clone());
        }
        if !r.looked_at.is_empty() {
            line(out, "looked at", r.looked_at.join("; "));
        }
        if let Some(error) = &r.error {
            line(out, "error", error.replace('\n', "\n                 "));
        }
        if !r.providers.is_empty() {
            line(out, "providers", r.providers.join(", "));
        }
        for check in &r.checks {
            let verdict = if check.ok { "ok" } else { "no" };
            let detail = check.detail.replace('\n', "\n                 ");
            line(out, check.provider.name(), format!("{verdict}: {detail}"));
        }
        if let Some(remedy) = &r.gpu_remedy {
            line(out, "for GPUs", remedy.clone());
        }
        if let (Some(library), false) = (&r.library, r.gpu_libraries.is_empty()) {
            let folder = runtime::packages_folder(library).unwrap_or(library);
            let names: Vec<String> = r
                .gpu_libraries
                .iter()
                .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
                .collect();
            line(
                out,
                "CUDA libraries",
                format!(
                    "{} loaded from {}: {}",
                    names.len(),
                    folder.display(),
                    names.join(", ")
                ),
            );
        }
    }

    /// The GPU lines.
    fn gpu_text(&self, out: &mut String) {
        let g = &self.gpus;
        let visible = g
            .visible_devices
            .as_ref()
            .map(|v| format!(", CUDA_VISIBLE_DEVICES={v}"))
            .unwrap_or_default();
        match (&g.note, &g.driver_cuda) {
            (Some(note), _) => {
                let _ = writeln!(out, "GPUs: none ({note}{visible})");
            }
            (None, cuda) => {
                let cuda = cuda.as_deref().unwrap_or("?");
                let _ = writeln!(
                    out,
                    "GPUs: {} (driver for CUDA {cuda}{visible})",
                    g.devices.len()
                );
                for gpu in &g.devices {
                    let gib = gpu.memory_bytes as f64 / f64::from(1u32 << 30);
                    line(
                        out,
                        &gpu.index.to_string(),
                        format!("{} ({gib:.1} GiB)", gpu.name),
                    );
                }
            }
        }
    }
}

/// One indented `label  value` line.
fn line(out: &mut String, label: &str, value: String) {
    let _ = writeln!(out, "  {label:<14} {value}");
}

/// The GPUs of the NVIDIA driver's API (`libcuda.so.1`), the library the CUDA provider
/// itself goes through, so it sees what a run would see.
fn cuda_devices() -> Gpus {
    let visible_devices = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    match read_cuda_devices() {
        Ok((driver, devices)) => Gpus {
            driver_cuda: Some(format!("{}.{}", driver / 1000, driver % 1000 / 10)),
            note: devices
                .is_empty()
                .then(|| "the NVIDIA driver shows no device".to_owned()),
            devices,
            visible_devices,
        },
        Err(note) => Gpus {
            note: Some(note),
            visible_devices,
            ..Gpus::default()
        },
    }
}

/// `cuInit`, then each device's name and memory; the driver's CUDA version as 12080.
fn read_cuda_devices() -> Result<(i32, Vec<Gpu>), String> {
    type Init = unsafe extern "C" fn(c_uint) -> c_int;
    type Count = unsafe extern "C" fn(*mut c_int) -> c_int;
    type Get = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    type Name = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
    type Memory = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
    // SAFETY: libcuda.so.1 is the NVIDIA driver's library; these are its documented C entry
    // points with these signatures (CUresult is an int, CUdevice an int), called in the
    // documented order, each writing only the out-parameter it is given.
    unsafe {
        let lib = libloading::Library::new("libcuda.so.1")
            .map_err(|_| "no NVIDIA driver: libcuda.so.1 is not installed".to_owned())?;
        let symbol = |name: &[u8]| {
            lib.get::<*const ()>(name)
                .map(|s| *s)
                .map_err(|e| format!("the NVIDIA driver's library lacks a function: {e}"))
        };
        let init: Init = std::mem::transmute(symbol(b"cuInit")?);
        let version: Count = std::mem::transmute(symbol(b"cuDriverGetVersion")?);
        let count: Count = std::mem::transmute(symbol(b"cuDeviceGetCount")?);
        let get: Get = std::mem::transmute(symbol(b"cuDeviceGet")?);
        let name: Name = std::mem::transmute(symbol(b"cuDeviceGetName")?);
        let memory: Memory = std::mem::transmute(symbol(b"cuDeviceTotalMem_v2")?);
        let status = init(0);
        if status != 0 {
            return Err(format!(
                "the NVIDIA driver did not start: cuInit error {status}"
            ));
        }
        let mut driver = 0;
        version(&mut driver);
        let mut n = 0;
        count(&mut n);
        let mut devices = Vec::new();
        for index in 0..n.max(0) {
            let mut device = 0;
            if get(&mut device, index) != 0 {
                continue;
            }
            let mut buffer = [0 as c_char; 256];
            name(buffer.as_mut_ptr(), buffer.len() as c_int, device);
            let mut bytes = 0usize;
            memory(&mut bytes, device);
            devices.push(Gpu {
                index: index as u32,
                name: CStr::from_ptr(buffer.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
                memory_bytes: bytes as u64,
            });
        }
        Ok((driver, devices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_library_means_not_ready_with_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        let search = SearchPath {
            cache: Some(dir.path().to_owned()),
            ..SearchPath::default()
        };
        let d = diagnose(&search, Provider::Cpu, 0);
        assert!(!d.ready);
        assert_eq!(d.exit_code(), 2);
        let text = d.to_text();
        assert!(text.contains("ONNX Runtime (none usable)"), "{text}");
        assert!(
            text.contains("ONNX Runtime's shared library was not found"),
            "{text}"
        );
        assert!(text.contains("Provision it with: "), "{text}");
        assert!(
            text.ends_with("not ready: a run on `cpu` cannot start (see above)\n"),
            "{text}"
        );
    }
}
