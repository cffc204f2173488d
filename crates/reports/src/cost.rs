//! What a framework costs before its first step, as `cargo xtask cost` measures it: a build of
//! `lenet` with that framework alone (cold, and again after a change to the framework's crate), the
//! binary it makes, the native libraries it loads, its dependency tree, and the first epoch of its
//! runs in this machine's comparison. One JSON file per framework and build in a machine's
//! `build-cost` folder (the presentation crate `results` writes a `summary.md` beside them).

use std::path::Path;

use serde::{Deserialize, Serialize};

use common::fsio::write_atomic;
use common::Error;

use crate::env::Environment;
use crate::report::RunReport;

/// The folder under a machine's results that holds its build costs (not run reports).
pub const FOLDER: &str = "build-cost";

/// Version of the [`BuildCost`] format.
pub const COST_SCHEMA: u32 = 1;

/// One framework's build, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildCost {
    pub schema: u32,
    /// The framework's cargo feature (tch, candle, burn).
    pub framework: String,
    /// cpu, or cuda for a build with the framework's CUDA code.
    pub device: String,
    /// The cargo arguments of the build, after `cargo build --release`.
    pub cargo_args: Vec<String>,
    /// `rustc --version`.
    pub rustc: String,
    pub environment: Environment,
    /// The release build of `lenet` with this framework alone in an empty target folder, the
    /// dependencies' sources already downloaded.
    pub cold_build_seconds: f64,
    /// The same build again after the framework crate's `lib.rs` was touched.
    pub rebuild_seconds: f64,
    /// The file touched for the rebuild, relative to the repository.
    pub touched: String,
    /// The `lenet` binary as built (the release profile keeps line tables), and stripped.
    pub binary_bytes: u64,
    pub stripped_bytes: u64,
    /// The shared libraries the binary loads at start (`ldd`) outside the system's own folders.
    pub native_libraries: Vec<NativeLibrary>,
    /// The libraries `ldd` did not find on the machine that built it (a CUDA build's driver, where
    /// there is no GPU, or CUDA libraries found only through `LD_LIBRARY_PATH` at run time).
    #[serde(default)]
    pub missing_libraries: Vec<String>,
    /// Crates in its dependency tree (normal and build dependencies, this platform), the project's
    /// own included, and how many of them have a build script.
    pub crates: usize,
    pub build_scripts: usize,
    /// The first epoch of this machine's comparison (idiomatic, batch 32), per model.
    pub first_epochs: Vec<FirstEpoch>,
}

/// A shared library a binary needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeLibrary {
    pub name: String,
    pub bytes: u64,
}

/// What the start of one run cost, from its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstEpoch {
    pub model: String,
    /// The report it comes from, relative to the results folder.
    pub report: String,
    /// Building the model and uploading the data, before the first step.
    pub setup_seconds: f64,
    pub first_epoch_seconds: f64,
    /// The median of epochs 2..N.
    pub steady_epoch_seconds: f64,
}

impl FirstEpoch {
    /// From a finished report of two epochs or more.
    pub fn of(report: &RunReport, file: &str) -> Option<Self> {
        if report.epochs.len() < 2 || !report.succeeded() {
            return None;
        }
        Some(Self {
            model: report.spec.model.to_string(),
            report: file.to_string(),
            setup_seconds: report.setup_seconds,
            first_epoch_seconds: report.first_epoch_seconds()?,
            steady_epoch_seconds: report.median_epoch_seconds()?,
        })
    }

    /// What the first epoch costs beyond a steady one.
    pub fn extra_seconds(&self) -> f64 {
        self.first_epoch_seconds - self.steady_epoch_seconds
    }
}

impl BuildCost {
    pub fn native_bytes(&self) -> u64 {
        self.native_libraries.iter().map(|l| l.bytes).sum()
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: not a build cost: {e}", path.display())))
    }

    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("cannot encode a build cost: {e}")))?;
        write_atomic(path, text.as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}

/// Every build cost in `dir`, in the order of their file names.
pub fn load(dir: &Path) -> Result<Vec<BuildCost>, Error> {
    common::fsio::json_files(dir)
        .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
        .iter()
        .map(|f| BuildCost::read(f))
        .collect()
}
