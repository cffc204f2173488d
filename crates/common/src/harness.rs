//! The epoch loop every framework runs under, and the narrow trait a framework implements.
//!
//! The harness owns the clock, the batch order and the records; a [`Trainer`] only runs steps on its
//! device and returns sums. Epoch time runs from a synchronised device at the first step to a
//! device synchronisation after the last, and evaluation is timed apart.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::mnist::Dataset;
use crate::order::epoch_order;
use crate::report::{EpochRecord, EvalRecord};
use crate::spec::ModelKind;
use crate::weights::Weights;

/// The device a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRequest {
    /// CUDA when the framework can use it here, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl std::str::FromStr for DeviceRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            _ => Err(format!("unknown device '{s}': expected auto, cpu or cuda")),
        }
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

/// Where a run's initial weights come from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    /// The weights `common` draws from the seed, the same for every framework (the fair default).
    #[default]
    Shared,
    /// Each framework's own default initialisers (see [`FRAMEWORK_DEFAULTS`]).
    Native,
}

impl std::str::FromStr for InitKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "shared" => Ok(Self::Shared),
            "native" => Ok(Self::Native),
            _ => Err(format!("unknown init '{s}': expected shared or native")),
        }
    }
}

impl std::fmt::Display for InitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Shared => "shared",
            Self::Native => "native",
        })
    }
}

/// What a framework does when nothing is aligned: its default initialisers and optimiser settings.
#[derive(Debug, Clone, Copy)]
pub struct FrameworkDefaults {
    pub framework: &'static str,
    pub conv_weight: &'static str,
    pub conv_bias: &'static str,
    pub linear_weight: &'static str,
    pub linear_bias: &'static str,
    /// The Adam the framework offers, and its epsilon.
    pub adam: &'static str,
    pub weight_decay: &'static str,
    /// Whether the initialisers can be seeded.
    pub seeded: &'static str,
}

/// The defaults of each framework at the pinned versions (fan_in = inputs x kernel area; "uniform
/// ±b" is uniform in [-b, b]). The recipe uses PyTorch's column for everyone.
pub const FRAMEWORK_DEFAULTS: [FrameworkDefaults; 4] = [
    FrameworkDefaults {
        framework: "pytorch",
        conv_weight: "uniform ±1/√fan_in (kaiming_uniform, a=√5)",
        conv_bias: "uniform ±1/√fan_in",
        linear_weight: "uniform ±1/√fan_in (kaiming_uniform, a=√5)",
        linear_bias: "uniform ±1/√fan_in",
        adam: "Adam, eps 1e-8",
        weight_decay: "0",
        seeded: "yes (torch.manual_seed)",
    },
    FrameworkDefaults {
        framework: "tch",
        conv_weight: "uniform ±√6/√fan_in (Kaiming uniform, ReLU gain)",
        conv_bias: "zeros",
        linear_weight: "uniform ±√6/√fan_in (Kaiming uniform, ReLU gain)",
        linear_bias: "uniform ±1/√inputs",
        adam: "nn::Adam, eps 1e-8",
        weight_decay: "0",
        seeded: "yes (tch::manual_seed)",
    },
    FrameworkDefaults {
        framework: "candle",
        conv_weight: "normal, sd √2/√fan_in (Kaiming normal, ReLU gain)",
        conv_bias: "uniform ±1/√in_channels",
        linear_weight: "normal, sd √2/√inputs (Kaiming normal, ReLU gain)",
        linear_bias: "uniform ±1/√inputs",
        adam: "AdamW only, eps 1e-8",
        weight_decay: "0.01 (decoupled)",
        seeded: "no (the CPU generator refuses a seed)",
    },
    FrameworkDefaults {
        framework: "burn",
        conv_weight: "uniform ±1/√fan_in (Kaiming uniform, gain 1/√3)",
        conv_bias: "uniform ±1/√fan_in",
        linear_weight: "uniform ±1/√inputs (Kaiming uniform, gain 1/√3)",
        linear_bias: "uniform ±1/√inputs",
        adam: "Adam, eps 1e-5",
        weight_decay: "none",
        seeded: "yes (Device::seed)",
    },
];

/// The defaults table as Markdown.
pub fn defaults_table() -> String {
    let mut text = String::from(
        "| framework | conv weight | conv bias | linear weight | linear bias | Adam | weight decay | seeded |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for d in FRAMEWORK_DEFAULTS {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            d.framework,
            d.conv_weight,
            d.conv_bias,
            d.linear_weight,
            d.linear_bias,
            d.adam,
            d.weight_decay,
            d.seeded
        ));
    }
    text
}

/// The device a run actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

/// Which split to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    Train,
    Test,
}

/// Everything that defines a run, recorded in its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub framework: String,
    pub model: ModelKind,
    /// MNIST unless said otherwise (reports from before the field existed are MNIST runs).
    #[serde(default)]
    pub dataset: Dataset,
    /// The shared initial weights unless said otherwise.
    #[serde(default)]
    pub init: InitKind,
    pub device: DeviceRequest,
    pub epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Train on the first `limit` training images and test on the first `limit` test images.
    pub limit: Option<usize>,
    /// CPU threads for the framework's kernels; `None` leaves the framework's default.
    pub threads: Option<usize>,
}

/// The recipe's values.
pub const BATCH_SIZE: usize = 32;
pub const LEARNING_RATE: f64 = 1e-3;
pub const EPOCHS: u32 = 10;
pub const EVAL_BATCH_SIZE: usize = 1000;

impl RunSpec {
    /// The recipe for `framework` and `model`, with the defaults of the tutorial.
    pub fn recipe(framework: &str, model: ModelKind) -> Self {
        Self {
            framework: framework.to_string(),
            model,
            dataset: Dataset::Mnist,
            init: InitKind::Shared,
            device: DeviceRequest::Auto,
            epochs: EPOCHS,
            batch_size: BATCH_SIZE,
            learning_rate: LEARNING_RATE,
            seed: 0,
            limit: None,
            threads: None,
        }
    }

    /// Rejects values that cannot make a meaningful run.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 || self.epochs > 10_000 {
            return Err(format!("epochs must be 1 to 10000, not {}", self.epochs));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return Err(format!(
                "batch size must be 1 to 65536, not {}",
                self.batch_size
            ));
        }
        if self.limit == Some(0) {
            return Err("image limit must be at least 1".into());
        }
        if self.threads == Some(0) || self.threads.is_some_and(|t| t > 4096) {
            return Err("threads must be 1 to 4096".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!(
                "learning rate must be positive, not {}",
                self.learning_rate
            ));
        }
        Ok(())
    }
}

/// Sums over one pass, read from the device once at its end.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    /// Sum of per-example cross-entropy losses.
    pub loss_sum: f64,
    /// Examples whose arg-max logit is the label.
    pub correct: u64,
    pub examples: u64,
    /// In training, the first step (1-based) whose loss was NaN or infinite, and that loss. Trainers
    /// keep each step's loss on the device and read them back only when the epoch's sum is not
    /// finite, so finding it costs no synchronisation in the step loop.
    pub first_nonfinite: Option<(usize, f32)>,
}

/// The first loss (1-based step, value) that is NaN or infinite.
pub fn first_nonfinite(losses: &[f32]) -> Option<(usize, f32)> {
    losses
        .iter()
        .position(|l| !l.is_finite())
        .map(|i| (i + 1, losses[i]))
}

impl Totals {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.examples.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.examples.max(1) as f64
    }
}

/// What a framework says about itself and the device it really runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub framework: String,
    pub framework_version: String,
    pub device: DeviceKind,
    /// For example "cpu" or "cuda:0".
    pub device_name: String,
    /// Threads the framework's CPU kernels use.
    pub threads: usize,
    /// Cargo features and build options that change what runs.
    pub features: Vec<String>,
    /// Anything else a reader of the numbers should know (library versions, settings).
    pub notes: Vec<String>,
}

/// A framework's side of a run. Implementations keep the data and the model on their device, gather
/// each batch there by index, and read nothing back inside the step loop.
pub trait Trainer {
    /// One pass over `order` in batches of the run's batch size (the last one may be smaller),
    /// calling `progress(steps_done)` after each step is queued.
    fn train_epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError>;

    /// Loss and accuracy over a whole split, without updating anything.
    fn evaluate(&mut self, split: SplitKind) -> Result<Totals, TrainError>;

    /// The current parameters in PyTorch's names and layouts.
    fn weights(&self) -> Result<Weights, TrainError>;

    /// Waits until all queued work on the device has finished.
    fn synchronize(&self) -> Result<(), TrainError>;

    fn backend(&self) -> BackendInfo;

    /// The most device memory this trainer's framework has had allocated at once, where the
    /// framework can tell (none of the CPU backends can).
    fn peak_device_bytes(&self) -> Option<u64> {
        None
    }
}

/// Hooks for progress display; all optional.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: u32, _steps: usize) {}
    fn step(&mut self, _steps_done: usize) {}
    fn epoch_finished(&mut self, _record: &EpochRecord) {}
    fn evaluating(&mut self, _what: &str) {}
}

/// An observer that shows nothing.
pub struct Silent;

impl Observer for Silent {}

/// What the loop produced; `failure` says why it stopped early, if it did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub epochs: Vec<EpochRecord>,
    pub final_train: Option<EvalRecord>,
    pub final_test: Option<EvalRecord>,
    pub failure: Option<String>,
}

fn timed_eval(trainer: &mut dyn Trainer, split: SplitKind) -> Result<EvalRecord, TrainError> {
    trainer.synchronize()?;
    let start = Instant::now();
    let totals = trainer.evaluate(split)?;
    trainer.synchronize()?;
    Ok(EvalRecord::new(&totals, start.elapsed().as_secs_f64()))
}

/// Runs `spec.epochs` epochs over `train_len` examples, then evaluates on both splits.
pub fn train(
    trainer: &mut dyn Trainer,
    spec: &RunSpec,
    train_len: usize,
    observer: &mut dyn Observer,
) -> Outcome {
    let mut outcome = Outcome::default();
    if let Err(e) = train_into(trainer, spec, train_len, observer, &mut outcome) {
        outcome.failure = Some(e.to_string());
    }
    outcome
}

fn train_into(
    trainer: &mut dyn Trainer,
    spec: &RunSpec,
    train_len: usize,
    observer: &mut dyn Observer,
    outcome: &mut Outcome,
) -> Result<(), TrainError> {
    let steps = train_len.div_ceil(spec.batch_size);
    for epoch in 1..=spec.epochs {
        let order = epoch_order(spec.seed, epoch, train_len);
        observer.epoch_started(epoch, steps);
        trainer.synchronize()?;
        let start = Instant::now();
        let totals = trainer.train_epoch(&order, &mut |done| observer.step(done))?;
        trainer.synchronize()?;
        let train_seconds = start.elapsed().as_secs_f64();
        if !totals.loss_sum.is_finite() {
            let at = match totals.first_nonfinite {
                Some((step, loss)) => format!(", first at step {step} of {steps} (loss {loss})"),
                None => String::new(),
            };
            return Err(TrainError::NonFinite(format!(
                "the training loss became NaN or infinite in epoch {epoch}{at}; the run stopped at the end of that epoch"
            )));
        }
        observer.evaluating("test");
        let test = timed_eval(trainer, SplitKind::Test)?;
        let record = EpochRecord {
            epoch,
            train_loss: totals.mean_loss(),
            train_accuracy: totals.accuracy(),
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            train_seconds,
            eval_seconds: test.seconds,
        };
        observer.epoch_finished(&record);
        outcome.epochs.push(record);
        if epoch == spec.epochs {
            outcome.final_test = Some(test);
        }
    }
    observer.evaluating("train");
    outcome.final_train = Some(timed_eval(trainer, SplitKind::Train)?);
    Ok(())
}
