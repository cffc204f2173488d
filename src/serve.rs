//! `lenet serve`: what serving a trained model costs in one row of this build. The model file is
//! loaded into the framework's predictor ([`common::serve::Predictor`]), then measured: the load
//! and the first prediction, cold starts (new processes of `lenet serve --once`, timed by this one
//! until their first answer), single-image latency, throughput at large batches, the predicted
//! class of every test image and the process's peak memory, into a [`ServeReport`].

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use common::harness::{DeviceKind, DeviceRequest};
use common::serve::{self, Latency, Predictor, Throughput, CLASSES, PIXELS};
use common::weights::ModelFile;
use common::{Dataset, TrainError};
use reports::serve::{ServeReport, LOGIT_IMAGES, SERVE_SCHEMA};
use reports::Environment;

/// What `lenet serve` measures, and how much of it.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The row.
    pub framework: String,
    /// The model file (safetensors in the shared layout, as `lenet train --save` writes it).
    pub load: PathBuf,
    /// The `ort` row's exported model (default: the model file's path with `.onnx`).
    pub onnx: Option<PathBuf>,
    pub device: DeviceRequest,
    /// CPU threads (`None`: the framework's default).
    pub threads: Option<usize>,
    /// The dataset's folder, and the dataset when the file does not say.
    pub data_dir: Option<PathBuf>,
    pub dataset: Option<Dataset>,
    /// Predict only the first N test images (all of them by default).
    pub limit: Option<usize>,
    /// Single-image predictions timed, after `warmup` untimed ones.
    pub latency_images: usize,
    pub warmup: usize,
    /// The large batch sizes, each timed for at least `throughput_seconds`.
    pub batch_sizes: Vec<usize>,
    pub throughput_seconds: f64,
    /// New processes started and timed until their first answer.
    pub cold_starts: usize,
}

impl ServeOptions {
    /// The options a user can get wrong, checked before anything is loaded.
    pub fn check(&self) -> Result<()> {
        if let Some(b) = self.batch_sizes.iter().find(|&&b| b == 0) {
            bail!("--batch-sizes: a batch holds at least one image, not {b}");
        }
        if self.latency_images == 0 {
            bail!("--latency-images: at least one single-image prediction is timed, not 0");
        }
        if !(self.throughput_seconds.is_finite() && self.throughput_seconds >= 0.0) {
            bail!(
                "--throughput-seconds: a time of 0 s or more, not {}",
                self.throughput_seconds
            );
        }
        if self.limit == Some(0) {
            bail!("--limit: at least one test image, not 0");
        }
        Ok(())
    }
}

/// The rows of this build: each framework's, then the `ort` row (the exported model served by
/// ONNX Runtime, on the CPU only: not for `--device cuda`) where the build has it.
#[cfg_attr(not(feature = "ort"), allow(unused_variables))]
pub fn rows(device: DeviceRequest) -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut rows: Vec<&str> = crate::FRAMEWORKS.iter().map(|f| f.name()).collect();
    #[cfg(feature = "ort")]
    if device != DeviceRequest::Cuda {
        rows.push(onnx_serve::ROW);
    }
    rows
}

/// The exported model the `ort` row serves: `--onnx`, or the model file's path with `.onnx`.
#[cfg(feature = "ort")]
fn onnx_file(options: &ServeOptions) -> PathBuf {
    options
        .onnx
        .clone()
        .unwrap_or_else(|| options.load.with_extension("onnx"))
}

/// The predictor of `options`' row for `model`.
fn predictor(options: &ServeOptions, model: &ModelFile) -> Result<Box<dyn Predictor>> {
    #[cfg(feature = "ort")]
    if options.framework == onnx_serve::ROW {
        if options.device == DeviceRequest::Cuda {
            bail!("ort: this row serves on the CPU (no CUDA execution provider is set up)");
        }
        let library = onnx_serve::library()?;
        let row = onnx_serve::predictor(&onnx_file(options), &library, options.threads)?;
        return Ok(Box::new(row));
    }
    if options.onnx.is_some() {
        bail!("--onnx: only the ort row serves an exported model");
    }
    let row = crate::framework(&options.framework).map_err(|e| match e {
        TrainError::UnknownFramework { name, .. } => anyhow!(
            "unknown row '{name}': this build serves {}",
            rows(options.device).join(", ")
        ),
        e => e.into(),
    })?;
    row.predictor(model.model, &model.weights, options.device, options.threads)
        .with_context(|| {
            format!(
                "{} cannot load {}",
                options.framework,
                options.load.display()
            )
        })
}

/// The model file and the predictor of `options`' row built from it, with the seconds the two
/// took.
fn load(options: &ServeOptions) -> Result<(ModelFile, Box<dyn Predictor>, f64)> {
    let start = Instant::now();
    let model = ModelFile::read(&options.load)?;
    let predictor = predictor(options, &model)?;
    Ok((model, predictor, start.elapsed().as_secs_f64()))
}

/// `lenet serve --once`: loads the model and prints the class of one blank image, what a freshly
/// started server's first answer costs.
pub fn answer_once(options: &ServeOptions) -> Result<u8> {
    let (_, mut predictor, _) = load(options)?;
    let logits = predictor.logits(&[0.0; PIXELS])?;
    Ok(serve::classes(&logits)[0])
}

/// The command line that starts one cold start of `options`' row (this binary, `serve --once`).
fn once_command(options: &ServeOptions) -> Result<Command> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--once", "--framework", &options.framework])
        .arg("--load")
        .arg(&options.load)
        .args(["--device", &options.device.to_string()]);
    if let Some(onnx) = &options.onnx {
        cmd.arg("--onnx").arg(onnx);
    }
    if let Some(t) = options.threads {
        cmd.args(["--threads", &t.to_string()]);
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    Ok(cmd)
}

/// The dataset the model file was trained on (unless `options` name one) and its test images,
/// cut to `--limit`.
fn test_images(options: &ServeOptions, file: &ModelFile) -> Result<(Dataset, common::Mnist)> {
    let dataset = match (options.dataset, file.metadata.get("dataset")) {
        (Some(d), _) => d,
        (None, Some(d)) => d
            .parse()
            .with_context(|| format!("{}: its metadata names a dataset", options.load.display()))?,
        (None, None) => Dataset::Mnist,
    };
    let mut data = datasets::load(dataset, options.data_dir.as_deref())
        .with_context(|| format!("cannot load {}", dataset.title()))?;
    if let Some(n) = options.limit {
        data.check_limit(n, common::SplitKind::Test)?;
        data.limit(n);
    }
    Ok((dataset, data))
}

/// `options.cold_starts` new processes of `lenet serve --once`, each timed until its answer.
fn cold_starts(options: &ServeOptions) -> Result<Vec<f64>> {
    (0..options.cold_starts)
        .map(|_| {
            let (seconds, _) = meters::cold::time_to_first_line(&mut once_command(options)?)
                .context("a cold start")?;
            Ok(seconds)
        })
        .collect()
}

/// The latency of single images and the throughput of each batch size.
fn speed(
    predictor: &mut dyn Predictor,
    pixels: &[f32],
    options: &ServeOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(Latency, Vec<Throughput>)> {
    progress(&format!(
        "{} single-image predictions",
        options.latency_images
    ));
    let taken = serve::latencies(predictor, pixels, options.warmup, options.latency_images)?;
    let batch1 = Latency::of(&taken).context("no prediction was timed")?;
    let mut throughput = Vec::new();
    for &batch in &options.batch_sizes {
        progress(&format!("batches of {batch}"));
        throughput.push(serve::throughput(
            predictor,
            pixels,
            batch,
            3,
            options.throughput_seconds,
        )?);
    }
    Ok((batch1, throughput))
}

/// Measures `options`' row; `progress` hears what is being measured.
pub fn serve(options: &ServeOptions, progress: &mut dyn FnMut(&str)) -> Result<ServeReport> {
    options.check()?;
    let environment = Environment::capture();
    let (file, mut predictor, load_seconds) = load(options)?;
    // On CUDA, the GPU memory this process holds, sampled by the driver over the measurement.
    let gpu = (predictor.device() == DeviceKind::Cuda)
        .then(|| meters::gpu::Nvml::open(0))
        .flatten()
        .map(|nvml| {
            meters::gpu::PeakSampler::start(
                std::sync::Arc::new(nvml),
                std::process::id(),
                meters::gpu::SAMPLE_PERIOD,
            )
        });
    let (dataset, data) = test_images(options, &file)?;
    let pixels = data.test.normalized_images();
    let start = Instant::now();
    predictor.logits(&pixels[..PIXELS])?;
    let first_prediction_seconds = start.elapsed().as_secs_f64();
    progress(&format!("{} cold starts", options.cold_starts));
    let cold_start_seconds = cold_starts(options)?;
    let (batch1, throughput) = speed(predictor.as_mut(), &pixels, options, progress)?;
    progress("every test image");
    let predicted = serve::predict_all(predictor.as_mut(), &pixels, 1000)?;
    let right = predicted
        .iter()
        .zip(&data.test.labels)
        .filter(|(p, l)| p == l)
        .count();
    let kept = LOGIT_IMAGES.min(data.test.len());
    let logits = predictor.logits(&pixels[..kept * PIXELS])?;
    debug_assert_eq!(logits.len(), kept * CLASSES);
    Ok(ServeReport {
        schema: SERVE_SCHEMA,
        framework: options.framework.clone(),
        framework_version: predictor.version(),
        model: file.model,
        dataset,
        model_file: options
            .load
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        model_metadata: file.metadata.clone(),
        device: predictor.device(),
        threads: options.threads,
        load_seconds,
        first_prediction_seconds,
        cold_start_seconds,
        batch1,
        throughput,
        test_images: predicted.len(),
        accuracy: right as f64 / predicted.len().max(1) as f64,
        classes: predicted.iter().map(|c| char::from(b'0' + c)).collect(),
        logits,
        peak_host_bytes: meters::host::high_water_mark(),
        peak_device_bytes: gpu.and_then(meters::gpu::PeakSampler::finish),
        notes: predictor.notes(),
        environment,
    })
}
