//! A run's settings ([`RunSpec`], [`Profile`], [`Tuning`]) and the narrow trait a framework
//! implements ([`Trainer`]), which runs steps on its device and returns sums ([`Totals`]); the
//! epoch loop that drives it, with the clock, the batch order and the records, is the `epochs`
//! crate's.

use serde::{Deserialize, Serialize};

use crate::error::{Error, TrainError, UnknownValue};
use crate::mnist::{Dataset, SplitKind};
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
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            _ => Err(UnknownValue::new("device", s, "auto, cpu or cuda")),
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
    /// Each framework's own default initialisers (see `Description::defaults`).
    Native,
}

impl std::str::FromStr for InitKind {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "shared" => Ok(Self::Shared),
            "native" => Ok(Self::Native),
            _ => Err(UnknownValue::new("init", s, "shared or native")),
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

/// How a framework is configured: as its users write it, or at its fastest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The obvious code with the framework's defaults: the tables' rows.
    #[default]
    Idiomatic,
    /// The fastest configuration the framework's public API allows, with the same math; each
    /// setting is recorded in the report ([`Tuning`]), applied or not.
    Tuned,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Idiomatic, Profile::Tuned];

    pub fn is_idiomatic(&self) -> bool {
        *self == Profile::Idiomatic
    }
}

impl std::str::FromStr for Profile {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "idiomatic" => Ok(Self::Idiomatic),
            "tuned" => Ok(Self::Tuned),
            _ => Err(UnknownValue::new("profile", s, "idiomatic or tuned")),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Idiomatic => "idiomatic",
            Self::Tuned => "tuned",
        })
    }
}

/// One setting of the tuned profile, as a trainer applied it or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// What is set, for example "fused Adam" or "glibc malloc mmap threshold".
    pub setting: String,
    /// Its value, for example "on" or "64 MiB".
    pub value: String,
    /// Whether it is in effect in this run; when not, `note` says why (the run went on without it).
    pub applied: bool,
    /// What it changes, or why it could not be applied here.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Tuning {
    /// A setting in effect.
    pub fn applied(setting: &str, value: &str, note: &str) -> Self {
        Self {
            setting: setting.into(),
            value: value.into(),
            applied: true,
            note: note.into(),
        }
    }

    /// A setting this run had to go without, and why.
    pub fn fell_back(setting: &str, value: &str, why: &str) -> Self {
        Self {
            setting: setting.into(),
            value: value.into(),
            applied: false,
            note: why.into(),
        }
    }
}

impl std::fmt::Display for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.applied { "applied" } else { "fell back" };
        write!(f, "{}: {} ({state}", self.setting, self.value)?;
        if !self.note.is_empty() {
            write!(f, ": {}", self.note)?;
        }
        f.write_str(")")
    }
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
    /// Idiomatic unless said otherwise (reports from before the field existed are idiomatic runs).
    #[serde(default)]
    pub profile: Profile,
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
            profile: Profile::Idiomatic,
        }
    }

    /// Rejects values that cannot make a meaningful run.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |m: String| Err(Error::Invalid(m));
        if self.epochs == 0 || self.epochs > 10_000 {
            return invalid(format!("epochs must be 1 to 10000, not {}", self.epochs));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return invalid(format!(
                "batch size must be 1 to 65536, not {}",
                self.batch_size
            ));
        }
        if self.limit == Some(0) {
            return invalid("image limit must be at least 1".into());
        }
        if self.threads == Some(0) || self.threads.is_some_and(|t| t > 4096) {
            return invalid("threads must be 1 to 4096".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid(format!(
                "learning rate must be positive, not {}",
                self.learning_rate
            ));
        }
        Ok(())
    }

    /// The options of `lenet train` (and of the Python reference, which takes the same ones) that
    /// make this run, every field included: the one way a run's settings become a child's command
    /// line. Paths (data, outputs) are the caller's to add.
    pub fn to_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            ("--framework", self.framework.clone()),
            ("--model", self.model.to_string()),
            ("--dataset", self.dataset.to_string()),
            ("--init", self.init.to_string()),
            ("--device", self.device.to_string()),
            ("--epochs", self.epochs.to_string()),
            ("--batch-size", self.batch_size.to_string()),
            // Rust's shortest round-trip form: the value parses back to the same f64.
            ("--learning-rate", format!("{:?}", self.learning_rate)),
            ("--seed", self.seed.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect();
        if let Some(n) = self.limit {
            args.extend(["--limit".to_string(), n.to_string()]);
        }
        if let Some(t) = self.threads {
            args.extend(["--threads".to_string(), t.to_string()]);
        }
        if !self.profile.is_idiomatic() {
            args.extend(["--profile".to_string(), self.profile.to_string()]);
        }
        args
    }
}

/// The first loss (1-based step, value) that is NaN or infinite.
pub fn first_nonfinite(losses: &[f32]) -> Option<(usize, f32)> {
    losses
        .iter()
        .position(|l| !l.is_finite())
        .map(|i| (i + 1, losses[i]))
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
    /// The tuned profile's settings, each applied or fallen back; empty for an idiomatic run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuning: Vec<Tuning>,
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

impl Totals {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.examples.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.examples.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profile is part of a run's settings: parsed, printed, passed to a child only when it is
    /// not the default, and absent from older reports, which were idiomatic runs.
    #[test]
    fn the_profile_is_recorded_and_passed_on() {
        assert_eq!("Tuned".parse::<Profile>().unwrap(), Profile::Tuned);
        let e = "fast".parse::<Profile>().unwrap_err().to_string();
        assert!(e.contains("idiomatic or tuned"), "{e}");
        let recipe = RunSpec::recipe("tch", crate::spec::ModelKind::LeNet2);
        assert!(!recipe.to_args().contains(&"--profile".to_string()));
        let tuned = RunSpec {
            profile: Profile::Tuned,
            ..recipe.clone()
        };
        let args = tuned.to_args();
        assert!(args.ends_with(&["--profile".to_string(), "tuned".to_string()]));
        let mut json = serde_json::to_value(&recipe).unwrap();
        json.as_object_mut().unwrap().remove("profile");
        let old: RunSpec = serde_json::from_value(json).unwrap();
        assert_eq!(old.profile, Profile::Idiomatic);
        let t = Tuning::fell_back("cudnn.benchmark", "true", "the run is on the CPU");
        assert_eq!(
            t.to_string(),
            "cudnn.benchmark: true (fell back: the run is on the CPU)"
        );
        assert_eq!(
            Tuning::applied("fused Adam", "on", "").to_string(),
            "fused Adam: on (applied)"
        );
    }
}
