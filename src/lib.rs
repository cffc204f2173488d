//! The `lenet` command's logic: which frameworks this build holds, and one training run from
//! arguments to report. A run never lets a framework type out of its framework crate; this crate
//! only sees `Box<dyn Trainer>`, so adding a framework is one line in [`trainer`].

#[cfg(all(feature = "cuda", feature = "burn-cuda"))]
compile_error!(
    "the features `cuda` (candle's CUDA) and `burn-cuda` cannot be combined: candle links the CUDA \
     libraries and burn's CUDA backend loads them at run time, and cudarc allows one way per build; \
     build two binaries (cargo xtask bundle --cuda does)"
);

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use common::harness::{self, Observer, RunSpec, Trainer};
use common::report::{Environment, EpochRecord, RunReport, SCHEMA};
use common::{Mnist, TrainError, Weights};

/// The frameworks compiled into this binary.
pub const FRAMEWORKS: &[&str] = &["tch", "candle", "candle-firstmax", "burn"];

/// Builds the trainer of the named framework.
pub fn trainer(
    framework: &str,
    spec: &RunSpec,
    data: &Mnist,
    init: &Weights,
) -> Result<Box<dyn Trainer>, TrainError> {
    match framework {
        "tch" => tch_impl::trainer(spec, data, init),
        "candle" => candle_impl::trainer(spec, data, init, candle_impl::Pool::MaxPool2d),
        "candle-firstmax" => candle_impl::trainer(spec, data, init, candle_impl::Pool::FirstMax),
        "burn" => burn_impl::trainer(spec, data, init),
        other => Err(TrainError::DeviceUnavailable(format!(
            "framework '{other}' is not in this build (it has: {})",
            FRAMEWORKS.join(", ")
        ))),
    }
}

/// Checks a framework name given by a user.
pub fn check_framework(name: &str) -> Result<()> {
    if FRAMEWORKS.contains(&name) {
        Ok(())
    } else {
        bail!(
            "unknown framework '{name}': this build has {}",
            FRAMEWORKS.join(", ")
        )
    }
}

/// Options of one run besides the spec.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub data_dir: Option<PathBuf>,
    /// Show progress bars and per-epoch lines on stderr.
    pub progress: bool,
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

    fn epoch_finished(&mut self, r: &EpochRecord) {
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
pub fn run(spec: &RunSpec, options: &RunOptions) -> Result<RunReport> {
    spec.validate().map_err(anyhow::Error::msg)?;
    check_framework(&spec.framework)?;
    let environment = Environment::capture();
    let mut data = Mnist::load(options.data_dir.as_deref()).context("cannot load MNIST")?;
    if let Some(n) = spec.limit {
        data.limit(n);
    }
    let model = spec.model.spec();
    let init = Weights::init(&model, spec.seed);
    let setup = Instant::now();
    // A framework that cannot start (no CUDA where CUDA was asked for, say) still leaves a report,
    // so that a comparison shows why the row is missing.
    let mut trainer = match trainer(&spec.framework, spec, &data, &init) {
        Ok(t) => t,
        Err(e) => return Ok(RunReport::failed(spec.clone(), environment, e.to_string())),
    };
    let setup_seconds = setup.elapsed().as_secs_f64();
    let mut bars = Bars {
        epochs: spec.epochs,
        bar: None,
        label: format!("{} {}", spec.framework, spec.model),
    };
    let mut silent = harness::Silent;
    let observer: &mut dyn Observer = if options.progress {
        &mut bars
    } else {
        &mut silent
    };
    let outcome = harness::train(trainer.as_mut(), spec, data.train.len(), observer);
    Ok(RunReport {
        schema: SCHEMA,
        spec: spec.clone(),
        backend: Some(trainer.backend()),
        environment,
        parameters: model.num_params(),
        train_examples: data.train.len(),
        test_examples: data.test.len(),
        setup_seconds,
        epochs: outcome.epochs,
        final_train: outcome.final_train,
        final_test: outcome.final_test,
        failure: outcome.failure,
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
    let bytes = weights
        .to_safetensors(&orders, Some(metadata))
        .map_err(anyhow::Error::msg)?;
    common::report::write_atomic(out, &bytes)
        .with_context(|| format!("cannot write {}", out.display()))
}

/// Logits `[n, 10]` of the named framework's forward pass on the CPU, for checks.
pub fn logits(
    framework: &str,
    model: common::ModelKind,
    weights: &Weights,
    images: &[f32],
) -> Result<Vec<f32>, TrainError> {
    let spec = model.spec();
    match framework {
        "tch" => tch_impl::logits(&spec, weights, images),
        "candle" => candle_impl::logits(&spec, weights, images, candle_impl::Pool::MaxPool2d),
        "candle-firstmax" => {
            candle_impl::logits(&spec, weights, images, candle_impl::Pool::FirstMax)
        }
        "burn" => burn_impl::logits(&spec, weights, images),
        other => Err(TrainError::DeviceUnavailable(format!(
            "framework '{other}' is not in this build"
        ))),
    }
}

/// Whether the named framework can use a CUDA device here.
pub fn cuda_available(framework: &str) -> bool {
    match framework {
        "tch" => tch_impl::cuda_available(),
        "candle" | "candle-firstmax" => candle_impl::cuda_available(),
        "burn" => burn_impl::cuda_available(),
        _ => false,
    }
}
