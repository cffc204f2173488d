//! The `lenet` command's logic: the registry of the frameworks this build holds ([`FRAMEWORKS`],
//! and the out-of-process references beside them, [`references`]), and one training run from
//! arguments to report. A run never lets a framework type out of its framework crate; this crate only
//! sees `&dyn Framework` and `Box<dyn Trainer>`, so adding a framework is one line in
//! [`FRAMEWORKS`] (ARCHITECTURE.md lists the other two).

#[cfg(not(any(feature = "tch", feature = "candle", feature = "burn")))]
compile_error!(
    "lenet needs at least one framework: build with one or more of the features tch, candle, burn \
     (the default builds all three)"
);

#[cfg(all(feature = "cuda", feature = "burn-cuda"))]
compile_error!(
    "the features `cuda` (candle's CUDA) and `burn-cuda` cannot be combined: candle links the CUDA \
     libraries and burn's CUDA backend loads them at run time, and cudarc allows one way per build; \
     build two binaries (cargo xtask bundle --cuda does)"
);

pub mod cli;
pub mod serve;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use common::error::failure_text;
use common::framework::{Framework, FrameworkDefaults, FrameworkInfo, Runner};
use common::harness::{InitKind, RunSpec, Trainer};
use common::weights::ModelFile;
use common::{DeviceKind, DeviceRequest, Mnist, ModelKind, SplitKind, Totals, TrainError, Weights};
use epochs::{EpochRecord, Observer};
use meters::{KernelCounter, Meters};
use reports::catalogue::NotBuilt;
use reports::{Catalogue, Environment, RunReport, SCHEMA};

/// The frameworks compiled into this binary, in the order tables list them.
pub static FRAMEWORKS: &[&dyn Framework] = &[
    #[cfg(feature = "tch")]
    &tch_impl::TCH,
    #[cfg(feature = "candle")]
    &candle_impl::CANDLE,
    #[cfg(feature = "candle")]
    &candle_impl::CANDLE_FIRSTMAX,
    #[cfg(feature = "burn")]
    &burn_impl::BURN,
];

/// Every framework the project has, with the cargo feature that builds it in: those of
/// [`FRAMEWORKS`] and those this build left out ([`not_built`]).
pub const FEATURES: &[(&str, &str)] = &[
    ("tch", "tch"),
    ("candle", "candle"),
    ("candle-firstmax", "candle"),
    ("burn", "burn"),
];

/// The frameworks of [`FEATURES`] that this build left out, with their features.
pub fn not_built() -> Vec<NotBuilt> {
    FEATURES
        .iter()
        .filter(|(name, _)| FRAMEWORKS.iter().all(|f| f.name() != *name))
        .map(|(name, feature)| NotBuilt {
            name: name.to_string(),
            feature: feature.to_string(),
        })
        .collect()
}

/// The Python rows, run out of process from a run's plan file: PyTorch, the baseline of every
/// table, and Keras (the tutorial's other half, on JAX unless `KERAS_BACKEND` says otherwise).
pub fn references() -> Vec<FrameworkInfo> {
    vec![pytorch(), keras()]
}

fn pytorch() -> FrameworkInfo {
    FrameworkInfo {
        name: "pytorch".into(),
        runner: Runner::Python,
        script: Some("python/reference.py".into()),
        baseline: true,
        compared_by_default: true,
        cuda_available: false,
        cuda_build: None,
        colour: [214, 39, 40],
        defaults: FrameworkDefaults::row([
            "pytorch",
            "uniform ±1/√fan_in (kaiming_uniform, a=√5)",
            "uniform ±1/√fan_in",
            "uniform ±1/√fan_in (kaiming_uniform, a=√5)",
            "uniform ±1/√fan_in",
            "Adam, eps 1e-8",
            "0",
            "yes (torch.manual_seed)",
        ]),
        model_source: Some("python/reference.py".into()),
        // The same libtorch as tch, but PyTorch's Python Adam (its `foreach` implementation)
        // against libtorch's C++ one, which round differently: measured 1.1e-7 over 20 steps of
        // either model from the weights of seed 0 (tests/reference.rs); 1e-5 leaves room for
        // another machine's thread count.
        step_tolerance: Some(1e-5),
        parity_reference: false,
    }
}

fn keras() -> FrameworkInfo {
    FrameworkInfo {
        name: "keras".into(),
        runner: Runner::Python,
        script: Some("python/keras_reference.py".into()),
        baseline: false,
        compared_by_default: true,
        cuda_available: false,
        cuda_build: None,
        colour: [148, 103, 189],
        defaults: FrameworkDefaults::row([
            "keras",
            "uniform ±√6/√(fan_in+fan_out) (glorot_uniform)",
            "zeros",
            "uniform ±√6/√(fan_in+fan_out) (glorot_uniform)",
            "zeros",
            "Adam, eps 1e-7 (added to √v before the bias correction)",
            "0",
            "yes (keras.utils.set_random_seed)",
        ]),
        model_source: Some("python/keras_models.py".into()),
        // Keras's Adam adds epsilon to √v before the bias correction (PyTorch after it), an
        // effective epsilon of 3.2e-7 at the first step, and Adam amplifies the difference for the
        // weights whose gradients are near zero: measured up to 2.1e-3 (LeNet2) and 5.5e-3 (LeNet3)
        // in 20 steps from the weights of seed 0; `tests/keras_adam.py` shows that this placement
        // of epsilon is the whole gap (tests/keras.rs).
        step_tolerance: Some(1e-2),
        parity_reference: false,
    }
}

/// Every framework this binary knows, the references first: what `lenet frameworks --json` prints.
pub fn catalogue() -> Catalogue {
    let mut all = references();
    all.extend(FRAMEWORKS.iter().map(|f| FrameworkInfo::of(*f)));
    Catalogue::new(all).with_not_built(not_built())
}

/// The framework of that name in this build.
pub fn framework(name: &str) -> Result<&'static dyn Framework, TrainError> {
    FRAMEWORKS
        .iter()
        .copied()
        .find(|f| f.name() == name)
        .ok_or_else(|| match not_built().into_iter().find(|n| n.name == name) {
            Some(n) => TrainError::NotBuilt {
                name: n.name,
                feature: n.feature,
            },
            None => TrainError::UnknownFramework {
                name: name.to_string(),
                known: FRAMEWORKS
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        })
}

/// The framework `lenet train` uses when none is named: tch, or the first this build holds.
pub fn default_framework() -> &'static str {
    FRAMEWORKS.first().map_or("tch", |f| f.name())
}

/// Options of one run besides the spec.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub data_dir: Option<PathBuf>,
    /// Show progress bars and per-epoch lines on stderr.
    pub progress: bool,
    /// Return the trained weights (to save them).
    pub keep_weights: bool,
    /// A kernel pass: the kernel counter's library, loaded before the framework's first CUDA call.
    pub kernels: Option<PathBuf>,
}

/// A finished (or failed) run: its report, and the trained weights when they were asked for and
/// the run succeeded.
pub struct RunOutput {
    pub report: RunReport,
    pub weights: Option<Weights>,
}

/// Progress on stderr: a bar per epoch and one line when it ends.
struct Bars {
    epochs: u32,
    bar: Option<indicatif::ProgressBar>,
    label: String,
}

impl Observer for Bars {
    fn epoch_started(&mut self, epoch: u32, steps: usize) {
        let bar = indicatif::ProgressBar::new(steps as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{} epoch {epoch}/{}", self.label, self.epochs));
        self.bar = Some(bar);
    }

    fn step(&mut self, done: usize) {
        if done % 16 == 0 {
            if let Some(bar) = &self.bar {
                bar.set_position(done as u64);
            }
        }
    }

    fn evaluating(&mut self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("evaluating on {what}"));
        }
    }

    fn epoch_finished(&mut self, r: &mut EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "{} epoch {}/{}: loss {:.4}, train acc {:.2}%, test loss {:.4}, test acc {:.2}%, {:.2} s (+{:.2} s eval)",
            self.label,
            r.epoch,
            self.epochs,
            r.train_loss,
            r.train_accuracy * 100.0,
            r.test_loss,
            r.test_accuracy * 100.0,
            r.train_seconds,
            r.eval_seconds
        );
    }
}

/// Loads the data, trains, and returns the report (a failed one if the framework failed, or could
/// not start). Errors in the user's input (bad data, bad options) are returned as errors instead.
///
/// A run is four steps: [`prepare`] (the spec checked, the data and the initial weights),
/// [`start`] (the kernel counter where asked, the trainer, the meters), [`train`] (the epoch loop,
/// observed by the meters and the display) and [`finish`] (the meters' last word, the weights, the
/// report). A step that ends the run early leaves a failed report, never a missing one.
pub fn run(spec: &RunSpec, options: &RunOptions) -> Result<RunOutput> {
    let prepared = match prepare(spec, options)? {
        Ok(prepared) => prepared,
        Err(report) => return Ok(RunOutput::failed(report)),
    };
    let started = match start(spec, options, prepared) {
        Ok(started) => started,
        Err(report) => return Ok(RunOutput::failed(report)),
    };
    let trained = train(spec, options, started);
    Ok(finish(spec, options, trained))
}

impl RunOutput {
    fn failed(report: Box<RunReport>) -> Self {
        Self {
            report: *report,
            weights: None,
        }
    }
}

/// What a run has before its framework starts.
struct Prepared {
    framework: &'static dyn Framework,
    environment: Environment,
    data: Mnist,
    init: Weights,
}

/// Checks the spec and loads the data (a user's mistake is an error), and draws the initial
/// weights (a framework that cannot draw its own leaves a failed report).
fn prepare(spec: &RunSpec, options: &RunOptions) -> Result<Result<Prepared, Box<RunReport>>> {
    spec.validate()?;
    if let Some(script) = references()
        .into_iter()
        .find(|r| r.name == spec.framework)
        .and_then(|r| r.script)
    {
        bail!(
            "{} runs in Python ({script}), from a plan file: `cargo xtask compare --frameworks {}` runs it",
            spec.framework,
            spec.framework
        );
    }
    let framework = framework(&spec.framework)?;
    let environment = Environment::capture();
    let mut data = datasets::load(spec.dataset, options.data_dir.as_deref())
        .with_context(|| format!("cannot load {}", spec.dataset.title()))?;
    if let Some(n) = spec.limit {
        data.check_limit(n, SplitKind::Train)?;
        data.limit(n);
    }
    let init = match spec.init {
        InitKind::Shared => Weights::init(&spec.model.spec(), spec.seed),
        InitKind::Native => match framework.native_weights(spec.model, spec.seed) {
            Ok(w) => w,
            Err(e) => return Ok(Err(failed(spec, environment, e.to_string()))),
        },
    };
    Ok(Ok(Prepared {
        framework,
        environment,
        data,
        init,
    }))
}

fn failed(spec: &RunSpec, environment: Environment, failure: String) -> Box<RunReport> {
    Box::new(RunReport::failed(spec.clone(), environment, failure))
}

/// A run whose trainer is built, with its meters.
struct Started {
    prepared: Prepared,
    trainer: Box<dyn Trainer>,
    setup_seconds: f64,
    meters: Meters,
}

/// Loads a kernel pass's counter (before the framework's first CUDA call), builds the trainer
/// (a framework that cannot start, CUDA asked for where there is none say, leaves a failed report,
/// so that a comparison shows why the row is missing) and the meters for its device.
fn start(
    spec: &RunSpec,
    options: &RunOptions,
    prepared: Prepared,
) -> Result<Started, Box<RunReport>> {
    let on_device = spec.device != DeviceRequest::Cpu;
    let counter = options
        .kernels
        .as_deref()
        .map(|library| KernelCounter::start(library, on_device));
    let setup = Instant::now();
    let built = guarded(|| {
        prepared
            .framework
            .trainer(spec, &prepared.data, &prepared.init)
    });
    let trainer = match built {
        Ok(t) => t,
        Err(e) => {
            let failure = failure_text(e.to_string(), on_device);
            return Err(failed(spec, prepared.environment, failure));
        }
    };
    let setup_seconds = setup.elapsed().as_secs_f64();
    if !spec.profile.is_idiomatic() {
        // Never silently: what the tuned profile changed, and what it could not, here.
        for t in trainer.backend().tuning {
            eprintln!("{} {} tuned: {t}", spec.framework, spec.model);
        }
    }
    let meters = Meters::for_run(trainer.backend().device, counter);
    Ok(Started {
        prepared,
        trainer,
        setup_seconds,
        meters,
    })
}

/// A run that has trained (or failed while training).
struct Trained {
    started: Started,
    outcome: epochs::Outcome,
}

/// The epoch loop, observed by the meters and then the display. A framework that panics (an
/// assertion deep in its kernels, say) ends this run, not the process: the report says what
/// happened.
fn train(spec: &RunSpec, options: &RunOptions, mut started: Started) -> Trained {
    let mut bars = Bars {
        epochs: spec.epochs,
        bar: None,
        label: format!("{} {}", spec.framework, spec.model),
    };
    let mut silent = epochs::Silent;
    let display: &mut dyn Observer = if options.progress {
        &mut bars
    } else {
        &mut silent
    };
    let mut observer = Chain(&mut started.meters, display);
    let train_len = started.prepared.data.train.len();
    let trainer = started.trainer.as_mut();
    let outcome = guarded(|| Ok(epochs::train(trainer, spec, train_len, &mut observer)))
        .unwrap_or_else(|e| epochs::Outcome {
            failure: Some(e.to_string()),
            ..Default::default()
        });
    Trained { started, outcome }
}

/// The meters' last word into the epochs, the trained weights where they were asked for, and the
/// report.
fn finish(spec: &RunSpec, options: &RunOptions, trained: Trained) -> RunOutput {
    let Trained {
        started,
        mut outcome,
    } = trained;
    let measures = started.meters.finish(&mut outcome.epochs);
    let trainer = started.trainer;
    let mut failure = outcome.failure;
    let weights = match (options.keep_weights, &failure) {
        (true, None) => trainer
            .weights()
            .map_err(|e| failure = Some(format!("cannot read the trained weights back: {e}")))
            .ok(),
        _ => None,
    };
    let backend = trainer.backend();
    let failure = failure.map(|f| failure_text(f, backend.device == DeviceKind::Cuda));
    let data = &started.prepared.data;
    let report = RunReport {
        schema: SCHEMA,
        spec: spec.clone(),
        backend: Some(backend),
        environment: started.prepared.environment,
        parameters: spec.model.spec().num_params(),
        train_examples: data.train.len(),
        test_examples: data.test.len(),
        setup_seconds: started.setup_seconds,
        epochs: outcome.epochs,
        final_train: outcome.final_train,
        final_test: outcome.final_test,
        peak_host_bytes: measures.peak_host_bytes,
        peak_device_bytes: trainer.peak_device_bytes(),
        gpu_process_bytes: measures.gpu_process_bytes,
        failure,
        kernel_pass: measures.kernel_pass,
        device_steps: None,
    };
    RunOutput { report, weights }
}

/// Two observers, one after the other: the meters write their fields into a record before the
/// display shows it.
struct Chain<'a>(&'a mut dyn Observer, &'a mut dyn Observer);

impl Observer for Chain<'_> {
    fn epoch_started(&mut self, epoch: u32, steps: usize) {
        self.0.epoch_started(epoch, steps);
        self.1.epoch_started(epoch, steps);
    }

    fn step(&mut self, steps_done: usize) {
        self.0.step(steps_done);
        self.1.step(steps_done);
    }

    fn epoch_trained(&mut self, epoch: u32) {
        self.0.epoch_trained(epoch);
        self.1.epoch_trained(epoch);
    }

    fn epoch_finished(&mut self, record: &mut EpochRecord) {
        self.0.epoch_finished(record);
        self.1.epoch_finished(record);
    }

    fn evaluating(&mut self, what: &str) {
        self.0.evaluating(what);
        self.1.evaluating(what);
    }
}

/// Runs `f`, turning a panic inside it into an error that carries the panic's message.
fn guarded<T>(f: impl FnOnce() -> Result<T, TrainError>) -> Result<T, TrainError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(TrainError::Panicked(message))
    })
}

/// The model file of a finished run: its trained weights, and where they came from.
pub fn model_file(report: &RunReport, weights: Weights) -> ModelFile {
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("framework".into(), report.spec.framework.clone());
    metadata.insert("dataset".into(), report.spec.dataset.to_string());
    metadata.insert("epochs".into(), report.spec.epochs.to_string());
    metadata.insert("seed".into(), report.spec.seed.to_string());
    metadata.insert("device".into(), report.device());
    if let Some(test) = &report.final_test {
        metadata.insert("test_accuracy".into(), format!("{}", test.accuracy));
        metadata.insert("test_examples".into(), test.examples.to_string());
    }
    ModelFile {
        model: report.spec.model,
        weights,
        metadata,
    }
}

/// What [`evaluate`] measured with one framework.
#[derive(Debug, Clone)]
pub struct EvalOutput {
    pub framework: String,
    pub device: DeviceKind,
    pub test: Totals,
}

/// Loads `weights` (of `model`) into `framework` on `device` and measures loss and accuracy on the
/// test split of `data`, training nothing.
pub fn evaluate(
    framework: &str,
    device: DeviceRequest,
    model: ModelKind,
    weights: &Weights,
    data: &Mnist,
) -> Result<EvalOutput> {
    let spec = RunSpec {
        device,
        dataset: data.dataset,
        ..RunSpec::recipe(framework, model)
    };
    let mut trainer = self::framework(framework)?
        .trainer(&spec, data, weights)
        .with_context(|| format!("{framework} cannot load the model"))?;
    let test = trainer
        .evaluate(SplitKind::Test)
        .with_context(|| format!("{framework} failed to evaluate"))?;
    Ok(EvalOutput {
        framework: framework.to_string(),
        device: trainer.backend().device,
        test,
    })
}

/// Writes the initial weights of `model` and the batch order of each epoch (tensors `order.1`,
/// `order.2`, ...) for `examples` training examples as one safetensors file.
pub fn write_plan(
    model: common::ModelKind,
    seed: u64,
    epochs: u32,
    examples: usize,
    out: &std::path::Path,
) -> Result<()> {
    if examples == 0 || examples > 100_000_000 {
        bail!("examples must be 1 to 100000000, not {examples}");
    }
    let weights = Weights::init(&model.spec(), seed);
    let orders = (1..=epochs)
        .map(|e| {
            let order = common::order::epoch_order(seed, e, examples);
            (
                format!("order.{e}"),
                order.into_iter().map(i64::from).collect(),
            )
        })
        .collect();
    let metadata = [
        ("model".to_string(), model.to_string()),
        ("seed".to_string(), seed.to_string()),
        ("epochs".to_string(), epochs.to_string()),
    ]
    .into_iter()
    .collect();
    let bytes = weights.to_safetensors(&orders, Some(metadata))?;
    common::fsio::write_atomic(out, &bytes)
        .with_context(|| format!("cannot write {}", out.display()))
}
