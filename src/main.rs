//! `lenet`: train LeNet2/LeNet3 on MNIST with one framework, or print a model summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use common::harness::{DeviceRequest, EPOCHS};
use common::weights::ModelFile;
use common::{Dataset, ModelKind};
use lenet_compare::cli::{ServeArgs, TrainArgs};
use lenet_compare::{run, write_plan, RunOptions, FRAMEWORKS};

#[derive(Parser)]
#[command(name = "lenet", version)]
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
    /// List the frameworks this build holds (and the references run beside them) with what each
    /// can do here
    Frameworks {
        /// As JSON, for tools (`cargo xtask compare` and the GPU bundle read it)
        #[arg(long)]
        json: bool,
    },
    /// Print each layer of a model with its output shape and parameters
    Summary {
        /// lenet2, lenet3 or all
        #[arg(long, short, default_value = "all")]
        model: String,
    },
    /// Write a run's shared initial weights and every epoch's batch order as safetensors
    /// (what the PyTorch reference run trains from)
    Plan(PlanArgs),
    /// Measure what serving a trained model costs in one framework: load, cold start, latency of
    /// single images (p50, p99), throughput of large batches, memory, and the predicted classes
    Serve(ServeArgs),
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

fn train(args: TrainArgs) -> Result<bool> {
    let spec = args.spec();
    // Fail now, not after an hour of training.
    for path in [&args.out, &args.save].into_iter().flatten() {
        check_writable(path)?;
    }
    if let Some(counter) = &args.kernels {
        if !counter.is_file() {
            bail!(
                "--kernels {}: no such file (the kernel counter's library, built by `cargo xtask setup --cuda`)",
                counter.display()
            );
        }
    }
    let options = RunOptions {
        data_dir: args.run.data_dir,
        progress: !args.quiet,
        keep_weights: args.save.is_some(),
        kernels: args.kernels,
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
    // Rust ignores SIGPIPE, which turns a closed pipe (`lenet frameworks --json | head`) into a
    // panic in `println!`; a command-line tool should end quietly instead, as Unix tools do.
    #[cfg(unix)]
    // SAFETY: called first, before any thread exists; it only restores the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The frameworks of the help text are this build's (the registry's), not a copy of them.
    let built: Vec<&str> = FRAMEWORKS.iter().map(|f| f.name()).collect();
    let about = format!(
        "Train LeNet2/LeNet3 on MNIST or Fashion-MNIST with {} (the frameworks of this build)",
        built.join(", ")
    );
    let cli = match Cli::command()
        .about(about)
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let threads = match &cli.command {
        Command::Train(args) => args.threads,
        Command::Serve(args) => args.threads,
        _ => None,
    };
    if let Some(threads) = threads {
        // candle's CPU kernels, and burn's with its `rayon` feature, size rayon's pool from this
        // variable when they first use it: set here, once, before any thread exists.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let result = match cli.command {
        Command::Frameworks { json } => frameworks(json),
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(&args),
        Command::Summary { model } => summary(&model),
        Command::Defaults => {
            print!(
                "{}",
                results::summary::defaults_table(&lenet_compare::catalogue())
            );
            Ok(true)
        }
        Command::Plan(args) => plan(&args),
        Command::Serve(args) => serve(&args),
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

/// `lenet serve`: one row measured, or with `--once` one cold start's answer.
fn serve(args: &ServeArgs) -> Result<bool> {
    if args.list_rows {
        println!("{}", lenet_compare::serve::rows(args.device).join("\n"));
        return Ok(true);
    }
    let options = args.options();
    if args.once {
        let class = lenet_compare::serve::answer_once(&options)?;
        println!("{class}");
        return Ok(true);
    }
    if let Some(out) = &args.out {
        check_writable(out)?;
    }
    let report = lenet_compare::serve::serve(&options, &mut |what| {
        eprintln!("{} {}: {what}", options.framework, options.load.display())
    })?;
    if let Some(out) = &args.out {
        report.write(out)?;
    }
    let throughput: Vec<String> = report
        .throughput
        .iter()
        .map(|t| format!("{:.0} images/s at {}", t.images_per_second, t.batch))
        .collect();
    println!(
        "{} {} on {}: batch 1 p50 {:.3} ms, p99 {:.3} ms; {}; cold start {}; accuracy {:.2}% over {} test images",
        report.framework,
        report.model,
        report.device,
        report.batch1.p50 * 1e3,
        report.batch1.p99 * 1e3,
        throughput.join(", "),
        report
            .median_cold_start()
            .map_or_else(|| "not measured".to_string(), |s| format!("{:.1} ms", s * 1e3)),
        report.accuracy * 100.0,
        report.test_images
    );
    Ok(true)
}

fn summary(model: &str) -> Result<bool> {
    let models: Vec<ModelKind> = if model == "all" {
        ModelKind::ALL.to_vec()
    } else {
        vec![model.parse()?]
    };
    for m in models {
        println!("{}", results::summary::model_summary(&m.spec()));
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
    common::fsio::check_writable_dir(dir)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn eval(args: &EvalArgs) -> Result<bool> {
    let file = ModelFile::read(&args.load)?;
    let frameworks: Vec<String> = if args.framework.iter().any(|f| f == "all") {
        FRAMEWORKS.iter().map(|f| f.name().to_string()).collect()
    } else {
        args.framework.clone()
    };
    for f in &frameworks {
        lenet_compare::framework(f)?;
    }
    let dataset = match (args.dataset, file.metadata.get("dataset")) {
        (Some(d), _) => d,
        (None, Some(d)) => d
            .parse()
            .with_context(|| format!("{}: its metadata names a dataset", args.load.display()))?,
        (None, None) => Dataset::Mnist,
    };
    let mut data = datasets::load(dataset, args.data_dir.as_deref())
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

/// `lenet frameworks`: the registry, as a table or as JSON.
fn frameworks(json: bool) -> Result<bool> {
    let catalogue = lenet_compare::catalogue();
    if json {
        println!("{}", catalogue.to_json());
        return Ok(true);
    }
    println!(
        "{:<16} {:<8} {:<10} {:<26} compared by default",
        "framework", "runs in", "CUDA here", "CUDA build"
    );
    for f in &catalogue.frameworks {
        let runs = match f.runner {
            common::framework::Runner::Lenet => "lenet",
            common::framework::Runner::Python => "python",
        };
        let cuda = match (&f.cuda_build, f.cuda_available) {
            (None, _) => "-",
            (Some(_), true) => "yes",
            (Some(_), false) => "no",
        };
        let build = match &f.cuda_build {
            None => "its Python packages".to_string(),
            Some(b) if b.features.is_empty() => "from the linked library".to_string(),
            Some(b) if b.own_binary => format!("own binary: {}", b.features.join(",")),
            Some(b) => b.features.join(","),
        };
        println!(
            "{:<16} {:<8} {:<10} {:<26} {}",
            f.name,
            runs,
            cuda,
            build,
            if f.compared_by_default { "yes" } else { "no" }
        );
    }
    for n in &catalogue.not_built {
        println!(
            "{:<16} not in this build (cargo feature `{}`)",
            n.name, n.feature
        );
    }
    Ok(true)
}
