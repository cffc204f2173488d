//! `lenet`: train LeNet2/LeNet3 on MNIST with one framework, or print a model summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use common::harness::{DeviceRequest, InitKind, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE};
use common::weights::ModelFile;
use common::{Dataset, Mnist, ModelKind};
use lenet_compare::{run, write_plan, RunOptions, FRAMEWORKS};

#[derive(Parser)]
#[command(
    name = "lenet",
    version,
    about = "Train LeNet2/LeNet3 on MNIST or Fashion-MNIST with tch, candle or burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one model with one framework and report accuracy and time per epoch
    Train(TrainArgs),
    /// Load a model file written by `train --save` into one or more frameworks and report their
    /// test accuracy (a model trained with one framework can be evaluated with any other)
    Eval(EvalArgs),
    /// Print each framework's default initialisers and optimiser settings (what `--init native`
    /// and an unaligned recipe would change)
    Defaults,
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
struct EvalArgs {
    /// The model file (safetensors in the shared layout, as `lenet train --save` writes it)
    #[arg(long, short, value_name = "FILE")]
    load: PathBuf,
    /// Comma-separated frameworks, or all
    #[arg(long, short, value_delimiter = ',', default_value = "all")]
    framework: Vec<String>,
    /// mnist or fashion-mnist (default: the dataset the file says it was trained on, else mnist)
    #[arg(long)]
    dataset: Option<Dataset>,
    /// auto (CUDA when available), cpu or cuda
    #[arg(long, short, default_value = "auto")]
    device: DeviceRequest,
    /// Test on the first N test images
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Folder with the four data files (default: $MNIST_DIR or $FASHION_MNIST_DIR, else a system
    /// folder, else the cache, else a download)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Framework to train with
    #[arg(long, short, default_value = "tch")]
    framework: String,
    /// lenet2 or lenet3
    #[arg(long, short, default_value = "lenet2")]
    model: ModelKind,
    /// mnist or fashion-mnist
    #[arg(long, default_value = "mnist")]
    dataset: Dataset,
    /// shared (the same initial weights for every framework) or native (the framework's own
    /// default initialisers)
    #[arg(long, default_value = "shared")]
    init: InitKind,
    /// auto (CUDA when available), cpu or cuda
    #[arg(long, short, default_value = "auto")]
    device: DeviceRequest,
    #[arg(long, short, default_value_t = EPOCHS)]
    epochs: u32,
    #[arg(long, default_value_t = BATCH_SIZE)]
    batch_size: usize,
    /// Adam's learning rate (the recipe's is 0.001)
    #[arg(long, default_value_t = LEARNING_RATE)]
    learning_rate: f64,
    /// Train on the first N training images and test on the first N test images
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Seed of the initial weights and of every epoch's batch order
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads for the framework (default: the framework's own default)
    #[arg(long)]
    threads: Option<usize>,
    /// Folder with the four data files (default: $MNIST_DIR or $FASHION_MNIST_DIR, else a system
    /// folder, else the cache, else a download)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Write the JSON run report here
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the trained weights here (safetensors, PyTorch's names and layouts), for `lenet eval`
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// No progress bars or per-epoch lines
    #[arg(long, short)]
    quiet: bool,
}

fn train(args: TrainArgs) -> Result<bool> {
    let spec = RunSpec {
        framework: args.framework,
        model: args.model,
        dataset: args.dataset,
        init: args.init,
        device: args.device,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        seed: args.seed,
        limit: args.limit,
        threads: args.threads,
    };
    // Fail now, not after an hour of training.
    for path in [&args.out, &args.save].into_iter().flatten() {
        check_writable(path)?;
    }
    let options = RunOptions {
        data_dir: args.data_dir,
        progress: !args.quiet,
        keep_weights: args.save.is_some(),
    };
    let output = run(&spec, &options)?;
    let report = output.report;
    if let Some(out) = &args.out {
        report.write(out)?;
    }
    if let (Some(save), Some(weights)) = (&args.save, output.weights) {
        lenet_compare::model_file(&report, weights).write(save)?;
        eprintln!("saved the trained weights to {}", save.display());
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
        Command::Eval(args) => eval(&args),
        Command::Summary { model } => summary(&model),
        Command::Defaults => {
            print!("{}", common::harness::defaults_table());
            Ok(true)
        }
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

/// Fails early, before an hour of training, when `path` cannot be written: its folder does not
/// exist, it is a folder, or the folder refuses a new file.
fn check_writable(path: &std::path::Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(
            "cannot write {}: {} is a file, not a folder",
            path.display(),
            dir.display()
        );
    }
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot write {}: the folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!("cannot write {}: it is a folder", path.display());
    }
    common::report::check_writable_dir(dir)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn eval(args: &EvalArgs) -> Result<bool> {
    let file = ModelFile::read(&args.load)?;
    let frameworks: Vec<String> = if args.framework.iter().any(|f| f == "all") {
        FRAMEWORKS.iter().map(|f| f.to_string()).collect()
    } else {
        args.framework.clone()
    };
    for f in &frameworks {
        lenet_compare::check_framework(f)?;
    }
    let dataset = match (args.dataset, file.metadata.get("dataset")) {
        (Some(d), _) => d,
        (None, Some(d)) => d
            .parse()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: its metadata names a dataset", args.load.display()))?,
        (None, None) => Dataset::Mnist,
    };
    let mut data = Mnist::load_dataset(dataset, args.data_dir.as_deref())
        .with_context(|| format!("cannot load {}", dataset.title()))?;
    if let Some(n) = args.limit {
        data.check_limit(n, common::SplitKind::Test)?;
        data.limit(n);
    }
    let from = file
        .metadata
        .get("framework")
        .map(|f| format!(", trained with {f}"))
        .unwrap_or_default();
    println!(
        "{} ({}{from}) on the {} test split ({} images):",
        args.load.display(),
        file.model,
        dataset.title(),
        data.test.len()
    );
    let mut ok = true;
    for framework in &frameworks {
        match lenet_compare::evaluate(framework, args.device, file.model, &file.weights, &data) {
            Ok(out) => println!(
                "  {:<16} {:<5} test loss {:.4}, test accuracy {:.2}% ({}/{})",
                out.framework,
                out.device.to_string(),
                out.test.mean_loss(),
                out.test.accuracy() * 100.0,
                out.test.correct,
                out.test.examples
            ),
            Err(e) => {
                ok = false;
                println!("  {framework:<16} failed: {e:#}");
            }
        }
    }
    Ok(ok)
}
