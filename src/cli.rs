//! The options of `lenet train`, apart from the binary so that a test can parse what
//! `RunSpec::to_args` writes and check that it is the same run, and those of `lenet serve`.

use std::path::PathBuf;

pub use common::cli::{RunArgs, ServeMeasureArgs};
use common::harness::{DeviceRequest, Profile, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE};
use common::{Dataset, ModelKind};

/// The options of `lenet train`: every field of a [`RunSpec`], and where its outputs go.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "lenet train")]
pub struct TrainArgs {
    /// Framework to train with (default: tch, or the first framework this build holds)
    #[arg(long, short)]
    pub framework: Option<String>,
    /// lenet2 or lenet3
    #[arg(long, short, default_value = "lenet2")]
    pub model: ModelKind,
    // The data, the initial weights, the device, the subset and the seed (`compare` takes the same).
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, short, default_value_t = EPOCHS)]
    pub epochs: u32,
    #[arg(long, default_value_t = BATCH_SIZE)]
    pub batch_size: usize,
    /// Adam's learning rate (the recipe's is 0.001)
    #[arg(long, default_value_t = LEARNING_RATE)]
    pub learning_rate: f64,
    /// CPU threads for the framework (default: the framework's own default)
    #[arg(long)]
    pub threads: Option<usize>,
    /// idiomatic (the framework as its users write it) or tuned (its fastest configuration, the
    /// same math; the report and stderr list each setting, applied or fallen back)
    #[arg(long, default_value = "idiomatic")]
    pub profile: Profile,
    /// Write the JSON run report here
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the trained weights here (safetensors, PyTorch's names and layouts), for `lenet eval`
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// No progress bars or per-epoch lines
    #[arg(long, short)]
    pub quiet: bool,
    /// A kernel pass instead of a timed run: load the kernel counter (COUNTER: its library,
    /// liblenet_kernels.so, built by `cargo xtask setup --cuda`) before the first CUDA call and
    /// record, per epoch, every kernel, memory copy and memory set the device runs into the report;
    /// its times are not a timed run's (tracing costs the host time)
    #[arg(long, value_name = "COUNTER")]
    pub kernels: Option<PathBuf>,
}

impl TrainArgs {
    /// The run these options describe.
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            framework: self
                .framework
                .clone()
                .unwrap_or_else(|| crate::default_framework().to_string()),
            model: self.model,
            dataset: self.run.dataset,
            init: self.run.init,
            device: self.run.device,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.run.seed,
            limit: self.run.limit,
            threads: self.threads,
            profile: self.profile,
        }
    }
}

/// The options of `lenet serve`.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "lenet serve")]
pub struct ServeArgs {
    /// The row to measure (default: tch, or the first framework this build holds): a framework,
    /// or ort (the model exported to ONNX, served by ONNX Runtime's library, which ORT_DYLIB_PATH
    /// names); --list-rows prints this build's
    #[arg(long, short)]
    pub framework: Option<String>,
    /// The trained model (safetensors in the shared layout, as `lenet train --save` writes it)
    #[arg(
        long,
        short,
        value_name = "FILE",
        required_unless_present = "list_rows"
    )]
    pub load: Option<PathBuf>,
    /// ort: the exported model (default: the model file's path with .onnx, as python/serve.py
    /// --export writes it)
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
    /// Print this build's rows, one per line, and end (with --device cuda: those that serve on
    /// CUDA)
    #[arg(long)]
    pub list_rows: bool,
    /// auto (CUDA when available), cpu or cuda
    #[arg(long, short, default_value = "auto")]
    pub device: DeviceRequest,
    /// CPU threads for the framework (default: the framework's own default)
    #[arg(long)]
    pub threads: Option<usize>,
    /// mnist or fashion-mnist (default: the dataset the file says it was trained on, else mnist)
    #[arg(long)]
    pub dataset: Option<Dataset>,
    /// Folder with the four data files (default: $MNIST_DIR or $FASHION_MNIST_DIR, else a system
    /// folder, else the cache, else a download)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    // How much is measured (`cargo xtask serve` takes the same).
    #[command(flatten)]
    pub measure: ServeMeasureArgs,
    /// Write the JSON serving report here
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Load the model, print the class of one blank image and end: one cold start, which `lenet
    /// serve` times from outside
    #[arg(long)]
    pub once: bool,
}

impl ServeArgs {
    /// What these options measure.
    pub fn options(&self) -> crate::serve::ServeOptions {
        crate::serve::ServeOptions {
            framework: self
                .framework
                .clone()
                .unwrap_or_else(|| crate::default_framework().to_string()),
            load: self.load.clone().unwrap_or_default(),
            onnx: self.onnx.clone(),
            device: self.device,
            threads: self.threads,
            data_dir: self.data_dir.clone(),
            dataset: self.dataset,
            limit: self.measure.limit,
            latency_images: self.measure.latency_images,
            warmup: self.measure.warmup,
            batch_sizes: self.measure.batch_sizes.clone(),
            throughput_seconds: self.measure.throughput_seconds,
            cold_starts: self.measure.cold_starts,
        }
    }
}
