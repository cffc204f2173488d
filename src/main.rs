//! `lenet`: train LeNet2/LeNet3 on MNIST with one framework, or print a model summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use common::harness::{DeviceRequest, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE};
use common::ModelKind;
use lenet_compare::{run, write_plan, RunOptions};

#[derive(Parser)]
#[command(
    name = "lenet",
    version,
    about = "Train LeNet2/LeNet3 on MNIST with tch, candle or burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one model with one framework and report accuracy and time per epoch
    Train(TrainArgs),
    /// Print each layer of a model with its output shape and parameters
    Summary {
        /// lenet2, lenet3 or all
        #[arg(long, short, default_value = "all")]
        model: String,
    },
    /// Write a run's shared initial weights and every epoch's batch order as safetensors
    /// (what the PyTorch reference run trains from)
    Plan(PlanArgs),
}

#[derive(clap::Args)]
struct PlanArgs {
    /// lenet2 or lenet3
    #[arg(long, short, default_value = "lenet2")]
    model: ModelKind,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, short, default_value_t = EPOCHS)]
    epochs: u32,
    /// Number of training examples the orders cover
    #[arg(long, default_value_t = 60_000)]
    examples: usize,
    /// The safetensors file to write
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Framework to train with
    #[arg(long, short, default_value = "tch")]
    framework: String,
    /// lenet2 or lenet3
    #[arg(long, short, default_value = "lenet2")]
    model: ModelKind,
    /// auto (CUDA when available), cpu or cuda
    #[arg(long, short, default_value = "auto")]
    device: DeviceRequest,
    #[arg(long, short, default_value_t = EPOCHS)]
    epochs: u32,
    #[arg(long, default_value_t = BATCH_SIZE)]
    batch_size: usize,
    /// Train on the first N training images and test on the first N test images
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Seed of the initial weights and of every epoch's batch order
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads for the framework (default: the framework's own default)
    #[arg(long)]
    threads: Option<usize>,
    /// Folder with the four MNIST files (default: $MNIST_DIR, else the cache, else a download)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Write the JSON run report here
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// No progress bars or per-epoch lines
    #[arg(long, short)]
    quiet: bool,
}

fn train(args: TrainArgs) -> Result<bool> {
    let spec = RunSpec {
        framework: args.framework,
        model: args.model,
        device: args.device,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: LEARNING_RATE,
        seed: args.seed,
        limit: args.limit,
        threads: args.threads,
    };
    let options = RunOptions {
        data_dir: args.data_dir,
        progress: !args.quiet,
    };
    let report = run(&spec, &options)?;
    if let Some(out) = &args.out {
        report.write(out)?;
    }
    match (&report.failure, &report.final_train, &report.final_test) {
        (None, Some(train), Some(test)) => {
            println!(
                "{} {} on {}: train accuracy {:.2}%, test accuracy {:.2}%, median epoch {:.2} s",
                spec.framework,
                spec.model,
                report.device(),
                train.accuracy * 100.0,
                test.accuracy * 100.0,
                report.median_epoch_seconds().unwrap_or(f64::NAN)
            );
            Ok(true)
        }
        (failure, _, _) => {
            eprintln!(
                "error: {} {} failed: {}",
                spec.framework,
                spec.model,
                failure.as_deref().unwrap_or("no result")
            );
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(args),
        Command::Summary { model } => summary(&model),
        Command::Plan(args) => plan(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn summary(model: &str) -> Result<bool> {
    let models: Vec<ModelKind> = if model == "all" {
        ModelKind::ALL.to_vec()
    } else {
        vec![model.parse().map_err(anyhow::Error::msg)?]
    };
    for m in models {
        println!("{}", m.spec().summary_text());
    }
    Ok(true)
}

fn plan(args: &PlanArgs) -> Result<bool> {
    write_plan(args.model, args.seed, args.epochs, args.examples, &args.out)?;
    Ok(true)
}
