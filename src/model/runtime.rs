//! Finding and loading the ONNX Runtime shared library.
//!
//! Nothing is downloaded at build time: the library is the one shipped in the `onnxruntime`
//! (or `onnxruntime-gpu`) wheel. It is looked for, in this order, at `ORT_DYLIB_PATH`, at the
//! config's `[run] onnxruntime`, in the project's cache folder (filled by
//! `scripts/fetch-onnxruntime.sh`), and in an `onnxruntime` package importable by `python3`.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::PlanError;

/// The command that provisions the library, quoted in the error when none is found.
pub const PROVISION_COMMAND: &str = concat!(
    "bash ",
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/fetch-onnxruntime.sh"
);

/// The project's cache folder for the library.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnxruntime")
}

/// Where the library was found, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The shared library file.
    pub path: PathBuf,
    /// Which rule found it, e.g. `ORT_DYLIB_PATH`.
    pub source: &'static str,
}

/// The places to look, each filled in by the caller (so tests can give their own).
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// The value of `ORT_DYLIB_PATH`.
    pub env: Option<PathBuf>,
    /// The config's `[run] onnxruntime`.
    pub config: Option<PathBuf>,
    /// The project's cache folder.
    pub cache: Option<PathBuf>,
    /// The Python interpreter to ask for an `onnxruntime` package.
    pub python: Option<String>,
}

impl SearchPath {
    /// The standard search path: the environment, the config's path, the cache, `python3`.
    pub fn standard(config: Option<PathBuf>) -> SearchPath {
        SearchPath {
            env: std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from),
            config,
            cache: Some(cache_dir()),
            python: Some("python3".into()),
        }
    }

    /// Finds the library, or explains every place looked at and the command that provisions it.
    pub fn locate(&self) -> Result<Located, PlanError> {
        let mut looked = Vec::new();
        let explicit = [
            ("ORT_DYLIB_PATH", &self.env),
            ("[run] onnxruntime", &self.config),
        ];
        for (source, path) in explicit {
            match path {
                // An explicit path that does not exist is an error, not a reason to look further.
                Some(p) if p.is_file() => {
                    return Ok(Located {
                        path: p.clone(),
                        source,
                    })
                }
                Some(p) => {
                    return Err(PlanError::Runtime(format!(
                    "{source} is {}, which is not a file. Point it at libonnxruntime.so.<version> \
                         (or unset it, and provision one with: {PROVISION_COMMAND})",
                    p.display()
                )))
                }
                None => looked.push(format!("{source}: not set")),
            }
        }
        if let Some(dir) = &self.cache {
            match newest_library_in(dir) {
                Some(path) => {
                    return Ok(Located {
                        path,
                        source: "the project cache",
                    })
                }
                None => looked.push(format!("{}: no libonnxruntime.so.*", dir.display())),
            }
        }
        if let Some(python) = &self.python {
            match python_package_dir(python) {
                Some(dir) => match newest_library_in(&dir.join("capi")) {
                    Some(path) => {
                        return Ok(Located {
                            path,
                            source: "the python3 onnxruntime package",
                        })
                    }
                    None => looked.push(format!("{}/capi: no libonnxruntime.so.*", dir.display())),
                },
                None => looked.push(format!("{python}: no importable onnxruntime package")),
            }
        }
        Err(PlanError::Runtime(format!(
            "ONNX Runtime's shared library was not found (looked at {}).\n\
             Provision it with: {PROVISION_COMMAND}",
            looked.join("; ")
        )))
    }
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

/// The loaded runtime: where it came from and its version.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The library and how it was found.
    pub located: Located,
    /// The library's version, e.g. `1.32.0`.
    pub version: String,
    /// The shared environment that sessions are created in.
    pub environment: ort::environment::Environment,
}

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
             Provision a supported version with: {PROVISION_COMMAND}",
            located.path.display(),
            located.source
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
