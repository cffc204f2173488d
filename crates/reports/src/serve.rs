//! What serving a trained model costs in one row, as `lenet serve` measures it: the model's load
//! and first prediction, starts of a new process until its first answer (timed from outside the
//! process), single-image latency, large-batch throughput, memory, and the answers themselves (each
//! test image's predicted class and the first images' logits, so that rows are compared by what
//! they predict). One JSON file per row, model and thread count in a machine's `serve` folder.

use std::path::Path;

use common::fsio::write_atomic;
use common::harness::DeviceKind;
use common::serve::{Latency, Throughput};
use common::{Dataset, Error, ModelKind};
use serde::{Deserialize, Serialize};

use crate::env::Environment;

/// The folder under a machine's results that holds its serving reports.
pub const FOLDER: &str = "serve";

/// Version of the [`ServeReport`] format.
pub const SERVE_SCHEMA: u32 = 1;

/// The test images whose logits a report keeps whole (the rest are kept as classes).
pub const LOGIT_IMAGES: usize = 16;

/// One row's serving, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServeReport {
    pub schema: u32,
    /// The row (`--framework`).
    pub framework: String,
    /// What answers, with its version.
    pub framework_version: String,
    pub model: ModelKind,
    pub dataset: Dataset,
    /// The model file's name (no folder), and its metadata (how it was trained: `framework`,
    /// `epochs`, `seed`, ... as `lenet train --save` writes them).
    pub model_file: String,
    pub model_metadata: std::collections::BTreeMap<String, String>,
    pub device: DeviceKind,
    /// The CPU threads asked for (`None`: the framework's default, all of the machine's cores).
    pub threads: Option<usize>,
    /// Reading the model file and building the model on its device, in the measuring process.
    pub load_seconds: f64,
    /// The first prediction of one image after the load (which may set up kernels).
    pub first_prediction_seconds: f64,
    /// Each start of a new process until it printed its first prediction (the load included),
    /// timed by the process that started it.
    pub cold_start_seconds: Vec<f64>,
    /// Single-image predictions after a warm-up.
    pub batch1: Latency,
    /// Large batches, one entry per batch size.
    pub throughput: Vec<Throughput>,
    /// The test images predicted, the fraction predicted right, and each one's class as a digit.
    pub test_images: usize,
    pub accuracy: f64,
    pub classes: String,
    /// The logits of the first [`LOGIT_IMAGES`] test images, row after row.
    pub logits: Vec<f32>,
    /// The process's peak resident memory over the whole measurement.
    pub peak_host_bytes: Option<u64>,
    /// On CUDA, the most GPU memory the driver saw the process hold over the measurement (NVML,
    /// sampled); absent on the CPU and where the driver cannot say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_device_bytes: Option<u64>,
    /// What the row did that a reader of its numbers should know (an export before the load, a
    /// compilation on the first calls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub environment: Environment,
}

impl ServeReport {
    /// The report's file name: `serve-FRAMEWORK-MODEL-tTHREADS.json` (`-tall` for the default).
    pub fn file_name(&self) -> String {
        let threads = self
            .threads
            .map_or_else(|| "all".to_string(), |t| t.to_string());
        format!(
            "serve-{}-{}-t{threads}.json",
            self.framework,
            self.model.name()
        )
    }

    /// The cold starts' median, where there were any.
    pub fn median_cold_start(&self) -> Option<f64> {
        let mut s = self.cold_start_seconds.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => None,
            n if n % 2 == 1 => Some(s[n / 2]),
            n => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
        }
    }

    /// The test images whose predicted class differs from `other`'s (`None` when they predicted
    /// different images).
    pub fn differing_classes(&self, other: &ServeReport) -> Option<usize> {
        (self.classes.len() == other.classes.len()).then(|| {
            self.classes
                .bytes()
                .zip(other.classes.bytes())
                .filter(|(a, b)| a != b)
                .count()
        })
    }

    /// The largest difference between this report's logits and `other`'s over the images both
    /// kept (`None` when they kept none in common).
    pub fn logit_difference(&self, other: &ServeReport) -> Option<f32> {
        self.logits
            .iter()
            .zip(&other.logits)
            .map(|(a, b)| (a - b).abs())
            .reduce(f32::max)
    }

    /// The folder's reports, by file name.
    pub fn load(dir: &Path) -> Result<Vec<ServeReport>, Error> {
        common::fsio::json_files(dir)
            .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
            .iter()
            .map(|f| ServeReport::read(f))
            .collect()
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: not a serving report: {e}", path.display())))
    }

    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("cannot encode the report: {e}")))?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}
