//! `cargo xtask compare`: one process per (framework, model) run, each report written as soon as the
//! run ends, then the table. A run that crashes, aborts or is killed without a report becomes a
//! failed report here, so a comparison is never lost to one run; Ctrl-C stops the run in progress,
//! keeps every finished report and rewrites the summary from them; `--resume` skips the runs that
//! already finished with the same settings.
//!
//! This is the running half; the frameworks come from the binary it runs (`lenet frameworks
//! --json`), and the presenting half (summary, charts, index) is `results::folder`.

mod child;
mod plan;
mod select;
pub mod shard;

use anyhow::{bail, Context, Result};
use common::framework::{FrameworkInfo, Runner};
use common::harness::{DeviceRequest, Profile, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE};
use common::{Dataset, ModelKind};
use reports::{Catalogue, Environment, Plan, RunReport};
use results::folder::{self, write_picture};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::setup;
pub use common::cli::RunArgs;

use child::*;
pub use plan::*;
pub use select::catalogue;
use select::*;

#[derive(clap::Args, Clone)]
pub struct Args {
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

/// Set by Ctrl-C or SIGTERM: the run in progress is stopped and no other starts.
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What an interrupted comparison kept.
#[derive(Debug)]
pub struct Interrupted {
    pub kept: usize,
    pub dir: PathBuf,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted: the run in progress was stopped; {} finished report{} in {} {} kept and \
             its summary.md is rebuilt from them (add --resume to the same command to finish the \
             rest)",
            self.kept,
            if self.kept == 1 { "" } else { "s" },
            self.dir.display(),
            if self.kept == 1 { "is" } else { "are" }
        )
    }
}

impl std::error::Error for Interrupted {}

/// Runs the comparison; `Ok(false)` when a run failed, an [`Interrupted`] error after Ctrl-C.
pub fn run(args: Args) -> Result<bool> {
    check(&args)?;
    let shard = args
        .shard
        .as_deref()
        .map(|s| shard::Shard::parse(s, |k| std::env::var(k).ok()))
        .transpose()?;
    let (data_dir, data) = check_data(&args)?;
    let mut args = args;
    args.run.data_dir = Some(data_dir);
    let tools = tools(&args)?;
    // What the plan file's batch orders must cover: the training examples a run will have.
    let examples = data.train.len();
    let test_examples = data.test.len();
    let env = Environment::capture();
    let machine = args.machine.clone().unwrap_or_else(|| {
        env.machine_slug(args.run.device != DeviceRequest::Cpu && env.gpu.is_some())
    });
    let cuda = args.run.device != DeviceRequest::Cpu && env.gpu.is_some();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Points for CUDA where CUDA is asked for, found or not (its runs then fail as such).
    let points = points(&args, cuda || args.run.device == DeviceRequest::Cuda, cores);
    let name_threads = points
        .iter()
        .map(|p| p.threads)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    let tag = tag(&args);
    let mut dir = args.out.join(&machine);
    if let Some(tag) = &tag {
        dir = dir.join(tag);
    }
    check_folder_plan(&dir, &args)?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the results folder {}", dir.display()))?;
    common::fsio::check_writable_dir(&dir)
        .with_context(|| format!("cannot write into the results folder {}", dir.display()))?;
    let samples = results::plots::samples(args.run.dataset, &data.test, 8)?;
    drop(data);
    write_picture(&dir, &samples)?;
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
        eprintln!("warning: Ctrl-C cannot be caught ({e}): it will end the comparison at once");
    }
    let mut failed = Vec::new();
    // Each run's place in the comparison's fixed order, which a shard's slice is taken from.
    let mut position = 0usize;
    if let Some(shard) = shard {
        let total =
            args.models.len() * tools.frameworks.len() * points.len() * args.repeats as usize;
        let mine = (0..total).filter(|&p| shard.takes(p)).count();
        eprintln!("shard {shard}: {mine} of the comparison's {total} runs");
    }
    'runs: for model in &args.models {
        for info in &tools.frameworks {
            let framework = &info.name;
            for point in &points {
                for repeat in 1..=args.repeats {
                    if INTERRUPTED.load(Ordering::SeqCst) {
                        break 'runs;
                    }
                    position += 1;
                    if shard.is_some_and(|s| !s.takes(position - 1)) {
                        continue;
                    }
                    let name = report_name(
                        framework,
                        *model,
                        args.run.dataset,
                        *point,
                        name_threads,
                        repeat,
                    );
                    let path = match &args.kernels {
                        Some(_) => folder::kernel_pass_file(&dir.join(name)),
                        None => dir.join(name),
                    };
                    let seed = args.run.seed + u64::from(repeat - 1);
                    let spec = spec(&args, framework, *model, seed, *point);
                    if args.resume {
                        match earlier(&path, &spec) {
                            Earlier::Finished => {
                                eprintln!(
                                    "== {}: kept {} (finished earlier with the same settings)",
                                    describe(&spec),
                                    path.display()
                                );
                                continue;
                            }
                            Earlier::Failed(why) if !args.retry_failed => {
                                eprintln!(
                                    "== {}: kept the failed report {} (failed earlier with the \
                                     same settings: {why}; --retry-failed runs it again)",
                                    describe(&spec),
                                    path.display()
                                );
                                failed.push(path);
                                continue;
                            }
                            Earlier::Failed(_) | Earlier::Nothing => {}
                        }
                    }
                    let limit = run_limit(&args, &spec, examples, test_examples);
                    match run_one(&tools, &args, info, &spec, examples, limit, &path)? {
                        Some(report) if !report.succeeded() => failed.push(path),
                        Some(_) => {}
                        None => break 'runs,
                    }
                }
            }
        }
    }
    let title = match &tag {
        Some(tag) => format!("{machine}/{tag}"),
        None => machine.clone(),
    };
    // Each results folder is read once: this one for its summary and the index, the others for the
    // index.
    let this = results::ResultsFolder::load(&dir, &title, &tools.catalogue)?;
    let table = this.write_summary(&tools.catalogue)?;
    println!("\n{table}");
    println!("\nwritten to {}", dir.display());
    let kept = this.reports.len();
    if let Err(e) = write_index(&args.out, this, &tools.catalogue) {
        eprintln!(
            "warning: could not rewrite {}: {e:#}",
            args.out.join("README.md").display()
        );
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Interrupted { kept, dir }.into());
    }
    if !failed.is_empty() {
        eprintln!(
            "{} run{} failed (the FAILED rows say why): {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(failed.is_empty())
}

/// Rewrites the index of `out` with `this` folder as loaded and every other folder read once.
fn write_index(out: &Path, this: results::ResultsFolder, catalogue: &Catalogue) -> Result<()> {
    let mut folders = vec![this];
    for dir in folder::result_dirs(out)? {
        if dir != folders[0].dir {
            folders.push(results::ResultsFolder::load(&dir, "", catalogue)?);
        }
    }
    folder::write_index(out, &folders)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(line: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("compare").chain(line.iter().copied()))
            .unwrap()
            .args
    }

    fn at(batch_size: usize, threads: Option<usize>) -> Point {
        Point {
            batch_size,
            threads,
            profile: Profile::Idiomatic,
        }
    }

    fn tuned(p: Point) -> Point {
        Point {
            profile: Profile::Tuned,
            ..p
        }
    }

    fn info(name: &str, runner: Runner) -> FrameworkInfo {
        FrameworkInfo {
            name: name.into(),
            runner,
            script: None,
            baseline: false,
            compared_by_default: true,
            cuda_available: false,
            cuda_build: None,
            colour: [1, 2, 3],
            defaults: common::framework::FrameworkDefaults::row([name; 8]),
            model_source: None,
            step_tolerance: None,
            parity_reference: false,
        }
    }

    /// A build of burn alone compares burn by default (the Python rows only when named), and a
    /// framework it left out is named with its feature, not as unknown.
    #[test]
    fn a_build_with_some_frameworks_compares_its_own() {
        let catalogue = Catalogue::new(vec![
            info("pytorch", Runner::Python),
            info("burn", Runner::Lenet),
        ])
        .with_not_built(vec![reports::catalogue::NotBuilt {
            name: "tch".into(),
            feature: "tch".into(),
        }]);
        let names = |list: Vec<FrameworkInfo>| list.into_iter().map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(
            names(selected(&args(&[]), &catalogue, false).unwrap()),
            ["burn"]
        );
        assert_eq!(
            names(selected(&args(&[]), &catalogue, true).unwrap()),
            ["pytorch", "burn"]
        );
        assert_eq!(
            names(selected(&args(&["--frameworks", "pytorch,burn"]), &catalogue, false).unwrap()),
            ["pytorch", "burn"]
        );
        let e = selected(&args(&["--frameworks", "tch"]), &catalogue, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tch is not in this lenet build: it needs the cargo feature `tch`"),
            "{e}"
        );
        let e = selected(&args(&["--frameworks", "dfdx"]), &catalogue, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown framework 'dfdx': expected one of pytorch, burn (or rust: every Rust framework)"
        );
        // `rust`: the build's Rust frameworks, each once, beside a name given too.
        assert_eq!(
            names(
                selected(
                    &args(&["--frameworks", "pytorch,rust,burn"]),
                    &catalogue,
                    false
                )
                .unwrap()
            ),
            ["pytorch", "burn"]
        );
    }

    #[test]
    fn both_profiles_run_side_by_side() {
        assert_eq!(
            points(&args(&["--profile", "idiomatic,tuned"]), false, 2),
            [at(32, None), tuned(at(32, None))]
        );
        assert_eq!(
            points(
                &args(&["--profile", "tuned", "--batch-size", "32,64"]),
                false,
                2
            ),
            [tuned(at(32, None)), tuned(at(64, None))]
        );
        let spec = spec(
            &args(&["--profile", "tuned"]),
            "tch",
            ModelKind::LeNet2,
            0,
            tuned(at(32, None)),
        );
        assert_eq!(spec.profile, Profile::Tuned);
        assert_eq!(describe(&spec), "tch lenet2, tuned");
        let name = report_name(
            "tch",
            ModelKind::LeNet2,
            Dataset::Mnist,
            tuned(at(128, None)),
            false,
            2,
        );
        assert_eq!(name, "tch-lenet2-b128-tuned-r2.json");
        for line in [&["--profile", "tuned,tuned"][..], &["--profile", ""]] {
            let parsed =
                Cli::try_parse_from(std::iter::once("compare").chain(line.iter().copied()));
            if let Ok(cli) = parsed {
                assert!(check(&cli.args).is_err(), "{line:?}");
            }
        }
        assert!(Cli::try_parse_from(["compare", "--profile", "fast"]).is_err());
    }

    /// A run's time limit follows the plan: the allowance and 10 ms per image of every epoch,
    /// doubled for a kernel pass; --run-timeout replaces it.
    #[test]
    fn a_runs_time_limit_follows_its_plan() {
        let recipe = RunSpec::recipe("tch", ModelKind::LeNet2);
        let limit = |line: &[&str], spec: &RunSpec, train, test| {
            run_limit(&args(line), spec, train, test).as_secs()
        };
        // 10 epochs of 60,000 + 10,000 images: 7,000 s, and the allowance.
        assert_eq!(limit(&[], &recipe, 60_000, 10_000), 300 + 7_000);
        let short = RunSpec {
            epochs: 1,
            ..recipe.clone()
        };
        assert_eq!(limit(&[], &short, 6_400, 6_400), 300 + 128);
        assert_eq!(
            limit(&["--kernels", "counter.so"], &short, 6_400, 6_400),
            2 * (300 + 128)
        );
        assert_eq!(limit(&["--run-timeout", "90"], &recipe, 60_000, 10_000), 90);
        assert!(Cli::try_parse_from(["compare", "--run-timeout", "0"]).is_err());
        assert!(Cli::try_parse_from(["compare", "--retry-failed"]).is_err());
    }

    #[test]
    fn thread_series_double_up_to_the_cores() {
        assert_eq!(thread_series(1), [1]);
        assert_eq!(thread_series(2), [1, 2]);
        assert_eq!(thread_series(6), [1, 2, 4, 6]);
        assert_eq!(thread_series(16), [1, 2, 4, 8, 16]);
    }

    #[test]
    fn a_comparison_runs_every_batch_size_with_every_thread_count() {
        assert_eq!(points(&args(&[]), false, 2), [at(32, None)]);
        assert_eq!(
            points(
                &args(&["--batch-size", "64,256", "--threads", "1,3"]),
                true,
                2
            ),
            [
                at(64, Some(1)),
                at(64, Some(3)),
                at(256, Some(1)),
                at(256, Some(3))
            ]
        );
        let a = args(&[]);
        assert_eq!((epochs(&a), tag(&a)), (EPOCHS, None));
    }

    #[test]
    fn a_sweep_runs_the_batch_series_then_the_thread_series() {
        let sweep = args(&["--sweep"]);
        assert_eq!(
            points(&sweep, false, 4),
            [
                at(32, None),
                at(128, None),
                at(512, None),
                at(32, Some(1)),
                at(32, Some(2)),
                at(32, Some(4))
            ]
        );
        // On CUDA the threads are not swept, and the batch sizes go further.
        let cuda: Vec<usize> = points(&sweep, true, 4)
            .iter()
            .map(|p| p.batch_size)
            .collect();
        assert_eq!(cuda, SWEEP_BATCH_SIZES_CUDA);
        assert_eq!(
            (epochs(&sweep), tag(&sweep)),
            (SWEEP_EPOCHS, Some("sweep".into()))
        );
        // Each list given replaces its series; --epochs and --tag win.
        let custom = args(&[
            "--sweep",
            "--batch-size",
            "16,32",
            "--threads",
            "2",
            "--epochs",
            "1",
            "--tag",
            "s",
        ]);
        assert_eq!(
            points(&custom, false, 8),
            [at(16, None), at(32, None), at(32, Some(2))]
        );
        assert_eq!((epochs(&custom), tag(&custom)), (1, Some("s".into())));
    }

    #[test]
    fn bad_lists_are_refused() {
        for line in [&["--batch-size", ""][..], &["--threads", ""]] {
            // Refused by clap (not a number) or by the check (an empty list): never run.
            let parsed =
                Cli::try_parse_from(std::iter::once("compare").chain(line.iter().copied()));
            if let Ok(cli) = parsed {
                assert!(check(&cli.args).is_err(), "{line:?}");
            }
        }
        assert!(Cli::try_parse_from(["compare", "--batch-size", "32,x"]).is_err());
        // Each batch size and thread count goes through the shared validation, before any run.
        for line in [
            &["--batch-size", "32,0"][..],
            &["--sweep", "--threads", "2,0"],
        ] {
            let e = check(&args(line)).unwrap_err().to_string();
            assert!(e.contains("must be 1 to"), "{line:?}: {e}");
        }
        assert!(check(&args(&["--sweep"])).is_ok());
    }

    #[test]
    fn report_names_show_what_differs_from_the_recipe() {
        let name = |point, repeat| {
            report_name(
                "tch",
                ModelKind::LeNet3,
                Dataset::Mnist,
                point,
                true,
                repeat,
            )
        };
        assert_eq!(name(at(32, None), 1), "tch-lenet3.json");
        assert_eq!(name(at(128, None), 1), "tch-lenet3-b128.json");
        assert_eq!(name(at(32, Some(2)), 3), "tch-lenet3-t2-r3.json");
        let fashion = at(512, Some(1));
        assert_eq!(
            report_name(
                "pytorch",
                ModelKind::LeNet2,
                Dataset::FashionMnist,
                fashion,
                true,
                1
            ),
            "pytorch-lenet2-fashion-mnist-b512-t1.json"
        );
        // One thread count for the whole comparison: the names stay as they were.
        assert_eq!(
            report_name(
                "tch",
                ModelKind::LeNet2,
                Dataset::Mnist,
                at(32, Some(1)),
                false,
                2
            ),
            "tch-lenet2-r2.json"
        );
    }
}
