//! What a run records, below the run itself: one [`EpochRecord`] per epoch (filled by the epoch
//! loop and by the meters, each its own fields), the [`EvalRecord`] of a pass over a split, and a
//! kernel pass's [`DeviceActivity`]. These are the report's schema (`reports::RunReport` holds
//! them; the Python rows write the same fields); they live in this crate, which the meters and the
//! reports depend on and the framework crates do not, so that a new field rebuilds no framework.

use common::Totals;
use serde::{Deserialize, Serialize};

/// One epoch's numbers. Accuracy is a fraction in [0, 1]; the training figures are running figures
/// over the epoch's steps, the test figures come from a pass after the epoch.
///
/// The loop fills the first fields, each meter its own (`None` where it measured nothing): a
/// literal names the loop's and takes the rest from `..EpochRecord::default()`, so that a meter's
/// new field is written in this file and its meter alone.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: u32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// From the first step to a device synchronisation after the last.
    pub train_seconds: f64,
    pub eval_seconds: f64,
    /// From the first step until the host had queued the last one (the trainer's last progress
    /// call); the rest of `train_seconds` is the device finishing what was queued, and the reading
    /// of the epoch's totals. `None` in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_seconds: Option<f64>,
    /// The GPU's energy over this epoch's training, from its driver's counter; `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_joules: Option<f64>,
    /// The share of this epoch's training during which a kernel was running on the GPU: its
    /// driver's utilization counter (NVML), averaged over the readings taken during the epoch;
    /// `None` without a GPU or a reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_busy: Option<f64>,
    /// What the device did during this epoch's training, kernel by kernel: only in the report of a
    /// kernel pass (`lenet train --kernels`), never in a timed run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_activity: Option<DeviceActivity>,
    /// The most host memory the process held during this epoch, training and evaluation (Linux's
    /// high-water mark of the resident set, reset as the epoch starts); `None` where it cannot be
    /// read, or cannot be reset (then no epoch gets one), and in reports written before it was
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_host_bytes: Option<u64>,
}

/// What the device did during one epoch's training, from the kernel counter's records (CUPTI's own
/// start and end of every kernel, memory copy and memory set, on the device).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceActivity {
    pub kernels: u64,
    /// Kernels that ran as nodes of a CUDA graph (a replayed step).
    pub graph_kernels: u64,
    pub copies: u64,
    pub sets: u64,
    /// The union of the kernels' intervals: the time during which at least one kernel ran.
    pub busy_seconds: f64,
    /// The sum of the kernels' durations (more than `busy_seconds` where kernels overlapped).
    pub kernel_seconds: f64,
    /// From the harness's mark at the epoch's first step to its mark after the last.
    pub span_seconds: f64,
    /// The kernels that took the most time, most first (at most five).
    pub top: Vec<KernelTime>,
}

/// What a kernel pass's counter could measure (its numbers are in the epochs' `device_activity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelPass {
    /// Whether any epoch's device activity was measured.
    pub measured: bool,
    /// Why nothing was measured ("no device activity measured: ..."), or what makes the counts
    /// doubtful (records CUPTI dropped); `None` for a clean measurement.
    pub note: Option<String>,
}

impl KernelPass {
    /// The text a report and a table give where no device activity was measured.
    pub const NOTHING: &'static str = "no device activity measured";

    /// Nothing measured, and why.
    pub fn nothing(why: &str) -> Self {
        Self {
            measured: false,
            note: Some(format!("{}: {why}", Self::NOTHING)),
        }
    }
}

/// One kernel's share of an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelTime {
    pub name: String,
    pub count: u64,
    pub seconds: f64,
}

/// A pass over a whole split without training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub loss: f64,
    pub accuracy: f64,
    pub examples: u64,
    pub seconds: f64,
}

impl EvalRecord {
    pub fn new(totals: &Totals, seconds: f64) -> Self {
        Self {
            loss: totals.mean_loss(),
            accuracy: totals.accuracy(),
            examples: totals.examples,
            seconds,
        }
    }
}
