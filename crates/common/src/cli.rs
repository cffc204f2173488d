//! The options of a run that `lenet train` and `cargo xtask compare` share, declared once (with the
//! `cli` feature, which only the two command lines turn on): the data, the initial weights, the
//! device, the subset, the seed. The options that one command takes as a single value and the other
//! as a list (model, batch size, threads, profile) are declared by each. Likewise what `lenet serve`
//! and `cargo xtask serve` measure ([`ServeMeasureArgs`]).

use std::path::PathBuf;

use crate::harness::{DeviceRequest, InitKind};
use crate::mnist::Dataset;

/// See the module documentation.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// mnist or fashion-mnist
    #[arg(long, default_value = "mnist")]
    pub dataset: Dataset,
    /// shared (the same initial weights for every framework) or native (each framework's own
    /// default initialisers; a comparison's summary then lists them)
    #[arg(long, default_value = "shared")]
    pub init: InitKind,
    /// auto (CUDA when available), cpu or cuda
    #[arg(long, short, default_value = "auto")]
    pub device: DeviceRequest,
    /// Train on the first N training images and test on the first N test images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Seed of the initial weights and of every epoch's batch order (a comparison's repeats take
    /// SEED, SEED+1, ...)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder with the four data files (default: $MNIST_DIR or $FASHION_MNIST_DIR, else a system
    /// folder, else the cache, else a download)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// How much a serving measurement takes, as `lenet serve` and `cargo xtask serve` share it.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ServeMeasureArgs {
    /// Single-image predictions to time, after --warmup untimed ones
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub latency_images: usize,
    /// Untimed single-image predictions before the timed ones
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub warmup: usize,
    /// The large batch sizes whose throughput is measured
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "256,4096",
        value_name = "B,..."
    )]
    pub batch_sizes: Vec<usize>,
    /// How long each batch size is timed, at the least (three batches at the least)
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub throughput_seconds: f64,
    /// New processes started and timed until their first answer (0: none)
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub cold_starts: usize,
    /// Predict only the first N test images (a quick look; the default is all of them)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}
