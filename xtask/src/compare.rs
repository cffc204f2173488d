//! `cargo xtask compare`: one process per (framework, model) run, each report written as soon as the
//! run ends, then the table. A run that crashes, aborts or is killed without a report becomes a
//! failed report here, so a comparison is never lost to one run; Ctrl-C stops the run in progress,
//! keeps every finished report and rewrites the summary from them; `--resume` skips the runs that
//! already finished with the same settings.
//!
//! This is the running half; the frameworks come from the binary it runs (`lenet frameworks
//! --json`), and the presenting half (summary, charts, index) is `results::folder`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::framework::{FrameworkInfo, Runner};
use common::harness::{
    DeviceRequest, InitKind, Profile, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE,
};
use common::{Dataset, ModelKind};
use results::folder::{self, write_picture};
use results::{Catalogue, Environment, RunReport};

use crate::setup;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Comma-separated frameworks, from those `lenet frameworks` lists (default: every one it marks
    /// "compared by default": pytorch, the Python reference, and tch, candle, burn)
    #[arg(long, value_delimiter = ',')]
    pub frameworks: Option<Vec<String>>,
    /// Comma-separated models: lenet2, lenet3
    #[arg(long, value_delimiter = ',', default_value = "lenet2,lenet3")]
    pub models: Vec<ModelKind>,
    /// mnist or fashion-mnist
    #[arg(long, default_value = "mnist")]
    pub dataset: Dataset,
    /// shared (the same initial weights for every framework) or native (each framework's own
    /// default initialisers; the summary then lists them)
    #[arg(long, default_value = "shared")]
    pub init: InitKind,
    /// Run each (framework, model) N times, with seeds SEED, SEED+1, ...; the table shows mean ± sd
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeats: u32,
    /// auto (CUDA when available), cpu or cuda
    #[arg(long, default_value = "auto")]
    pub device: DeviceRequest,
    /// Epochs per run (default: 10, the recipe's; 2 with --sweep)
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Comma-separated batch sizes: every (framework, model) runs at each (default: 32, the
    /// recipe's; with --sweep, 32,128,512 on the CPU and 32,128,512,2048,8192 on CUDA)
    #[arg(long = "batch-size", value_delimiter = ',', value_name = "N,...")]
    pub batch_sizes: Option<Vec<usize>>,
    /// Train on the first N training images and test on the first N test images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
    /// Folder with the four data files (default: $MNIST_DIR or $FASHION_MNIST_DIR, else a system
    /// folder, else the cache, else a download)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
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
    /// Build lenet with only these frameworks (comma-separated cargo features: tch, candle, burn;
    /// default: all three). A build without tch installs nothing of libtorch, and compares its own
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
    /// Keep the runs whose reports are already in the results folder, finished with the same
    /// settings (framework, model, dataset, seed, epochs, ...), and run only the others
    #[arg(long)]
    pub resume: bool,
    /// Python for the Python rows, with torch (pytorch) and keras and its backend (keras)
    /// (default: the one `setup` installed)
    #[arg(long, value_name = "FILE")]
    pub python: Option<PathBuf>,
    /// The folder with the Python rows' scripts (default: the repository's, as `lenet frameworks`
    /// names them)
    #[arg(long, value_name = "DIR")]
    pub scripts: Option<PathBuf>,
}

struct Tools {
    lenet: PathBuf,
    /// Other binaries for some frameworks.
    lenet_for: Vec<(String, PathBuf)>,
    /// Python, when a Python row runs.
    python: Option<PathBuf>,
    /// What the binary says it holds.
    catalogue: Catalogue,
    /// The frameworks to compare, from the catalogue.
    frameworks: Vec<FrameworkInfo>,
}

impl Tools {
    /// The `lenet` binary that runs `framework`.
    fn lenet(&self, framework: &str) -> &Path {
        self.lenet_for
            .iter()
            .find(|(f, _)| f == framework)
            .map_or(&self.lenet, |(_, file)| file)
    }
}

fn parse_lenet_for(value: &str) -> Result<(String, PathBuf), String> {
    let (framework, file) = value
        .split_once('=')
        .ok_or_else(|| format!("'{value}' is not FRAMEWORK=FILE"))?;
    if framework.is_empty() || file.is_empty() {
        return Err(format!("'{value}' is not FRAMEWORK=FILE"));
    }
    Ok((framework.to_string(), PathBuf::from(file)))
}

/// The frameworks a `lenet` binary holds, and the references beside them.
pub fn catalogue(lenet: &Path) -> Result<Catalogue> {
    let output = Command::new(lenet)
        .args(["frameworks", "--json"])
        .output()
        .with_context(|| format!("cannot start {}", lenet.display()))?;
    if !output.status.success() {
        bail!(
            "`{} frameworks --json` {}: {}",
            lenet.display(),
            ended(output.status),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Catalogue::from_json(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("`{} frameworks --json`", lenet.display()))
}

fn tools(args: &Args) -> Result<Tools> {
    // The project's set-up, checked once, when a binary or Python is not given.
    let mut env: Option<setup::Env> = None;
    let features = setup::Features::new("--features", args.features.as_deref())?;
    let lenet = match &args.lenet {
        Some(l) => l.clone(),
        None if features.is_default() => env.insert(setup::run()?).build_lenet()?,
        None => setup::build_lenet_with(&features)?,
    };
    let catalogue = catalogue(&lenet)?;
    let frameworks = selected(args, &catalogue, features.is_default())?;
    let needs_python = frameworks.iter().any(|f| f.runner == Runner::Python);
    let python = match (&args.python, needs_python) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(match env {
            Some(env) => env.python,
            None => setup::run()?.python,
        }),
        (None, false) => None,
    };
    for (framework, _) in &args.lenet_for {
        if catalogue
            .get(framework)
            .is_none_or(|f| f.runner != Runner::Lenet)
        {
            bail!(
                "--lenet-for: unknown framework '{framework}': the binary runs {}",
                lenet_names(&catalogue)
            );
        }
    }
    Ok(Tools {
        lenet,
        lenet_for: args.lenet_for.clone(),
        python,
        catalogue,
        frameworks,
    })
}

fn lenet_names(catalogue: &Catalogue) -> String {
    catalogue
        .frameworks
        .iter()
        .filter(|f| f.runner == Runner::Lenet)
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The frameworks to compare: those named, or those the catalogue compares by default (of a build
/// with some frameworks alone, its own: the Python rows only when named).
fn selected(
    args: &Args,
    catalogue: &Catalogue,
    every_framework: bool,
) -> Result<Vec<FrameworkInfo>> {
    match &args.frameworks {
        None => Ok(catalogue
            .frameworks
            .iter()
            .filter(|f| f.compared_by_default && (every_framework || f.runner == Runner::Lenet))
            .cloned()
            .collect()),
        Some(names) => names
            .iter()
            .map(|name| {
                if let Some(feature) = catalogue.feature_of(name) {
                    bail!(
                        "{name} is not in this lenet build: it needs the cargo feature `{feature}` \
                         (add it to --features, or leave --features out to build every framework)"
                    );
                }
                catalogue.get(name).cloned().ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown framework '{name}': expected one of {}",
                        catalogue.names().join(", ")
                    )
                })
            })
            .collect(),
    }
}

fn check(args: &Args) -> Result<()> {
    if args.frameworks.as_ref().is_some_and(Vec::is_empty) || args.models.is_empty() {
        bail!("nothing to run: --frameworks and --models need at least one name each");
    }
    if args.repeats == 0 || args.repeats > 1000 {
        bail!("repeats must be 1 to 1000, not {}", args.repeats);
    }
    if let Some(tag) = &args.tag {
        if tag.is_empty() || results::env::slug(tag) != *tag {
            bail!(
                "tag '{tag}' must be lowercase letters, digits and single dashes (for example {})",
                results::env::slug(tag)
            );
        }
    }
    for (what, list) in [
        ("--batch-size", &args.batch_sizes),
        ("--threads", &args.threads),
    ] {
        if list.as_ref().is_some_and(Vec::is_empty) {
            bail!("{what} needs at least one number");
        }
    }
    if args.profiles.is_empty() {
        bail!("--profile needs at least one of idiomatic, tuned");
    }
    for (i, p) in args.profiles.iter().enumerate() {
        if args.profiles[..i].contains(p) {
            bail!("--profile names {p} twice");
        }
    }
    // The settings every run shares, at every batch size and thread count asked for (a sweep's
    // own are valid); which framework does not matter to them.
    for point in points(args, false, 1) {
        spec(args, "", ModelKind::LeNet2, args.seed, point).validate()?;
    }
    Ok(())
}

/// The batch sizes of a sweep on the CPU: past 512 an epoch has too few steps for a steady state
/// at these models' speeds, and the CPU frameworks gain little (README, "Sweeps").
pub const SWEEP_BATCH_SIZES_CPU: [usize; 3] = [32, 128, 512];
/// The batch sizes of a sweep on CUDA: from the recipe's, where every framework is bound by its
/// kernel launches, to where the device is busy.
pub const SWEEP_BATCH_SIZES_CUDA: [usize; 5] = [32, 128, 512, 2048, 8192];
/// Epochs per sweep run: the first compiles and warms up, the second is the steady state measured.
pub const SWEEP_EPOCHS: u32 = 2;

/// One setting of what a comparison can vary besides framework and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub batch_size: usize,
    /// `None`: the framework's own default.
    pub threads: Option<usize>,
    pub profile: Profile,
}

/// 1, 2, 4, ... below `cores`, then `cores`.
pub fn thread_series(cores: usize) -> Vec<usize> {
    let mut out: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n < cores)
        .collect();
    out.push(cores.max(1));
    out
}

/// What each (framework, model) runs at. Without `--sweep`: every batch size with every thread
/// count given (the recipe's batch size and each framework's threads when none are). With
/// `--sweep`: the batch series at each framework's own threads, then, on the CPU, the thread
/// series at the recipe's batch size; `cuda` says whether the runs will be on CUDA, `cores` how
/// many the machine has.
pub fn points(args: &Args, cuda: bool, cores: usize) -> Vec<Point> {
    // Each point in every profile asked for, one after the other, so that they sit side by side.
    base_points(args, cuda, cores)
        .into_iter()
        .flat_map(|p| {
            args.profiles
                .iter()
                .map(move |&profile| Point { profile, ..p })
        })
        .collect()
}

/// The points of [`points`] in the idiomatic profile.
fn base_points(args: &Args, cuda: bool, cores: usize) -> Vec<Point> {
    let threads: Vec<Option<usize>> = match &args.threads {
        Some(list) => list.iter().map(|&n| Some(n)).collect(),
        None => vec![None],
    };
    if !args.sweep {
        let batches = args.batch_sizes.clone().unwrap_or(vec![BATCH_SIZE]);
        return batches
            .iter()
            .flat_map(|&batch_size| {
                threads.iter().map(move |&threads| Point {
                    batch_size,
                    threads,
                    profile: Profile::Idiomatic,
                })
            })
            .collect();
    }
    let batches = args.batch_sizes.clone().unwrap_or_else(|| {
        if cuda {
            SWEEP_BATCH_SIZES_CUDA.to_vec()
        } else {
            SWEEP_BATCH_SIZES_CPU.to_vec()
        }
    });
    let mut out: Vec<Point> = batches
        .into_iter()
        .map(|batch_size| Point {
            batch_size,
            threads: None,
            profile: Profile::Idiomatic,
        })
        .collect();
    if !cuda {
        let series = match &args.threads {
            Some(list) => list.clone(),
            None => thread_series(cores),
        };
        for n in series {
            let p = Point {
                batch_size: BATCH_SIZE,
                threads: Some(n),
                profile: Profile::Idiomatic,
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The epochs of each run: the ones asked for, else the recipe's (a sweep's own without it).
fn epochs(args: &Args) -> u32 {
    args.epochs
        .unwrap_or(if args.sweep { SWEEP_EPOCHS } else { EPOCHS })
}

/// The results subfolder: the one asked for, `sweep` for a sweep, else none.
fn tag(args: &Args) -> Option<String> {
    args.tag
        .clone()
        .or_else(|| args.sweep.then(|| "sweep".to_string()))
}

/// Finds MNIST (downloading it into the cache if that is where it goes) and checks every file once,
/// so that bad data stops the comparison with one clear error before any run starts. Returns the
/// folder, which every run is then given explicitly.
fn check_data(args: &Args) -> Result<(PathBuf, common::Mnist)> {
    let dir = results::data::locate(args.dataset, args.data_dir.as_deref())?;
    let mut data = common::Mnist::load_dir(args.dataset, &dir)?;
    if let Some(n) = args.limit {
        data.check_limit(n, common::SplitKind::Train)?;
        data.limit(n);
    }
    Ok((dir, data))
}

/// Set by Ctrl-C or SIGTERM: the run in progress is stopped and no other starts.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

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
    let (data_dir, data) = check_data(&args)?;
    let args = Args {
        data_dir: Some(data_dir),
        ..args
    };
    let tools = tools(&args)?;
    // What the plan file's batch orders must cover: the training examples a run will have.
    let examples = data.train.len();
    let env = Environment::capture();
    let machine = args.machine.clone().unwrap_or_else(|| {
        env.machine_slug(args.device != DeviceRequest::Cpu && env.gpu.is_some())
    });
    let cuda = args.device != DeviceRequest::Cpu && env.gpu.is_some();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Points for CUDA where CUDA is asked for, found or not (its runs then fail as such).
    let points = points(&args, cuda || args.device == DeviceRequest::Cuda, cores);
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
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the results folder {}", dir.display()))?;
    common::fsio::check_writable_dir(&dir)
        .with_context(|| format!("cannot write into the results folder {}", dir.display()))?;
    let samples = results::plots::samples(args.dataset, &data.test, 8)?;
    drop(data);
    write_picture(&dir, &samples)?;
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
        eprintln!("warning: Ctrl-C cannot be caught ({e}): it will end the comparison at once");
    }
    let mut failed = Vec::new();
    'runs: for model in &args.models {
        for info in &tools.frameworks {
            let framework = &info.name;
            for point in &points {
                for repeat in 1..=args.repeats {
                    if INTERRUPTED.load(Ordering::SeqCst) {
                        break 'runs;
                    }
                    let name = report_name(
                        framework,
                        *model,
                        args.dataset,
                        *point,
                        name_threads,
                        repeat,
                    );
                    let path = dir.join(name);
                    let seed = args.seed + u64::from(repeat - 1);
                    let spec = spec(&args, framework, *model, seed, *point);
                    if args.resume && finished_earlier(&path, &spec) {
                        eprintln!(
                            "== {}: kept {} (finished earlier with the same settings)",
                            describe(&spec),
                            path.display()
                        );
                        continue;
                    }
                    match run_one(&tools, &args, info, &spec, examples, &path)? {
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

/// Whether `path` holds a successful report of exactly `spec` (what `--resume` keeps).
fn finished_earlier(path: &Path, spec: &RunSpec) -> bool {
    match RunReport::read(path) {
        Ok(r) => r.succeeded() && r.spec == *spec,
        Err(_) => false,
    }
}

/// `FRAMEWORK-MODEL[-DATASET][-bBATCH][-tTHREADS][-tuned][-rK].json`: MNIST, the recipe's batch
/// size, the idiomatic profile and the first repeat keep the short name; the threads are in it when the comparison runs several
/// thread counts (`name_threads`), so that a plain `--threads 1` keeps the plain names.
fn report_name(
    framework: &str,
    model: ModelKind,
    dataset: Dataset,
    point: Point,
    name_threads: bool,
    repeat: u32,
) -> String {
    let mut name = format!("{framework}-{model}");
    if dataset != Dataset::Mnist {
        name.push_str(&format!("-{dataset}"));
    }
    if point.batch_size != BATCH_SIZE {
        name.push_str(&format!("-b{}", point.batch_size));
    }
    if let (true, Some(threads)) = (name_threads, point.threads) {
        name.push_str(&format!("-t{threads}"));
    }
    if !point.profile.is_idiomatic() {
        name.push_str(&format!("-{}", point.profile));
    }
    if repeat > 1 {
        name.push_str(&format!("-r{repeat}"));
    }
    name + ".json"
}

fn spec(args: &Args, framework: &str, model: ModelKind, seed: u64, point: Point) -> RunSpec {
    RunSpec {
        framework: framework.to_string(),
        model,
        dataset: args.dataset,
        init: args.init,
        device: args.device,
        epochs: epochs(args),
        batch_size: point.batch_size,
        learning_rate: LEARNING_RATE,
        seed,
        limit: args.limit,
        threads: point.threads,
        profile: point.profile,
    }
}

/// `FRAMEWORK MODEL`, with the batch size, threads and profile when they are not the defaults.
fn describe(spec: &RunSpec) -> String {
    let mut text = format!("{} {}", spec.framework, spec.model);
    if spec.batch_size != BATCH_SIZE {
        text.push_str(&format!(", batch {}", spec.batch_size));
    }
    if let Some(threads) = spec.threads {
        text.push_str(&format!(
            ", {threads} thread{}",
            if threads == 1 { "" } else { "s" }
        ));
    }
    if !spec.profile.is_idiomatic() {
        text.push_str(&format!(", {}", spec.profile));
    }
    text
}

/// Runs one (framework, model, seed) in its own process and returns its report: the one the process
/// wrote, or a failed one that says how the process ended. `None` when Ctrl-C stopped it (no report
/// is left for it then). A Python reference first gets its plan file (the shared weights and the
/// batch orders over `examples` training examples) from `lenet plan`.
fn run_one(
    tools: &Tools,
    args: &Args,
    info: &FrameworkInfo,
    spec: &RunSpec,
    examples: usize,
    report_path: &Path,
) -> Result<Option<RunReport>> {
    let framework = spec.framework.as_str();
    let model = spec.model;
    // A report left by an earlier run must not pass for this one.
    let _ = std::fs::remove_file(report_path);
    let plan = report_path.with_extension("plan.safetensors");
    let failed = |reason: String| -> Result<Option<RunReport>> {
        let r = RunReport::failed(spec.clone(), Environment::capture(), reason);
        r.write(report_path)?;
        Ok(Some(r))
    };
    eprintln!("== {}", describe(spec));
    let mut cmd = match (info.runner, &tools.python) {
        (Runner::Python, Some(python)) => {
            let mut planner = Command::new(&tools.lenet);
            planner
                .args(["plan", "--model", model.name()])
                .args(["--seed", &spec.seed.to_string()])
                .args(["--epochs", &spec.epochs.to_string()])
                .args(["--examples", &examples.to_string()])
                .arg("--out")
                .arg(&plan);
            match run_child(&mut planner) {
                Ok(Some(status)) if status.success() => {}
                Ok(Some(status)) => {
                    return failed(format!(
                        "`lenet plan` (the reference run's weights and batch order) {}",
                        ended(status)
                    ))
                }
                Ok(None) => return Ok(None),
                Err(e) => return failed(format!("{e:#}")),
            }
            let script = match (&args.scripts, &info.script) {
                (Some(dir), Some(s)) => dir.join(Path::new(s).file_name().unwrap_or_default()),
                (None, Some(s)) => setup::root().join(s),
                (_, None) => return failed(format!("{framework} names no script")),
            };
            let mut cmd = Command::new(python);
            cmd.arg(script).arg("--plan").arg(&plan);
            cmd.env("PYTHONUNBUFFERED", "1");
            cmd
        }
        (Runner::Python, None) => return failed(format!("no Python to run {framework} with")),
        (Runner::Lenet, _) => {
            let mut cmd = Command::new(tools.lenet(framework));
            cmd.arg("train");
            cmd
        }
    };
    cmd.args(spec.to_args());
    if let Some(dir) = &args.data_dir {
        cmd.arg("--data-dir").arg(dir);
    }
    cmd.arg("--out").arg(report_path);
    let status = run_child(&mut cmd);
    let _ = std::fs::remove_file(&plan);
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = std::fs::remove_file(report_path);
            return Ok(None);
        }
        Err(e) => return failed(format!("{e:#}")),
    };
    match RunReport::read(report_path) {
        Ok(r) if r.spec == *spec => Ok(Some(r)),
        _ => failed(format!(
            "the run process {} and left no report",
            ended(status)
        )),
    }
}

/// Starts `cmd` and waits for it; `Ok(None)` when Ctrl-C came first (the process is then stopped).
fn run_child(cmd: &mut Command) -> Result<Option<ExitStatus>> {
    let mut child: Child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))?;
    loop {
        let status = child.try_wait().context("cannot wait for a run process")?;
        if let Some(status) = status {
            // Ctrl-C at a terminal reaches the run process too, which may end before the handler
            // has set the flag: give the handler a moment to tell that apart from a crash.
            if signal(status).is_some() {
                std::thread::sleep(Duration::from_millis(300));
            }
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Ok(None);
            }
            return Ok(Some(status));
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
fn signal(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
fn signal(_: ExitStatus) -> Option<i32> {
    None
}

/// How a process ended, for a failed report.
fn ended(status: ExitStatus) -> String {
    match (status.code(), signal(status)) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(9)) => "was killed (SIGKILL: killed from outside, or out of memory)".into(),
        (None, Some(6)) => "aborted (SIGABRT)".into(),
        (None, Some(11)) => "crashed (SIGSEGV)".into(),
        (None, Some(n)) => format!("was killed by signal {n}"),
        (None, None) => format!("ended ({status})"),
    }
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
        .with_not_built(vec![results::catalogue::NotBuilt {
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
        assert_eq!(e, "unknown framework 'dfdx': expected one of pytorch, burn");
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
