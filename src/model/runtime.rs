//! Finding and loading the ONNX Runtime shared library.
//!
//! Nothing is downloaded at build time: the library is the one shipped in the `onnxruntime`
//! (or `onnxruntime-gpu`) wheel. It is looked for, in this order, at `ORT_DYLIB_PATH`, at the
//! config's `[run] onnxruntime`, in the Python environment the executable is installed in (by
//! `pip install "layerwise[cpu]"`, which brings that wheel along), in the project's cache folder
//! (filled by `scripts/fetch-onnxruntime.sh`; only for an executable built from a checkout),
//! and in an `onnxruntime` package importable by `python3`.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::PlanError;

/// The command that provisions the library for an executable built from a checkout.
pub const PROVISION_COMMAND: &str = concat!(
    "bash ",
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/fetch-onnxruntime.sh"
);

/// The project's cache folder for the library.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnxruntime")
}

/// The source of a library found in the executable's own Python environment.
pub const INSTALLED_SOURCE: &str = "the Python environment layerwise is installed in";

/// Where the library was found, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The shared library file.
    pub path: PathBuf,
    /// Which rule found it, e.g. `ORT_DYLIB_PATH`.
    pub source: &'static str,
    /// The places looked at before, each with what was (not) there.
    pub looked: Vec<String>,
}

/// A Python environment that an executable is installed in: `<prefix>/bin/layerwise`, with
/// packages in `<prefix>/lib*/python3*/site-packages` (a virtual environment, conda, a
/// `pip install --user` under `~/.local`, or a system prefix with Debian's `dist-packages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonEnvironment {
    /// The environment's prefix, the folder above `bin/`.
    pub prefix: PathBuf,
    /// Its package folders, each once.
    pub site_packages: Vec<PathBuf>,
}

impl PythonEnvironment {
    /// The environment the running executable ([`own_executable`]) is installed in, if it is
    /// in one. The path comes from the system or the Python package, so neither `PATH` nor an
    /// activated virtual environment matters.
    pub fn own() -> Option<PythonEnvironment> {
        PythonEnvironment::of_executable(&own_executable()?)
    }

    /// The environment `exe` is installed in: its folder is `bin/` and the folder above has
    /// Python package folders.
    pub fn of_executable(exe: &Path) -> Option<PythonEnvironment> {
        let bin = exe.parent()?;
        if bin.file_name()? != "bin" {
            return None;
        }
        let prefix = bin.parent()?.to_owned();
        let mut site_packages: Vec<PathBuf> = Vec::new();
        for lib in ["lib", "lib64"] {
            for python in sorted_entries(&prefix.join(lib), |name| name.starts_with("python3")) {
                for kind in ["site-packages", "dist-packages"] {
                    let dir = python.join(kind);
                    let real = dir.canonicalize().ok();
                    let seen = site_packages.iter().any(|s| s.canonicalize().ok() == real);
                    if dir.is_dir() && !seen {
                        site_packages.push(dir);
                    }
                }
            }
        }
        (!site_packages.is_empty()).then_some(PythonEnvironment {
            prefix,
            site_packages,
        })
    }

    /// The newest library in the environment's `onnxruntime*/capi/` folders (the package of
    /// both the `onnxruntime` and the `onnxruntime-gpu` wheel), or what each folder held.
    fn library(&self) -> Result<PathBuf, String> {
        let mut looked = Vec::new();
        for site in &self.site_packages {
            let packages = sorted_entries(site, |name| {
                name.starts_with("onnxruntime") && !name.ends_with("-info")
            });
            if packages.is_empty() {
                looked.push(format!("{}/onnxruntime*/capi", site.display()));
            }
            for package in packages {
                match newest_library_in(&package.join("capi")) {
                    Some(path) => return Ok(path),
                    None => looked.push(format!("{}/capi", package.display())),
                }
            }
        }
        Err(format!("{}: no libonnxruntime.so.*", looked.join(", ")))
    }
}

/// The executable that runs layerwise when it is not the process's own.
static OWN_EXECUTABLE: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Says which executable runs layerwise when the process's own is another program's: the
/// Python package's `layerwise` script (run by the interpreter), or the interpreter of the
/// environment the package is imported in (`sys.executable`, its symbolic links kept). The
/// last call wins; the runtime library is looked for once, on the first run.
pub fn set_own_executable(path: PathBuf) {
    *OWN_EXECUTABLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
}

/// The executable that runs layerwise: the one [`set_own_executable`] named, else the
/// process's own (`/proc/self/exe`, symbolic links resolved).
pub fn own_executable() -> Option<PathBuf> {
    let set = OWN_EXECUTABLE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    set.or_else(|| std::env::current_exe().ok())
}

/// The entries of `dir` whose names pass `keep`, sorted; none when it cannot be read.
fn sorted_entries(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// What to do when no usable library is found: for an executable installed from the wheel,
/// the pip command that brings the runtime into its environment; for one built from a
/// checkout, the provisioning script. `gpu`: the runtime with the CUDA and TensorRT providers.
pub fn remedy(installed: Option<&PythonEnvironment>, gpu: bool) -> String {
    match (installed, gpu) {
        (Some(env), false) => format!(
            "Install it with: pip install \"layerwise[cpu]\" (or \"layerwise[gpu]\" for NVIDIA \
             GPUs), in the Python environment layerwise is installed in ({})",
            env.prefix.display()
        ),
        (Some(env), true) => format!(
            "install the GPU runtime with: pip uninstall -y onnxruntime && pip install \
             \"layerwise[gpu]\", in the Python environment layerwise is installed in ({})",
            env.prefix.display()
        ),
        (None, false) => format!("Provision it with: {PROVISION_COMMAND}"),
        (None, true) => format!(
            "provision the onnxruntime-gpu wheel's library (bash {}/scripts/fetch-onnxruntime.sh \
             --gpu) or point ORT_DYLIB_PATH at it",
            env!("CARGO_MANIFEST_DIR"),
        ),
    }
}

/// The places to look, each filled in by the caller (so tests can give their own).
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// The value of `ORT_DYLIB_PATH`.
    pub env: Option<PathBuf>,
    /// The config's `[run] onnxruntime`.
    pub config: Option<PathBuf>,
    /// The Python environment the executable is installed in.
    pub installed: Option<PythonEnvironment>,
    /// The project's cache folder.
    pub cache: Option<PathBuf>,
    /// The Python interpreter to ask for an `onnxruntime` package.
    pub python: Option<String>,
}

impl SearchPath {
    /// The standard search path: the environment variable, the config's path, the executable's
    /// own Python environment (or, for an executable built from a checkout, the project
    /// cache), `python3`. An installed executable skips the cache: its path is the build
    /// machine's.
    pub fn standard(config: Option<PathBuf>) -> SearchPath {
        let installed = PythonEnvironment::own();
        SearchPath {
            // Set but empty is unset, as for PATH-like variables.
            env: std::env::var_os("ORT_DYLIB_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            config,
            cache: installed.is_none().then(cache_dir),
            installed,
            python: Some("python3".into()),
        }
    }

    /// Finds the library, or explains every place looked at and what installs one.
    pub fn locate(&self) -> Result<Located, PlanError> {
        let mut looked = Vec::new();
        let explicit = [
            ("ORT_DYLIB_PATH", &self.env),
            ("[run] onnxruntime", &self.config),
        ];
        for (source, path) in explicit {
            match path {
                // An explicit path that does not exist is an error, not a reason to look further.
                Some(p) if p.is_file() => return Ok(found(p.clone(), source, looked)),
                Some(p) => {
                    return Err(PlanError::Runtime(format!(
                    "{source} is {}, which is not a file. Point it at libonnxruntime.so.<version> \
                         (or unset it; {})",
                    p.display(),
                    lowercase_first(&self.remedy())
                )))
                }
                None => looked.push(format!("{source}: not set")),
            }
        }
        if let Some(env) = &self.installed {
            match env.library() {
                Ok(path) => return Ok(found(path, INSTALLED_SOURCE, looked)),
                Err(nothing) => looked.push(nothing),
            }
        }
        if let Some(dir) = &self.cache {
            match newest_library_in(dir) {
                Some(path) => return Ok(found(path, "the project cache", looked)),
                None => looked.push(format!("{}: no libonnxruntime.so.*", dir.display())),
            }
        }
        if let Some(python) = &self.python {
            match python_package_dir(python) {
                Some(dir) => match newest_library_in(&dir.join("capi")) {
                    Some(path) => {
                        return Ok(found(path, "the python3 onnxruntime package", looked))
                    }
                    None => looked.push(format!("{}/capi: no libonnxruntime.so.*", dir.display())),
                },
                None => looked.push(format!("{python}: no importable onnxruntime package")),
            }
        }
        Err(PlanError::Runtime(format!(
            "ONNX Runtime's shared library was not found (looked at {}).\n{}",
            looked.join("; "),
            self.remedy()
        )))
    }

    /// What installs a library, for this executable (see [`remedy`]).
    pub fn remedy(&self) -> String {
        remedy(self.installed.as_ref(), false)
    }
}

/// A library found at `path` by `source`, after looking at `looked`.
fn found(path: PathBuf, source: &'static str, looked: Vec<String>) -> Located {
    Located {
        path,
        source,
        looked,
    }
}

/// `text` with its first letter in lower case, to follow a semicolon.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_lowercase().chain(chars).collect::<String>()
    })
}

/// The library file with the highest version in `dir`, if any.
fn newest_library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name.strip_prefix("libonnxruntime.so")?;
            let numbers = version
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((numbers, e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// The folder of the `onnxruntime` package that `python` imports, if any.
fn python_package_dir(python: &str) -> Option<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import os, onnxruntime; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

/// The libraries ONNX Runtime's CUDA and TensorRT providers load, by file-name prefix: the CUDA
/// runtime, cuBLAS, cuRAND, cuFFT, NVRTC, cuDNN and TensorRT.
const GPU_LIBRARIES: [&str; 11] = [
    "libcudart.so",
    "libnvJitLink.so",
    "libcublasLt.so",
    "libcublas.so",
    "libcurand.so",
    "libcufft.so",
    "libnvrtc.so",
    "libnvrtc-builtins.so",
    "libcudnn",
    "libnvinfer",
    "libnvonnxparser",
];

/// The package folder (`site-packages`) a wheel's library is in: the folder above its
/// `onnxruntime/capi/`.
pub fn packages_folder(library: &Path) -> Option<&Path> {
    library.ancestors().nth(3)
}

/// Loads, for the whole process, the CUDA libraries that the `nvidia-*` wheels (the
/// `onnxruntime-gpu[cuda,cudnn]` extras, or PyTorch's dependencies) put beside the runtime's
/// package, in `site-packages/nvidia/*/lib/` (and TensorRT's, from the `tensorrt` wheel's
/// `site-packages/tensorrt_libs/`): the provider libraries find them by name only once they
/// are loaded, which is what `onnxruntime.preload_dlls()` does for Python. Returns the files
/// loaded (none when the runtime is not in a Python environment, or it has none).
pub fn preload_gpu_libraries(library: &Path) -> Vec<PathBuf> {
    let Some(site) = packages_folder(library) else {
        return Vec::new();
    };
    let folders = sorted_entries(&site.join("nvidia"), |_| true)
        .into_iter()
        .map(|package| package.join("lib"))
        .chain([site.join("tensorrt_libs")]);
    let mut pending: Vec<PathBuf> = folders
        .flat_map(|folder| {
            sorted_entries(&folder, |name| {
                name.contains(".so") && GPU_LIBRARIES.iter().any(|p| name.starts_with(p))
            })
        })
        .collect();
    let mut loaded = Vec::new();
    // A library whose own dependencies are not loaded yet fails; try again while any loads.
    loop {
        let before = loaded.len();
        pending.retain(|path| {
            // SAFETY: these are NVIDIA's CUDA libraries, loaded as ONNX Runtime's provider would
            // load them; they stay loaded for the life of the process (never unloaded).
            let opened = unsafe {
                libloading::os::unix::Library::open(
                    Some(path),
                    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
                )
            };
            match opened {
                Ok(handle) => {
                    std::mem::forget(handle);
                    loaded.push(path.clone());
                    false
                }
                Err(_) => true,
            }
        });
        if pending.is_empty() || loaded.len() == before {
            return loaded;
        }
    }
}

/// The loaded runtime: where it came from and its version.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The library and how it was found.
    pub located: Located,
    /// The library's version, e.g. `1.32.0`.
    pub version: String,
    /// The shared environment that sessions are created in.
    pub environment: ort::environment::Environment,
    /// The Python environment the executable is installed in, for the advice of errors.
    pub installed: Option<PythonEnvironment>,
    /// The CUDA libraries loaded from the runtime's Python environment, once a GPU provider
    /// is asked for ([`Runtime::gpu_libraries`]).
    gpu_libraries: OnceLock<Vec<PathBuf>>,
}

impl Runtime {
    /// What installs a library with the CUDA and TensorRT providers, for this executable.
    pub fn gpu_remedy(&self) -> String {
        remedy(self.installed.as_ref(), true)
    }

    /// The CUDA libraries of the runtime's Python environment, loaded on the first call
    /// ([`preload_gpu_libraries`]); call it before registering a GPU provider.
    pub fn gpu_libraries(&self) -> &[PathBuf] {
        self.gpu_libraries
            .get_or_init(|| preload_gpu_libraries(&self.located.path))
    }

    /// The execution providers the library was built with (`GetAvailableProviders`), e.g.
    /// `CUDAExecutionProvider`, in the library's order. Built with is not usable: the CUDA
    /// provider still needs the driver and CUDA libraries ([`crate::model::session::probe`]).
    pub fn providers(&self) -> Vec<String> {
        let api = ort::api();
        let mut list: *mut *mut std::ffi::c_char = std::ptr::null_mut();
        let mut count: std::ffi::c_int = 0;
        // SAFETY: the API is initialized (this runtime's environment exists); on success the
        // library hands out `count` C strings, read here and released once, below.
        unsafe {
            let status = (api.GetAvailableProviders)(&mut list, &mut count);
            if !status.0.is_null() {
                (api.ReleaseStatus)(status.0);
                return Vec::new();
            }
            if list.is_null() {
                return Vec::new();
            }
            let names = (0..count as usize)
                .map(|i| CStr::from_ptr(*list.add(i)).to_string_lossy().into_owned())
                .collect();
            let released = (api.ReleaseAvailableProviders)(list, count);
            if !released.0.is_null() {
                (api.ReleaseStatus)(released.0);
            }
            names
        }
    }
}

/// The oldest ONNX Runtime release the `ort` crate's C API level works with.
pub const OLDEST_SUPPORTED: &str = "1.17";

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Loads ONNX Runtime once per process; later calls return the first one loaded.
pub fn load(search: &SearchPath) -> Result<&'static Runtime, PlanError> {
    if let Some(r) = RUNTIME.get() {
        return Ok(r);
    }
    let located = search.locate()?;
    let builder = ort::init_from(&located.path).map_err(|e| {
        PlanError::Runtime(format!(
            "cannot load ONNX Runtime from {} (found via {}): {e}.\n\
             layerwise needs ONNX Runtime {OLDEST_SUPPORTED} or later. {}",
            located.path.display(),
            located.source,
            search.remedy()
        ))
    })?;
    let environment = builder
        .with_name("layerwise")
        .build()
        .map_err(|e| PlanError::Runtime(format!("cannot start ONNX Runtime: {e}")))?;
    let version = library_version(&located.path).unwrap_or_else(|| "unknown".into());
    Ok(RUNTIME.get_or_init(|| Runtime {
        located,
        version,
        environment,
        installed: search.installed.clone(),
        gpu_libraries: OnceLock::new(),
    }))
}

/// The version the library reports through `OrtGetApiBase()->GetVersionString()`.
fn library_version(path: &Path) -> Option<String> {
    // SAFETY: the library is already loaded by `ort::init_from`, so opening it again only adds
    // a reference; `OrtGetApiBase` and `GetVersionString` are the stable C entry points of every
    // ONNX Runtime release, and the returned string is static.
    unsafe {
        let library = libloading::Library::new(path).ok()?;
        let get_api_base: libloading::Symbol<
            unsafe extern "system" fn() -> *const ort::sys::OrtApiBase,
        > = library.get(b"OrtGetApiBase").ok()?;
        let base = get_api_base();
        if base.is_null() {
            return None;
        }
        let version = ((*base).GetVersionString)();
        (!version.is_null()).then(|| CStr::from_ptr(version).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_settings_come_first_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so.1.32.0");
        std::fs::write(&lib, b"").unwrap();
        let search = SearchPath {
            env: Some(lib.clone()),
            config: Some(PathBuf::from("/nonexistent")),
            ..SearchPath::default()
        };
        assert_eq!(search.locate().unwrap().source, "ORT_DYLIB_PATH");
        let search = SearchPath {
            config: Some(dir.path().join("missing.so")),
            cache: Some(dir.path().to_owned()),
            ..SearchPath::default()
        };
        let err = search.locate().unwrap_err().to_string();
        assert!(err.starts_with("[run] onnxruntime is "), "{err}");
        assert!(err.contains("missing.so, which is not a file"), "{err}");
    }

    #[test]
    fn the_python_environment_is_the_folder_above_bin() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path();
        let site = prefix.join("lib/python3.12/site-packages");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::create_dir_all(prefix.join("lib/python3/dist-packages")).unwrap();
        std::fs::create_dir_all(prefix.join("lib/python3.13/site-packages")).unwrap();
        // A virtual environment's lib64 is a link to lib: each folder counts once.
        std::os::unix::fs::symlink("lib", prefix.join("lib64")).unwrap();
        let env = PythonEnvironment::of_executable(&prefix.join("bin/layerwise")).unwrap();
        assert_eq!(env.prefix, prefix);
        assert_eq!(
            env.site_packages,
            [
                prefix.join("lib/python3/dist-packages"),
                site.clone(),
                prefix.join("lib/python3.13/site-packages")
            ]
        );
        assert_eq!(
            PythonEnvironment::of_executable(&prefix.join("target/release/layerwise")),
            None
        );
        assert_eq!(
            PythonEnvironment::of_executable(&dir.path().join("lib/bin/layerwise")),
            None,
            "a bin/ with no Python packages beside it"
        );
        // The gpu wheel's package folder is `onnxruntime/` too; its dist-info is skipped.
        std::fs::create_dir_all(site.join("onnxruntime_gpu-1.31.1.dist-info")).unwrap();
        let capi = site.join("onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        let search = SearchPath {
            installed: Some(env.clone()),
            ..SearchPath::default()
        };
        let err = search.locate().unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}, ", capi.display()))
                && err.contains(": no libonnxruntime.so.*"),
            "{err}"
        );
        assert!(err.ends_with(&format!("({})", prefix.display())), "{err}");
        // Every package folder is named, those without an onnxruntime package too.
        for empty in ["python3/dist-packages", "python3.13/site-packages"] {
            let glob = prefix.join("lib").join(empty).join("onnxruntime*/capi");
            assert!(err.contains(&glob.display().to_string()), "{err}");
        }
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        let found = search.locate().unwrap();
        assert_eq!(found.path, capi.join("libonnxruntime.so.1.31.1"));
        assert_eq!(found.source, INSTALLED_SOURCE);
    }

    #[test]
    fn the_cuda_libraries_beside_the_runtime_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("lib/python3.12/site-packages");
        let library = site.join("onnxruntime/capi/libonnxruntime.so.1.31.1");
        let cuda = site.join("nvidia/cu13/lib");
        std::fs::create_dir_all(&cuda).unwrap();
        // A real shared object under a CUDA library's name loads; a broken one is left out,
        // and so is a library that the providers do not use.
        let real = [
            "/lib/x86_64-linux-gnu/libz.so.1",
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
        ]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("zlib, as a shared object to load");
        std::fs::copy(real, cuda.join("libcudart.so.13")).unwrap();
        std::fs::copy(real, cuda.join("libcupti.so.13")).unwrap();
        std::fs::write(cuda.join("libcublas.so.13"), b"not an ELF file").unwrap();
        assert_eq!(
            preload_gpu_libraries(&library),
            [cuda.join("libcudart.so.13")]
        );
        assert_eq!(
            preload_gpu_libraries(Path::new("/libonnxruntime.so")),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn the_cache_yields_the_newest_version() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.32.0",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let search = SearchPath {
            cache: Some(dir.path().to_owned()),
            ..SearchPath::default()
        };
        let found = search.locate().unwrap();
        assert_eq!(found.path, dir.path().join("libonnxruntime.so.1.32.0"));
        assert_eq!(found.source, "the project cache");
    }

    #[test]
    fn nothing_found_names_every_place_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let search = SearchPath {
            cache: Some(dir.path().to_owned()),
            python: Some("/nonexistent/python3".into()),
            ..SearchPath::default()
        };
        let err = search.locate().unwrap_err().to_string();
        assert!(
            err.starts_with("ONNX Runtime's shared library was not found"),
            "{err}"
        );
        assert!(err.contains("ORT_DYLIB_PATH: not set"), "{err}");
        assert!(err.contains("[run] onnxruntime: not set"), "{err}");
        assert!(err.contains("no libonnxruntime.so.*"), "{err}");
        assert!(
            err.contains("/nonexistent/python3: no importable onnxruntime package"),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("Provision it with: {PROVISION_COMMAND}")),
            "{err}"
        );
    }
}
