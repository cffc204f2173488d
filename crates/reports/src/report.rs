//! The JSON run report: the boundary between a run process and everything that reads results.
//! One report per run, written atomically (a temporary file in the same folder, then a rename) as
//! soon as the run ends, whether it succeeded or failed. The Python rows write the same format
//! (`python/lenet_report.py`); `tests/schema.rs` holds their fields to the ones written here.

use std::path::Path;

use common::fsio::write_atomic;
use common::harness::{BackendInfo, DeviceKind, DeviceRequest, RunSpec};
use common::Error;
pub use epochs::KernelPass;
use epochs::{EpochRecord, EvalRecord};
use serde::{Deserialize, Serialize};

use crate::env::Environment;

type Result<T> = std::result::Result<T, Error>;

/// Version of the report format.
pub const SCHEMA: u32 = 1;

/// Everything about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: u32,
    pub spec: RunSpec,
    /// What the framework reported about itself; absent when it failed before it could.
    pub backend: Option<BackendInfo>,
    pub environment: Environment,
    pub parameters: usize,
    pub train_examples: usize,
    pub test_examples: usize,
    /// Building the model and uploading the data.
    pub setup_seconds: f64,
    pub epochs: Vec<EpochRecord>,
    pub final_train: Option<EvalRecord>,
    pub final_test: Option<EvalRecord>,
    /// The run process's peak resident memory (Linux `VmHWM`; Python's `ru_maxrss`), data included.
    #[serde(default)]
    pub peak_host_bytes: Option<u64>,
    /// The most device memory the framework had allocated at once, where it can tell.
    #[serde(default)]
    pub peak_device_bytes: Option<u64>,
    /// The most GPU memory the driver had given the run's process (NVML, sampled every 20 ms: the
    /// CUDA context, the allocator's pools and the tensors), the same measure for every framework.
    #[serde(default)]
    pub gpu_process_bytes: Option<u64>,
    /// Why the run failed; `None` for a run that finished.
    pub failure: Option<String>,
    /// In a kernel pass's report (`lenet train --kernels`, a run of its own beside the timed one):
    /// what the kernel counter could measure. `None` in a timed run's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_pass: Option<KernelPass>,
    /// In a timed run's report, read from a results folder: what the kernel pass of the same
    /// configuration (its own file, `NAME.kernels.json` beside `NAME.json`) measured per step.
    /// Joined when the folder is loaded, never written.
    #[serde(skip)]
    pub device_steps: Option<DeviceSteps>,
}

/// A kernel pass's measurement per training step, joined to the timed run of the same
/// configuration: the medians over its epochs 2..N (epoch 1 alone when there is only one).
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceSteps {
    Measured(StepActivity),
    /// The pass measured nothing: why, as its report says ("no device activity measured: ...").
    Nothing(String),
}

/// What the device did per training step, as a kernel pass measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepActivity {
    /// Kernels launched per step (a replayed graph's nodes included).
    pub kernels: f64,
    /// Of those, kernels that ran as nodes of a CUDA graph.
    pub graph_kernels: f64,
    /// Memory copies and sets per step.
    pub copies: f64,
    /// The time per step during which a kernel was running (the union of their intervals).
    pub busy_seconds: f64,
    /// The kernels that took the most time in the pass's last epoch, per step.
    pub top: Vec<StepKernel>,
    /// The pass's own median epoch, with the counter recording (against the timed run's: the
    /// counter's overhead).
    pub epoch_seconds: Option<f64>,
}

/// One kernel's launches and device time per step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepKernel {
    pub name: String,
    pub launches: f64,
    pub seconds: f64,
}

impl DeviceSteps {
    /// What a kernel pass's report measured per step; `None` for a finished run that is not a
    /// kernel pass.
    pub fn of(pass: &RunReport) -> Option<Self> {
        // A pass that failed before it could record (its report then has no kernel_pass).
        if let Some(failure) = &pass.failure {
            let first = failure.lines().next().unwrap_or_default();
            return Some(Self::Nothing(format!(
                "{}: the pass failed: {first}",
                KernelPass::NOTHING
            )));
        }
        let kernel_pass = pass.kernel_pass.as_ref()?;
        let steps = pass.steps_per_epoch().filter(|&s| s > 0);
        let activity: Vec<_> = pass
            .steady_epochs()
            .filter_map(|e| e.device_activity.as_ref())
            .collect();
        let (Some(steps), true) = (steps, kernel_pass.measured && !activity.is_empty()) else {
            return Some(Self::Nothing(kernel_pass.note.clone().unwrap_or_else(
                || {
                    format!(
                        "{}: no epoch has the counter's records",
                        KernelPass::NOTHING
                    )
                },
            )));
        };
        let per_step = |f: &dyn Fn(&epochs::DeviceActivity) -> f64| {
            median(activity.iter().map(|a| f(a) / steps as f64).collect()).unwrap_or_default()
        };
        Some(Self::Measured(StepActivity {
            kernels: per_step(&|a| a.kernels as f64),
            graph_kernels: per_step(&|a| a.graph_kernels as f64),
            copies: per_step(&|a| (a.copies + a.sets) as f64),
            busy_seconds: per_step(&|a| a.busy_seconds),
            top: activity
                .last()
                .map(|a| {
                    a.top
                        .iter()
                        .map(|k| StepKernel {
                            name: k.name.clone(),
                            launches: k.count as f64 / steps as f64,
                            seconds: k.seconds / steps as f64,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            epoch_seconds: pass.median_epoch_seconds(),
        }))
    }

    /// The measurement, or `None` where nothing was measured.
    pub fn measured(&self) -> Option<&StepActivity> {
        match self {
            Self::Measured(activity) => Some(activity),
            Self::Nothing(_) => None,
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// A GPU run whose device was busy (a kernel running) for less than this share of the epoch is
/// host-bound: the device waited for the host most of the time. The host's share of the epoch
/// cannot tell (the launch queue lets the host run only so far ahead of the device, so an eager
/// row's host share reads near 100% whoever waits).
pub const HOST_BOUND_BUSY: f64 = 0.5;

impl RunReport {
    /// A report that holds only a failure (the run never got as far as training).
    pub fn failed(spec: RunSpec, environment: Environment, reason: String) -> Self {
        Self {
            schema: SCHEMA,
            parameters: spec.model.spec().num_params(),
            spec,
            backend: None,
            environment,
            train_examples: 0,
            test_examples: 0,
            setup_seconds: 0.0,
            epochs: Vec::new(),
            final_train: None,
            final_test: None,
            peak_host_bytes: None,
            peak_device_bytes: None,
            gpu_process_bytes: None,
            failure: Some(reason),
            kernel_pass: None,
            device_steps: None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.final_test.is_some()
    }

    /// The row's name: the framework, with its profile when that is not the idiomatic one
    /// (`tch (tuned)`).
    pub fn label(&self) -> String {
        if self.spec.profile.is_idiomatic() {
            self.spec.framework.clone()
        } else {
            format!("{} ({})", self.spec.framework, self.spec.profile)
        }
    }

    /// The device the run used (its framework's word for it), else the one it asked for where it
    /// failed before its framework could say; `None` for a run that asked for `auto` and failed
    /// that early. What the tables and the verdict filter and group by.
    pub fn device_kind(&self) -> Option<DeviceKind> {
        match (&self.backend, self.spec.device) {
            (Some(b), _) => Some(b.device),
            (None, DeviceRequest::Cpu) => Some(DeviceKind::Cpu),
            (None, DeviceRequest::Cuda) => Some(DeviceKind::Cuda),
            (None, DeviceRequest::Auto) => None,
        }
    }

    /// Whether the run used `device` (see [`RunReport::device_kind`]).
    pub fn on(&self, device: DeviceKind) -> bool {
        self.device_kind() == Some(device)
    }

    /// Whether the run used CUDA.
    pub fn on_cuda(&self) -> bool {
        self.on(DeviceKind::Cuda)
    }

    /// Whether the run used the CPU.
    pub fn on_cpu(&self) -> bool {
        self.on(DeviceKind::Cpu)
    }

    /// The device as the tables and file names write it: [`RunReport::device_kind`]'s name, or the
    /// request (`auto`) of a run that failed before it got one.
    pub fn device(&self) -> String {
        self.device_kind()
            .map_or_else(|| self.spec.device.to_string(), |d| d.to_string())
    }

    /// Epoch 1's training time.
    pub fn first_epoch_seconds(&self) -> Option<f64> {
        self.epochs.first().map(|e| e.train_seconds)
    }

    /// Median training time of epochs 2..N (epoch 1 alone when there is only one).
    pub fn median_epoch_seconds(&self) -> Option<f64> {
        self.steady_median(|e| Some(e.train_seconds))
    }

    /// Training steps per epoch: the training examples over the batch size, the last batch
    /// shorter; `None` for a run that never got its data.
    pub fn steps_per_epoch(&self) -> Option<usize> {
        (self.train_examples > 0 && self.spec.batch_size > 0)
            .then(|| self.train_examples.div_ceil(self.spec.batch_size))
    }

    /// The device floor of a timed run, from its kernel pass: the device's busy time per step
    /// times the steps of an epoch, the epoch a host with no overhead would reach. `None` without
    /// a kernel pass that measured the device.
    pub fn device_floor_seconds(&self) -> Option<f64> {
        let busy = self.device_steps.as_ref()?.measured()?.busy_seconds;
        Some(busy * self.steps_per_epoch()? as f64)
    }

    /// The kernel pass's median epoch over this timed run's: what recording every kernel costs
    /// (the timed run itself never loads the counter).
    pub fn counter_overhead(&self) -> Option<f64> {
        let pass = self.device_steps.as_ref()?.measured()?.epoch_seconds?;
        let timed = self.median_epoch_seconds().filter(|&t| t > 0.0)?;
        Some(pass / timed)
    }

    /// The median epoch over the device floor: how far the run is from what its own kernels allow.
    pub fn times_floor(&self) -> Option<f64> {
        let floor = self.device_floor_seconds().filter(|&f| f > 0.0)?;
        Some(self.median_epoch_seconds()? / floor)
    }

    /// Epochs 2..N, or epoch 1 when it is the only one.
    fn steady_epochs(&self) -> impl Iterator<Item = &EpochRecord> {
        self.epochs.iter().skip(usize::from(self.epochs.len() > 1))
    }

    /// The share of the epoch the host took to queue every step, median over epochs 2..N (epoch 1
    /// alone when there is only one); `None` for reports that did not record it. Near 1, the host
    /// was the bottleneck: the time measures the framework's dispatch, not the device.
    pub fn host_share(&self) -> Option<f64> {
        self.steady_median(|e| {
            e.queued_seconds
                .filter(|_| e.train_seconds > 0.0)
                .map(|q| (q / e.train_seconds).min(1.0))
        })
    }

    /// The median of `value` over epochs 2..N (epoch 1 alone when there is only one); `None`
    /// unless every one of those epochs has it.
    fn steady_median(&self, value: impl Fn(&EpochRecord) -> Option<f64>) -> Option<f64> {
        median(self.steady_epochs().map(value).collect::<Option<_>>()?)
    }

    /// The share of the epoch's training during which a kernel was running on the GPU, median
    /// over epochs 2..N (epoch 1 alone when there is only one); `None` without a reading for each
    /// of those epochs (a CPU run, a report from before it was measured, a machine without NVML).
    pub fn device_busy(&self) -> Option<f64> {
        self.steady_median(|e| e.device_busy)
    }

    /// Whether the device sat idle most of the epoch (busy under [`HOST_BOUND_BUSY`]): the host
    /// was the bottleneck. `None` where the device's activity was not measured.
    pub fn host_bound(&self) -> Option<bool> {
        self.device_busy().map(|b| b < HOST_BOUND_BUSY)
    }

    /// The GPU's energy per training epoch, median over epochs 2..N (epoch 1 alone when there is
    /// only one); `None` without a reading for each of those epochs.
    pub fn joules_per_epoch(&self) -> Option<f64> {
        self.steady_median(|e| e.energy_joules)
    }

    /// [`RunReport::joules_per_epoch`] per 1,000 training images.
    pub fn joules_per_thousand_images(&self) -> Option<f64> {
        let images = self.train_examples as f64;
        (images > 0.0).then(|| self.joules_per_epoch().map(|j| j * 1000.0 / images))?
    }

    /// Training images per second in the median epoch.
    pub fn images_per_second(&self) -> Option<f64> {
        self.median_epoch_seconds()
            .filter(|&s| s > 0.0 && self.train_examples > 0)
            .map(|s| self.train_examples as f64 / s)
    }

    /// Training plus per-epoch evaluation time, all epochs.
    pub fn total_seconds(&self) -> f64 {
        self.epochs
            .iter()
            .map(|e| e.train_seconds + e.eval_seconds)
            .sum()
    }

    /// Training time until the test accuracy after an epoch first reached `threshold`.
    pub fn seconds_to_accuracy(&self, threshold: f64) -> Option<f64> {
        let mut t = 0.0;
        for e in &self.epochs {
            t += e.train_seconds;
            if e.test_accuracy >= threshold {
                return Some(t);
            }
        }
        None
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: not a run report: {e}", path.display())))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("cannot encode the report: {e}")))?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}
