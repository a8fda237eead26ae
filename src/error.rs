//! Errors that retrying cannot fix: a wrong config, a model that does not fit it, a missing
//! runtime library. The CLI maps them to their own exit code so a scheduler does not retry.

use std::path::PathBuf;

/// A problem with what the user asked for, found before any image is read.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The config file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    ConfigUnreadable {
        /// The config path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config is not valid TOML or does not fit the format.
    #[error("config {}: {message}", path.display())]
    ConfigSyntax {
        /// The config path.
        path: PathBuf,
        /// The parser's message, with line and key.
        message: String,
    },
    /// A value is out of its allowed range or inconsistent with another one.
    #[error("config{}: `{key}` {problem}", file.as_ref().map(|f| format!(" {}", f.display())).unwrap_or_default())]
    Invalid {
        /// The config file, once known ([`PlanError::in_file`]).
        file: Option<PathBuf>,
        /// The key path, e.g. `layers[1].keep`.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The model does not fit the config (names, shapes, element types).
    #[error("model {}: {problem}", path.display())]
    Model {
        /// The model path.
        path: PathBuf,
        /// What does not fit.
        problem: String,
    },
    /// The ONNX Runtime shared library was not found or could not be loaded.
    #[error("{0}")]
    Runtime(String),
    /// A command-line option that cannot be taken (not a config key).
    #[error("`{option}` {problem}")]
    Argument {
        /// The option, e.g. `--match`.
        option: &'static str,
        /// What is wrong with its value, and what to give instead.
        problem: String,
    },
}

/// A mistake in what a command was asked that retrying cannot fix: an option's value, a layer,
/// channel or image that a run does not have, an output folder that holds another run. The CLI
/// exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Mistake(pub String);

/// Returns early with a [`Mistake`], its message formatted as `format!` does.
#[macro_export]
macro_rules! mistake {
    ($($arg:tt)*) => {
        return Err($crate::error::Mistake(format!($($arg)*)).into())
    };
}

/// A table of a stored run that cannot be read as layerwise's: a column is missing, or of a
/// type that cannot hold its values (a table rewritten by another tool), or the file is damaged.
/// Retrying will not help: the CLI exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{file}: the `{table}` table's column `{column}` {problem}")]
pub struct TableError {
    /// The file.
    pub file: String,
    /// The table, e.g. `stats`.
    pub table: &'static str,
    /// The column.
    pub column: String,
    /// What is wrong with it, with the type found.
    pub problem: String,
}

/// Why a run that started did not end in success, beyond I/O and runtime errors.
#[derive(Debug, thiserror::Error)]
pub enum RunStop {
    /// More images failed than `[run] max_error_fraction` allows. Every part was still written.
    #[error(
        "{error} of {images} images could not be used ({:.2}%), more than `[run] \
         max_error_fraction = {max}` allows. Every part was written: the `images` table's `error` \
         column says what is wrong with each file",
        100.0 * *error as f64 / (*images).max(1) as f64
    )]
    TooManyErrors {
        /// Images that failed.
        error: u64,
        /// Images listed.
        images: u64,
        /// The configured maximum share.
        max: f64,
    },
    /// A signal (Ctrl-C, or the scheduler's SIGTERM) stopped the run between batches.
    #[error(
        "interrupted: {committed} parts are committed and kept, the part in progress was \
         dropped; run the same command again to do the rest"
    )]
    Interrupted {
        /// Parts committed, by this and earlier processes.
        committed: usize,
    },
}

impl RunStop {
    /// The process exit status: 4 for too many bad images, 130 when interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunStop::TooManyErrors { .. } => 4,
            RunStop::Interrupted { .. } => 130,
        }
    }
}

impl PlanError {
    /// Shorthand for [`PlanError::Invalid`].
    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> PlanError {
        PlanError::Invalid {
            file: None,
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The error, naming `config` as the file of an invalid value (other errors name their
    /// file already, or have none).
    pub fn in_file(self, config: &std::path::Path) -> PlanError {
        match self {
            PlanError::Invalid {
                file: None,
                key,
                problem,
            } => PlanError::Invalid {
                file: Some(config.to_owned()),
                key,
                problem,
            },
            other => other,
        }
    }
}

/// An error and its causes as one line, `context: cause: ...`, each said once: a cause whose
/// message the layer above already quotes is left out, and so are the `External: ` and
/// `External error: ` prefixes of Arrow's and Parquet's wrappers of an error from a reader.
pub fn describe(err: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for layer in err.chain() {
        let text = layer.to_string();
        let mut text = text.as_str();
        while let Some(rest) = text
            .strip_prefix("External: ")
            .or_else(|| text.strip_prefix("External error: "))
        {
            text = rest;
        }
        if said.last().is_none_or(|above| !above.contains(text)) {
            said.push(text.to_owned());
        }
    }
    said.join(": ")
}

/// `err` naming `config` as the file of an invalid value, when it is one
/// ([`PlanError::in_file`]).
pub fn in_config(err: anyhow::Error, config: &std::path::Path) -> anyhow::Error {
    match err.downcast::<PlanError>() {
        Ok(plan) => plan.in_file(config).into(),
        Err(other) => other,
    }
}

/// The exit status for an error, as the README's table gives it: 2 for mistakes in the config or model (retrying will not help), 4 for too many bad
/// images, 130 when interrupted, 1 for the rest.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(stop) = err.chain().find_map(|e| e.downcast_ref::<RunStop>()) {
        stop.exit_code()
    } else if err
        .chain()
        .any(|e| e.is::<PlanError>() || e.is::<TableError>() || e.is::<Mistake>())
    {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::{describe, PlanError};

    #[test]
    fn a_cause_quoted_by_its_wrappers_is_said_once() {
        // As arrow-rs and parquet wrap an error a reader returns.
        let inner = anyhow::anyhow!("out/x.parquet: holds -1, which does not fit UInt32");
        let wrapped = inner
            .context("External error: out/x.parquet: holds -1, which does not fit UInt32")
            .context(
                "External: External error: out/x.parquet: holds -1, which does not fit UInt32",
            );
        assert_eq!(
            describe(&wrapped),
            "out/x.parquet: holds -1, which does not fit UInt32"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let unreadable = anyhow::Error::from(PlanError::ConfigUnreadable {
            path: "x.toml".into(),
            source: io,
        });
        assert_eq!(
            describe(&unreadable),
            "cannot read config x.toml: No such file"
        );
        let plain = anyhow::anyhow!("unknown field").context("config x.toml");
        assert_eq!(describe(&plain), "config x.toml: unknown field");
    }
}
