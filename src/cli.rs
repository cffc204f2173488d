//! The options of `lenet train`, apart from the binary so that a test can parse what
//! `RunSpec::to_args` writes and check that it is the same run.

use std::path::PathBuf;

use common::harness::{
    DeviceRequest, InitKind, Profile, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE,
};
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
    /// mnist or fashion-mnist
    #[arg(long, default_value = "mnist")]
    pub dataset: Dataset,
    /// shared (the same initial weights for every framework) or native (the framework's own
    /// default initialisers)
    #[arg(long, default_value = "shared")]
    pub init: InitKind,
    /// auto (CUDA when available), cpu or cuda
    #[arg(long, short, default_value = "auto")]
    pub device: DeviceRequest,
    #[arg(long, short, default_value_t = EPOCHS)]
    pub epochs: u32,
    #[arg(long, default_value_t = BATCH_SIZE)]
    pub batch_size: usize,
    /// Adam's learning rate (the recipe's is 0.001)
    #[arg(long, default_value_t = LEARNING_RATE)]
    pub learning_rate: f64,
    /// Train on the first N training images and test on the first N test images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Seed of the initial weights and of every epoch's batch order
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads for the framework (default: the framework's own default)
    #[arg(long)]
    pub threads: Option<usize>,
    /// idiomatic (the framework as its users write it) or tuned (its fastest configuration, the
    /// same math; the report and stderr list each setting, applied or fallen back)
    #[arg(long, default_value = "idiomatic")]
    pub profile: Profile,
    /// Folder with the four data files (default: $MNIST_DIR or $FASHION_MNIST_DIR, else a system
    /// folder, else the cache, else a download)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write the JSON run report here
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the trained weights here (safetensors, PyTorch's names and layouts), for `lenet eval`
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// No progress bars or per-epoch lines
    #[arg(long, short)]
    pub quiet: bool,
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
            dataset: self.dataset,
            init: self.init,
            device: self.device,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.seed,
            limit: self.limit,
            threads: self.threads,
            profile: self.profile,
        }
    }
}
