//! `cargo xtask`: the project's set-up, builds and comparisons, so that nobody has to prepare
//! anything by hand. One module per subcommand; runs are separate processes of the `lenet` binary
//! (and of the PyTorch reference script), and their JSON reports are the only thing read back.

mod build;
mod bundle;
mod compare;
mod cost;
mod counter;
mod cuda;
mod llvm;
mod report;
mod setup;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Set-up, builds and comparisons for lenet-compare"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install libtorch (PyPI torch 2.11.0 in a virtual environment) unless LIBTORCH or
    /// LIBTORCH_USE_PYTORCH points at one, and link the build to it
    Setup {
        /// Also install what building the frameworks' CUDA code needs (nvcc 13.0 and libraries to
        /// link for candle, LLVM 23.1 for burn) and check that it compiles, and build the kernel
        /// counter (target/kernel-counter/liblenet_kernels.so, for `lenet train --kernels`)
        #[arg(long)]
        cuda: bool,
        /// Where the CUDA check builds (default: target/cuda, beside the GPU bundle's builds, which
        /// then reuse it; `target` shares the main build's build scripts and unchanged crates,
        /// which is quicker where nothing is built for CUDA afterwards, as in CI)
        #[arg(long, value_name = "DIR", requires = "cuda")]
        target_dir: Option<std::path::PathBuf>,
        /// Check only these frameworks' CUDA builds, or none (default: every framework with CUDA
        /// code of its own, candle and burn; on 2 cores candle's takes about 18 minutes, nvcc
        /// compiling its kernels, and burn's about 8)
        #[arg(
            long,
            value_name = "FRAMEWORK",
            value_delimiter = ',',
            requires = "cuda"
        )]
        check: Option<Vec<String>>,
    },
    /// Run every (framework, model) in its own process and tabulate accuracy and time per epoch
    Compare(Box<compare::Args>),
    /// Rebuild every results folder's summary.md, charts and the index from the raw JSON reports in
    /// it (and remove local paths from the commands they record), the model listings of
    /// docs/models.md from the models' sources, and the front page's verdict from the results
    Report {
        #[arg(long, default_value = "results")]
        out: std::path::PathBuf,
        /// First copy the run reports of these results folders (the OUT of each `compare --shard`
        /// slice) into OUT, each under the same machine and tag; a run that two of them hold with
        /// different contents is an error
        #[arg(long, value_name = "DIR", num_args = 1..)]
        merge: Vec<std::path::PathBuf>,
        /// Use this `lenet` binary for the registry instead of building one
        #[arg(long, value_name = "FILE")]
        lenet: Option<std::path::PathBuf>,
    },
    /// Set up, then run the whole test suite (release build); extra arguments go to `cargo test`
    Test {
        /// Test a build with only these frameworks (framework features, see `cargo xtask
        /// frameworks`): the lenet package's tests in that build, beside the other crates' (without
        /// tch: no libtorch, tch's crate left out, and no tests of the Python rows, which are held
        /// to tch)
        #[arg(long, value_delimiter = ',', value_name = "F,...")]
        features: Option<Vec<String>>,
        /// Also turn on these features of the root Cargo.toml beyond the frameworks' (burn-cpu:
        /// burn's tuned profile on its compiled CPU backend; burn-rayon), with what they need
        /// (LLVM 23.1 for burn-cpu, as `cargo xtask build` gives it). burn-cpu's first run of a
        /// model compiles and tunes its kernels for many minutes on a small machine
        #[arg(long, value_delimiter = ',', value_name = "F,...")]
        with: Option<Vec<String>>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Lint every crate and target with clippy (release, warnings are errors), the build with all
    /// frameworks or with only those of --features
    Lint {
        /// Lint a build with only these frameworks (as `test --features`)
        #[arg(long, value_delimiter = ',', value_name = "F,...")]
        features: Option<Vec<String>>,
    },
    /// Measure what each framework costs before its first step: a cold release build of lenet with
    /// it alone, a rebuild, binary and native library sizes, dependency counts, and the first
    /// epochs of this machine's comparison, into OUT/MACHINE/build-cost/ (takes tens of minutes)
    Cost(cost::Args),
    /// Print the framework features of the root Cargo.toml, one per line, in its order (the one
    /// list of frameworks that xtask, CI and the scripts read)
    Frameworks,
    /// Build lenet with cargo features beyond the frameworks' (burn-cpu: burn's compiled CPU
    /// backend for its tuned profile; burn-rayon), with what the build needs (LLVM 23.1 for burn's
    /// compiled backends), into target/lenet-FEATURES
    Build(build::Args),
    /// Build a self-contained folder that runs the comparison on a machine with only python3, torch
    /// 2.11 and the NVIDIA libraries (no Rust toolchain)
    Bundle(bundle::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup {
            cuda,
            target_dir,
            check,
        } => setup_command(cuda, target_dir.as_deref(), check.as_deref()),
        Command::Compare(args) => compare::run(*args),
        Command::Test {
            features,
            with,
            args,
        } => test(
            features.as_deref(),
            with.as_deref().unwrap_or_default(),
            &args,
        ),
        Command::Report { out, merge, lenet } => report::run(&out, &merge, lenet.as_deref()),
        Command::Bundle(args) => bundle::run(args).map(|()| true),
        Command::Build(args) => build::run(args).map(|_| true),
        Command::Cost(args) => cost::run(args),
        Command::Lint { features } => lint(features.as_deref()),
        Command::Frameworks => setup::framework_features().map(|f| {
            for name in f {
                println!("{name}");
            }
            true
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // Ctrl-C: what was kept is not an error, but the comparison is not complete either.
        Err(e) if e.is::<compare::Interrupted>() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn setup_command(
    cuda: bool,
    target_dir: Option<&std::path::Path>,
    check: Option<&[String]>,
) -> Result<bool> {
    let env = setup::run()?;
    println!("libtorch: {}", env.libtorch.display());
    println!("python:   {}", env.python.display());
    if !cuda {
        return Ok(true);
    }
    // The CUDA builds the registry asks for (candle's and burn's CUDA code go into separate
    // binaries, see the root Cargo.toml), known before anything is downloaded.
    let lenet = env.build_lenet()?;
    let builds = bundle::checked_builds(&compare::catalogue(&lenet)?, check)?;
    let toolkit = cuda::setup()?;
    println!("cuda:     {}", toolkit.root.display());
    let counter = counter::build(&toolkit, &setup::root().join(counter::OUT_DIR))?;
    println!("counter:  {} (lenet train --kernels)", counter.display());
    let llvm = llvm::setup()?;
    println!("llvm:     {}", llvm.prefix.display());
    for build in builds {
        let mut cmd = env.cargo();
        // `--workspace`: the features every other workspace build resolves, plus the CUDA ones,
        // so that only the crates CUDA changes are checked again in a folder that holds those
        // builds (CI's `--target-dir target`).
        cmd.args([
            "check",
            "--release",
            "--workspace",
            "--features",
            &build.features.join(","),
            "--all-targets",
        ])
        .arg("--target-dir")
        .arg(target_dir.unwrap_or(std::path::Path::new(bundle::CUDA_TARGET_DIR)));
        toolkit.apply(&mut cmd);
        if build.llvm {
            llvm.apply(&mut cmd);
        }
        if !setup::status(&mut cmd)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn lint(features: Option<&[String]>) -> Result<bool> {
    let features = setup::Features::new("--features", features)?;
    if features.has_tch() {
        // libtorch for torch-sys's build script.
        setup::run()?;
    }
    let mut cmd = setup::cargo();
    cmd.args(["clippy", "--release", "--all-targets"])
        .args(features.cargo_args())
        .args(["--", "-D", "warnings"]);
    setup::status(&mut cmd)
}

fn test(features: Option<&[String]>, with: &[String], args: &[String]) -> Result<bool> {
    let llvm = build::needs_llvm(setup::workspace()?, "--with", with)?;
    let features = setup::Features::new("--features", features)?.with_extra("--with", with)?;
    let mut cmd = setup::cargo();
    if llvm {
        let llvm = llvm::setup()?;
        println!("llvm: {}", llvm.prefix.display());
        llvm.apply(&mut cmd);
    }
    if features.has_tch() {
        let env = setup::run()?;
        // The Python with torch that the reference's tests run (tests/reference.rs).
        cmd.env("LENET_PYTHON", &env.python);
    }
    // The whole workspace's tests, the root's with the frameworks chosen (see `cargo_args`).
    cmd.args(["test", "--release"]).args(features.cargo_args());
    cmd.args(args);
    // Test binaries run in their own package's folder: a relative MNIST_DIR must not depend on that.
    if let Some(dir) = std::env::var_os("MNIST_DIR").filter(|d| !d.is_empty()) {
        let dir = std::path::PathBuf::from(dir);
        if let Ok(abs) = std::path::absolute(&dir) {
            cmd.env("MNIST_DIR", abs);
        }
    }
    setup::status(&mut cmd)
}
