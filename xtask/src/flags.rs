//! Every command's options, in one place: the command line `cargo xtask` parses ([`Cli`], one
//! [`Command`] per task) and each task's flags, which the task's module takes as they are. Nothing
//! here runs anything; `main.rs` parses and hands each task its flags.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::cli::{RunArgs, ServeMeasureArgs};
use common::harness::Profile;
use common::ModelKind;

/// The command line: one task and its flags.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Set-up, builds and comparisons for lenet-compare"
)]
pub struct Cli {
    /// The task to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The tasks, in the order `cargo xtask --help` lists them. The doc comment of each variant is
/// that task's help line.
#[derive(Subcommand)]
pub enum Command {
    /// Install libtorch (PyPI torch 2.11.0 in a virtual environment) unless LIBTORCH or
    /// LIBTORCH_USE_PYTORCH points at one, and link the build to it
    Setup(Setup),
    /// Run every (framework, model) in its own process and tabulate accuracy and time per epoch
    Compare(Box<Compare>),
    /// Rebuild every results folder's summary.md, charts and the index from the raw JSON reports in
    /// it (and remove local paths from the commands they record), the model listings of
    /// docs/models.md from the models' sources, and the front page's verdict from the results
    Report(Report),
    /// Set up, then run the whole test suite (release build); extra arguments go to `cargo test`
    Test(Test),
    /// Lint every crate and target with clippy (release, warnings are errors), the build with all
    /// frameworks or with only those of --features
    Lint(Lint),
    /// Measure what each framework costs before its first step: a cold release build of lenet with
    /// it alone, a rebuild, binary and native library sizes, dependency counts, and the first
    /// epochs of this machine's comparison, into OUT/MACHINE/build-cost/ (takes tens of minutes)
    Cost(Cost),
    /// Print the framework features of the root Cargo.toml, one per line, in its order (the one
    /// list of frameworks that xtask, CI and the scripts read)
    Frameworks(Frameworks),
    /// Build lenet with cargo features beyond the frameworks' (burn-cpu: burn's compiled CPU
    /// backend for its tuned profile; burn-rayon), with what the build needs (LLVM 23.1 for burn's
    /// compiled backends), into target/lenet-FEATURES
    Build(Build),
    /// Build a self-contained folder that runs the comparison on a machine with only python3, torch
    /// 2.11 and the NVIDIA libraries (no Rust toolchain)
    Bundle(Bundle),
    /// Measure what serving the trained model costs in every row (this build's frameworks and the
    /// Rust ONNX row through `lenet serve`, the Python rows through python/serve.py) on the CPU (or
    /// CUDA, --device cuda), for each model and thread count, into OUT/MACHINE/serve/ (the model
    /// trained once first, with the default framework)
    Serve(Box<Serve>),
}

// A flags struct's own doc comment is not its help: its variant's above is (clap applies the
// variant's after the struct's).

/// `setup`'s flags.
#[derive(clap::Args)]
pub struct Setup {
    /// Also install what building the frameworks' CUDA code needs (nvcc 13.0 and libraries to
    /// link for candle, LLVM 23.1 for burn) and check that it compiles, and build the kernel
    /// counter (target/kernel-counter/liblenet_kernels.so, for `lenet train --kernels`)
    #[arg(long)]
    pub cuda: bool,
    /// Where the CUDA check builds (default: target/cuda, beside the GPU bundle's builds, which
    /// then reuse it; `target` shares the main build's build scripts and unchanged crates,
    /// which is quicker where nothing is built for CUDA afterwards, as in CI)
    #[arg(long, value_name = "DIR", requires = "cuda")]
    pub target_dir: Option<PathBuf>,
    /// Check only these frameworks' CUDA builds, or none (default: every framework with CUDA
    /// code of its own, candle and burn; on 2 cores candle's takes about 18 minutes, nvcc
    /// compiling its kernels, and burn's about 8)
    #[arg(
        long,
        value_name = "FRAMEWORK",
        value_delimiter = ',',
        requires = "cuda"
    )]
    pub check: Option<Vec<String>>,
}

/// `compare`'s flags.
#[derive(clap::Args, Clone)]
pub struct Compare {
    /// Comma-separated frameworks, from those `lenet frameworks` lists, or `rust` for every Rust
    /// framework of the build (default: every one it marks "compared by default": the Python rows
    /// and every Rust framework of the build)
    #[arg(long, value_delimiter = ',')]
    pub frameworks: Option<Vec<String>>,
    /// Comma-separated models: lenet2, lenet3
    #[arg(long, value_delimiter = ',', default_value = "lenet2,lenet3")]
    pub models: Vec<ModelKind>,
    // The data, the initial weights, the device, the subset and the seed, as `lenet train` takes
    // them.
    #[command(flatten)]
    pub run: RunArgs,
    /// Run each (framework, model) N times, with seeds SEED, SEED+1, ...; the table shows mean ± sd
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeats: u32,
    /// Epochs per run (default: 10, the recipe's; 2 with --sweep)
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Comma-separated batch sizes: every (framework, model) runs at each (default: 32, the
    /// recipe's; with --sweep, 32,128,512 on the CPU and 32,128,512,2048,8192 on CUDA)
    #[arg(long = "batch-size", value_delimiter = ',', value_name = "N,...")]
    pub batch_sizes: Option<Vec<usize>>,
    /// Comma-separated CPU thread counts: every run at each (default: each framework's own; with
    /// --sweep on the CPU, 1,2,4,... up to this machine's cores, at batch 32)
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub threads: Option<Vec<usize>>,
    /// Comma-separated profiles: idiomatic (each framework as its users write it), tuned (its
    /// fastest configuration, the same math); with both, each run twice, side by side
    #[arg(
        long = "profile",
        value_delimiter = ',',
        default_value = "idiomatic",
        value_name = "P,..."
    )]
    pub profiles: Vec<Profile>,
    /// A throughput sweep: images per second against batch size (each framework's own threads),
    /// then on the CPU against threads (batch 32), 2 epochs a run, into the folder `sweep` (see
    /// --batch-size, --threads, --epochs and --tag to change any of these)
    #[arg(long)]
    pub sweep: bool,
    /// Results go to OUT/MACHINE/ (OUT/MACHINE/TAG/ with --tag)
    #[arg(long, default_value = "results", value_name = "OUT")]
    pub out: PathBuf,
    /// Name of the machine's results folder (default: from the GPU or CPU model)
    #[arg(long)]
    pub machine: Option<String>,
    /// A subfolder for this comparison, so that it does not mix with the machine's main results
    /// (for example repeats-3 or fashion-mnist)
    #[arg(long)]
    pub tag: Option<String>,
    /// Build lenet with only these frameworks (comma-separated framework features, see `cargo
    /// xtask frameworks`; default: all). A build without tch installs nothing of libtorch, and compares its own
    /// frameworks by default (name pytorch or keras to add the Python rows, which install theirs)
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "F,...",
        conflicts_with = "lenet"
    )]
    pub features: Option<Vec<String>>,
    /// Use this `lenet` binary instead of building one (as the GPU bundle does)
    #[arg(long, value_name = "FILE")]
    pub lenet: Option<PathBuf>,
    /// Run FRAMEWORK with another `lenet` binary (repeatable): candle's and burn's CUDA code
    /// cannot share one binary, so the GPU bundle has one for each
    #[arg(long, value_name = "FRAMEWORK=FILE", value_parser = parse_lenet_for)]
    pub lenet_for: Vec<(String, PathBuf)>,
    /// Keep the runs whose reports are already in the results folder, made with the same settings
    /// (framework, model, dataset, seed, epochs, ...), and run only the others; a run that failed
    /// with the same settings is kept as failed (see --retry-failed)
    #[arg(long)]
    pub resume: bool,
    /// With --resume: run again the runs whose reports say they failed
    #[arg(long, requires = "resume")]
    pub retry_failed: bool,
    /// Stop a run that takes longer than SECONDS, with every process it started, and write a
    /// failed report that says so (default: from the plan: 300 s for start-up, compilation and
    /// autotuning, plus 10 ms for each image of each epoch, training and test; twice that for a
    /// kernel pass)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub run_timeout: Option<u64>,
    /// Run only slice I of N of the comparison's runs, for a scheduler that starts N jobs of this
    /// command: I/N (I from 1), or N alone to take I from the scheduler (Slurm job arrays'
    /// SLURM_ARRAY_TASK_ID counted from SLURM_ARRAY_TASK_MIN, Kubernetes Indexed Jobs'
    /// JOB_COMPLETION_INDEX from 0). The slices together run every run once; `cargo xtask report
    /// --merge` brings their folders together
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// A kernel pass instead of the timed runs: every run of the comparison again with the kernel
    /// counter FILE (liblenet_kernels.so, built by `cargo xtask setup --cuda`) loaded before its
    /// first CUDA call, each report written as NAME.kernels.json beside the timed run's NAME.json
    /// (the tables join the two: kernels and device time per step, the device floor). The timed
    /// runs never load it
    #[arg(long, value_name = "FILE")]
    pub kernels: Option<PathBuf>,
    /// Python for the Python rows, with torch (pytorch) and keras and its backend (keras)
    /// (default: the one `setup` installed)
    #[arg(long, value_name = "FILE")]
    pub python: Option<PathBuf>,
    /// The folder with the Python rows' scripts (default: the repository's, as `lenet frameworks`
    /// names them)
    #[arg(long, value_name = "DIR")]
    pub scripts: Option<PathBuf>,
}

/// `--lenet-for`'s `FRAMEWORK=FILE`.
fn parse_lenet_for(value: &str) -> Result<(String, PathBuf), String> {
    let (framework, file) = value
        .split_once('=')
        .ok_or_else(|| format!("'{value}' is not FRAMEWORK=FILE"))?;
    if framework.is_empty() || file.is_empty() {
        return Err(format!("'{value}' is not FRAMEWORK=FILE"));
    }
    Ok((framework.to_string(), PathBuf::from(file)))
}

/// `report`'s flags.
#[derive(clap::Args)]
pub struct Report {
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// First copy the run reports of these results folders (the OUT of each `compare --shard`
    /// slice) into OUT, each under the same machine and tag; a run that two of them hold with
    /// different contents is an error
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Use this `lenet` binary for the registry instead of building one
    #[arg(long, value_name = "FILE")]
    pub lenet: Option<PathBuf>,
}

/// `test`'s flags.
#[derive(clap::Args)]
pub struct Test {
    /// Test a build with only these frameworks (framework features, see `cargo xtask
    /// frameworks`): the lenet package's tests in that build, beside the other crates' (without
    /// tch: no libtorch, tch's crate left out, and no tests of the Python rows, which are held
    /// to tch)
    #[arg(long, value_delimiter = ',', value_name = "F,...")]
    pub features: Option<Vec<String>>,
    /// Also turn on these features of the root Cargo.toml beyond the frameworks' (burn-cpu:
    /// burn's tuned profile on its compiled CPU backend; burn-rayon), with what they need
    /// (LLVM 23.1 for burn-cpu, as `cargo xtask build` gives it). burn-cpu's first run of a
    /// model compiles and tunes its kernels for many minutes on a small machine
    #[arg(long, value_delimiter = ',', value_name = "F,...")]
    pub with: Option<Vec<String>>,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `frameworks`' flags.
#[derive(clap::Args)]
pub struct Frameworks {
    /// Only those whose build does not need this (libtorch, llvm or cuda-toolkit, as the framework
    /// crates' manifests say; a CPU build)
    #[arg(long, value_name = "NEED")]
    pub without: Option<String>,
}

/// `serve`'s flags.
#[derive(clap::Args)]
pub struct Serve {
    /// Comma-separated rows (default: every framework of this build and every Python row that
    /// python/serve.py lists)
    #[arg(long, value_delimiter = ',', value_name = "ROW,...")]
    pub rows: Option<Vec<String>>,
    /// Comma-separated models: lenet2, lenet3
    #[arg(long, value_delimiter = ',', default_value = "lenet2,lenet3")]
    pub models: Vec<ModelKind>,
    /// Comma-separated CPU thread counts (default: 1 and all of this machine's cores)
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub threads: Option<Vec<usize>>,
    /// Epochs of the training that makes each model file (seed 0, the recipe otherwise)
    #[arg(long, default_value_t = crate::serve::EPOCHS)]
    pub epochs: u32,
    /// Folder with the four data files (default: as lenet train finds them)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The results root: the reports go to OUT/MACHINE/serve/
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// cpu, or cuda (the rows that serve on CUDA: on a GPU machine, with the GPU bundle's run.sh
    /// serve); the reports go to the GPU's machine folder
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub device: String,
    /// The model files' folder: MODEL-seed0-eEPOCHS.safetensors there, trained into it when
    /// missing (default: target/serve-models)
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Serve with this `lenet` binary's frameworks instead of building one binary per framework
    /// (as the GPU bundle does)
    #[arg(long, value_name = "FILE")]
    pub lenet: Option<PathBuf>,
    /// With --lenet: serve FRAMEWORK with another `lenet` binary (repeatable)
    #[arg(long, value_name = "FRAMEWORK=FILE", value_parser = parse_lenet_for, requires = "lenet")]
    pub lenet_for: Vec<(String, PathBuf)>,
    /// Python for the Python rows (default: the one `setup` installed)
    #[arg(long, value_name = "FILE")]
    pub python: Option<PathBuf>,
    /// The folder with serve.py (default: the repository's python/)
    #[arg(long, value_name = "DIR")]
    pub scripts: Option<PathBuf>,
    // How much is measured, as `lenet serve` takes it.
    #[command(flatten)]
    pub measure: ServeMeasureArgs,
}

/// `lint`'s flags.
#[derive(clap::Args)]
pub struct Lint {
    /// Lint a build with only these frameworks (as `test --features`)
    #[arg(long, value_delimiter = ',', value_name = "F,...")]
    pub features: Option<Vec<String>>,
}

/// `cost`'s flags.
#[derive(clap::Args)]
pub struct Cost {
    /// Comma-separated frameworks (framework features of the root Cargo.toml, listed by `cargo
    /// xtask frameworks`; default: all of them)
    #[arg(long, value_delimiter = ',', value_name = "F,...")]
    pub frameworks: Option<Vec<String>>,
    /// Results go to OUT/MACHINE/build-cost/
    #[arg(long, default_value = "results", value_name = "OUT")]
    pub out: PathBuf,
    /// Name of the machine's results folder (default: from the CPU model, as `compare` names it)
    #[arg(long)]
    pub machine: Option<String>,
    /// Keep each framework's build folder (target/cost/FRAMEWORK, a few GB) instead of removing it
    #[arg(long)]
    pub keep: bool,
    /// The CUDA builds of candle and burn instead of the CPU builds, with the toolkit and LLVM of
    /// `cargo xtask setup --cuda` (tch's CUDA is in libtorch: its CPU build is its CUDA build)
    #[arg(long)]
    pub cuda: bool,
}

/// `build`'s flags.
#[derive(clap::Args)]
pub struct Build {
    /// Comma-separated features of the root Cargo.toml, added to the default build's (burn-cpu,
    /// burn-rayon, ...)
    #[arg(long, value_delimiter = ',', value_name = "F,...", required = true)]
    pub features: Vec<String>,
}

/// `bundle`'s flags.
#[derive(clap::Args)]
pub struct Bundle {
    /// Build the CUDA-enabled binaries (the only kind of bundle there is so far)
    #[arg(long)]
    pub cuda: bool,
    /// Build the criterion bench (`benches/train_step.rs`) with the CUDA features and `bench.sh`
    /// instead of the comparison: a bundle of its own, since both together pass the size limit
    #[arg(long)]
    pub bench: bool,
    /// Where to put the bundle (default: .bundle, or .bundle-bench with --bench)
    #[arg(long)]
    pub out: Option<PathBuf>,
}
