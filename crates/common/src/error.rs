//! Error types. Every message is one line that names what went wrong and, where it helps, what to do.

use std::path::PathBuf;

/// A problem with a data file: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct DataError {
    pub path: PathBuf,
    pub problem: String,
}

impl DataError {
    pub fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// What a framework can report from training or evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The device that was asked for cannot be used by this framework or on this machine.
    #[error("{0}")]
    DeviceUnavailable(String),
    /// Weights that do not fit the model (a wrong name or shape).
    #[error("weights do not fit the model: {0}")]
    Weights(String),
    /// The training loss stopped being a number (the message names the epoch and step).
    #[error("{0}")]
    NonFinite(String),
    /// No framework of that name in this build.
    #[error("unknown framework '{name}': this build has {known}")]
    UnknownFramework { name: String, known: String },
    /// The framework panicked (an assertion deep in its kernels, say); the run ends, the process
    /// does not.
    #[error("the framework panicked: {0}")]
    Panicked(String),
    /// Anything the framework itself reported.
    #[error("{framework}: {message}")]
    Backend {
        framework: &'static str,
        message: String,
    },
}

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The cause is part of the message, not a source of its own, so that it is said once however
    /// the error is printed.
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            cause,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A value given for an option that is not one of those it takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}': expected {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl UnknownValue {
    pub fn new(what: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            what,
            value: value.to_string(),
            expected,
        }
    }
}
