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
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
