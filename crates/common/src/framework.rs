//! What a framework crate tells the registry about itself. Each framework crate implements
//! [`Framework`] once (candle twice, one value per pooling) and the `lenet` binary keeps one slice of
//! them; what runs is the trait's methods (a trainer, logits, weights, the bare loop, whether CUDA
//! is there), and every other question about a framework (which colour is its line, which build
//! carries its CUDA code, what does it do by default, how is it held to parity) is a field of its
//! [`Description`], not a `match` on its name elsewhere. [`FrameworkInfo`] is the same, as plain data: what `lenet frameworks --json`
//! prints, so that tools that only run the binary (xtask, the GPU bundle) keep no list of their own.

use serde::{Deserialize, Serialize};

use crate::bare::BareLoop;
use crate::error::TrainError;
use crate::harness::{DeviceRequest, RunSpec, Trainer};
use crate::mnist::Mnist;
use crate::serve::Predictor;
use crate::spec::ModelKind;
use crate::weights::Weights;

/// One framework (or one configuration of a framework) that the `lenet` binary can train with:
/// what runs. What it is (its name, colours, defaults, listing, parity and CUDA build) is plain data,
/// its [`Description`].
pub trait Framework: Sync {
    /// What the framework is, as data.
    fn description(&self) -> &Description;

    /// The name users pass to `--framework`, reports record and tables show.
    fn name(&self) -> &'static str {
        self.description().name
    }

    /// A trainer for `spec` (its device, batch size, learning rate, threads) over `data`, starting
    /// from `init`. Asking for CUDA where this framework cannot use it is an error that says so.
    fn trainer(
        &self,
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
    ) -> Result<Box<dyn Trainer>, TrainError>;

    /// The weights this framework's own layers draw with their default initialisers, seeded with
    /// `seed` where the framework allows it (see [`Description::defaults`]).
    fn native_weights(&self, model: ModelKind, seed: u64) -> Result<Weights, TrainError>;

    /// A model ready to predict on `device` from `weights`, as the framework's users serve one
    /// (inference mode, no gradients): what `lenet serve` measures. `threads` sizes the
    /// framework's own CPU pool where it has one of its own (rayon's comes from
    /// `RAYON_NUM_THREADS`). Asking for CUDA where it cannot be used is an error that says so.
    fn predictor(
        &self,
        model: ModelKind,
        weights: &Weights,
        device: DeviceRequest,
        threads: Option<usize>,
    ) -> Result<Box<dyn Predictor>, TrainError>;

    /// Logits `[n, 10]` of the forward pass on the CPU, for checks.
    fn logits(
        &self,
        model: ModelKind,
        weights: &Weights,
        images: &[f32],
    ) -> Result<Vec<f32>, TrainError> {
        self.predictor(model, weights, DeviceRequest::Cpu, None)?
            .logits(images)
    }

    /// Whether this build of the framework can use a CUDA device on this machine.
    fn cuda_available(&self) -> bool;

    /// The bare training loop on the CPU for measurements (`examples/breakdown.rs`,
    /// `benches/harness.rs`), from the shared weights of seed 0 with the recipe's Adam.
    fn bare(&self, model: ModelKind, data: &Mnist) -> Result<Box<dyn BareLoop>, TrainError>;
}

/// What a framework is, as a plain value: everything the tables, the docs, the tests and the tools
/// ask about it that needs no code of its own to answer. What building it needs beyond cargo
/// (libtorch, LLVM, the CUDA toolkit) is in its crate's manifest, `[package.metadata.lenet]`,
/// where the tools read it before anything is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Description {
    /// The name users pass to `--framework`, reports record and tables show.
    pub name: &'static str,
    /// The colour of its lines in the charts.
    pub colour: Colour,
    /// What the framework does when nothing is aligned, a row of `lenet defaults`, in
    /// [`FrameworkDefaults`]'s order: framework, conv weight, conv bias, linear weight, linear
    /// bias, Adam, weight decay, seeded.
    pub defaults: [&'static str; 8],
    /// The source file that defines LeNet2 and LeNet3 as this framework's users write them,
    /// relative to the repository; docs/models.md shows its marked regions side by side with the
    /// other frameworks' (`results::listings`).
    pub model_source: &'static str,
    /// Whether `cargo xtask compare` runs it when `--frameworks` is not given.
    pub compared_by_default: bool,
    /// How it is held to the parity reference.
    pub parity: Parity,
    /// How its CUDA code gets into a binary.
    pub cuda: CudaCode,
}

/// How a framework is held to the others' arithmetic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parity {
    /// The framework every other row's logits and steps are held to (libtorch through tch, the
    /// library PyTorch itself runs).
    Reference,
    /// Only its logits are held to the reference's (see docs/frameworks.md for why).
    Logits,
    /// Its logits, and its loss after each of [`PARITY_STEPS`] Adam steps of batch 32 from the
    /// same weights, within `within` of the reference's (relative to the loss, absolute below 1);
    /// `later`: a wider tolerance for one model from a step on.
    Steps { within: f64, later: Option<Later> },
}

/// A wider step tolerance for `model` after step `after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Later {
    pub model: ModelKind,
    pub after: usize,
    pub within: f64,
}

impl Parity {
    /// The tolerance of its loss after `step` (1-based) Adam steps; `None` where only its logits
    /// are held to parity, and for the reference itself.
    pub fn step_tolerance(&self, model: ModelKind, step: usize) -> Option<f64> {
        match *self {
            Parity::Reference | Parity::Logits => None,
            Parity::Steps {
                later: Some(later), ..
            } if later.model == model && step > later.after => Some(later.within),
            Parity::Steps { within, .. } => Some(within),
        }
    }

    /// The widest step tolerance over both models and the steps a check compares.
    pub fn widest(&self) -> Option<f64> {
        crate::spec::ModelKind::ALL
            .into_iter()
            .flat_map(|m| (1..=PARITY_STEPS).map(move |s| self.step_tolerance(m, s)))
            .collect::<Option<Vec<f64>>>()
            .and_then(|t| t.into_iter().reduce(f64::max))
    }
}

/// How a framework's CUDA code gets into a `lenet` binary, as a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaCode {
    /// Cargo features (`package/feature`) that compile its CUDA code; none when a library it links
    /// brings CUDA (libtorch).
    pub features: &'static [&'static str],
    /// Whether it needs a `lenet` binary of its own, apart from the main CUDA build (a backend
    /// that loads the CUDA libraries at run time cannot share a binary with one that links them;
    /// cudarc allows one way per binary).
    pub own_binary: bool,
}

impl CudaCode {
    /// No CUDA code of its own to compile.
    pub const LIBRARY: CudaCode = CudaCode {
        features: &[],
        own_binary: false,
    };
}

/// An RGB colour.
pub type Colour = [u8; 3];

/// How a framework's CUDA code is built into a `lenet` binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaBuild {
    /// Cargo features (`package/feature`) that compile its CUDA code; none when a library it links
    /// brings CUDA (tch, through libtorch).
    pub features: Vec<String>,
    /// Whether it needs a `lenet` binary of its own, apart from the main CUDA build (burn's CUDA
    /// backend loads the CUDA libraries at run time and candle's links them; cudarc allows one way
    /// per binary).
    pub own_binary: bool,
}

impl From<CudaCode> for CudaBuild {
    fn from(code: CudaCode) -> Self {
        Self {
            features: code.features.iter().map(|f| f.to_string()).collect(),
            own_binary: code.own_binary,
        }
    }
}

/// What a framework does when nothing is aligned: its default initialisers and optimiser settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameworkDefaults {
    /// The framework the row describes (configurations of one framework share its row).
    pub framework: String,
    pub conv_weight: String,
    pub conv_bias: String,
    pub linear_weight: String,
    pub linear_bias: String,
    /// The Adam the framework offers, and its epsilon.
    pub adam: String,
    pub weight_decay: String,
    /// Whether the initialisers can be seeded.
    pub seeded: String,
}

impl FrameworkDefaults {
    /// A row from its cells, in the table's order.
    pub fn row(cells: [&str; 8]) -> Self {
        let [framework, conv_weight, conv_bias, linear_weight, linear_bias, adam, weight_decay, seeded] =
            cells.map(str::to_string);
        Self {
            framework,
            conv_weight,
            conv_bias,
            linear_weight,
            linear_bias,
            adam,
            weight_decay,
            seeded,
        }
    }

    pub fn cells(&self) -> [&str; 8] {
        [
            &self.framework,
            &self.conv_weight,
            &self.conv_bias,
            &self.linear_weight,
            &self.linear_bias,
            &self.adam,
            &self.weight_decay,
            &self.seeded,
        ]
    }
}

/// Where a framework's runs happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// In a `lenet train` process.
    Lenet,
    /// In a Python script that reads the run's plan file (`lenet plan`): a reference, not a Rust
    /// framework.
    Python,
}

/// A framework as plain data: what `lenet frameworks --json` prints, one object per framework.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    pub name: String,
    pub runner: Runner,
    /// For a Python reference: its script, relative to the repository (or the bundle).
    #[serde(default)]
    pub script: Option<String>,
    /// The row every other row's time is divided by ("vs PyTorch").
    #[serde(default)]
    pub baseline: bool,
    pub compared_by_default: bool,
    /// Whether this build can use CUDA here (for a Python reference: not known to the binary).
    pub cuda_available: bool,
    /// How its CUDA code is built; `None` for a Python reference.
    #[serde(default)]
    pub cuda_build: Option<CudaBuild>,
    pub colour: Colour,
    pub defaults: FrameworkDefaults,
    /// The source file that defines its models, relative to the repository, with the regions the
    /// page docs/models.md shows marked `listing: lenet2` ... `end listing` (see `results::listings`).
    #[serde(default)]
    pub model_source: Option<String>,
    /// How far its losses over 20 Adam steps of batch 32 may be from the parity reference's (tch's),
    /// relative to the loss, the widest over both models and the steps (the tests' own tolerance);
    /// `None` where only its logits are held to parity, and for the reference itself.
    #[serde(default)]
    pub step_tolerance: Option<f64>,
    /// Whether it is the parity reference ([`Parity::Reference`]), which every other row is held to.
    #[serde(default)]
    pub parity_reference: bool,
}

/// The steps a parity check compares (see [`Parity::step_tolerance`]).
pub const PARITY_STEPS: usize = 20;

impl FrameworkInfo {
    /// The description of a framework in this build.
    pub fn of(f: &dyn Framework) -> Self {
        let d = f.description();
        Self {
            name: d.name.to_string(),
            runner: Runner::Lenet,
            script: None,
            baseline: false,
            compared_by_default: d.compared_by_default,
            cuda_available: f.cuda_available(),
            cuda_build: Some(d.cuda.into()),
            colour: d.colour,
            defaults: FrameworkDefaults::row(d.defaults),
            model_source: Some(d.model_source.to_string()),
            step_tolerance: d.parity.widest(),
            parity_reference: d.parity == Parity::Reference,
        }
    }
}
