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
    /// A framework of the project that this build left out.
    #[error(
        "{name} is not in this build: build lenet with the cargo feature `{feature}` (the default \
         builds every framework; `cargo build --release --features {feature}` adds it)"
    )]
    NotBuilt { name: String, feature: String },
    /// The framework panicked (an assertion deep in its kernels, say); the run ends, the process
    /// does not.
    #[error("the framework panicked: {0}")]
    Panicked(String),
    /// A prediction's input that is not whole images, or an empty batch.
    #[error("{0}")]
    Input(String),
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

/// How a report's failure starts when the device ran out of memory (a sweep's batch size too large
/// for the GPU, say), whatever words the framework used.
pub const OUT_OF_DEVICE_MEMORY: &str = "out of device memory";

/// Whether `message` says that memory ran out, in any of the frameworks' words ("CUDA out of
/// memory", `CUDA_ERROR_OUT_OF_MEMORY`, "An out-of-memory error", `OutOfMemory`, "out of device
/// memory").
pub fn is_out_of_memory(message: &str) -> bool {
    let words: String = message
        .to_lowercase()
        .chars()
        .map(|c| if c == '-' || c == '_' { ' ' } else { c })
        .collect();
    words.contains("out of memory")
        || words.contains("outofmemory")
        || words.contains("out of device memory")
}

/// A run's failure as its report gives it: marked [`OUT_OF_DEVICE_MEMORY`] when memory ran out on
/// a device (`on_device`; on the CPU the kernel ends the process instead).
pub fn failure_text(message: String, on_device: bool) -> String {
    if on_device && is_out_of_memory(&message) && !message.starts_with(OUT_OF_DEVICE_MEMORY) {
        format!("{OUT_OF_DEVICE_MEMORY}: {message}")
    } else {
        message
    }
}

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
