//! `cargo xtask compare`: one process per (framework, model) run, each report written as soon as the
//! run ends, then the table. A run that crashes, aborts or is killed without a report becomes a
//! failed report here, so a comparison is never lost to one run; Ctrl-C stops the run in progress,
//! keeps every finished report and rewrites the summary from them; `--resume` skips the runs that
//! already finished with the same settings.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::harness::{DeviceRequest, InitKind, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE};
use common::report::{Environment, RunReport};
use common::summary;
use common::{Dataset, ModelKind};

use crate::setup;

/// Frameworks `compare` knows; `pytorch` is the Python reference.
pub const FRAMEWORKS: &[&str] = &["pytorch", "tch", "candle", "candle-firstmax", "burn"];

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Comma-separated frameworks: pytorch (the Python reference), tch, candle, candle-firstmax
    /// (candle with a max-pool whose gradient matches PyTorch's), burn
    #[arg(long, value_delimiter = ',', default_value = "pytorch,tch,candle,burn")]
    pub frameworks: Vec<String>,
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
    #[arg(long, default_value_t = EPOCHS)]
    pub epochs: u32,
    /// Train on the first N training images and test on the first N test images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU threads for every framework (default: each framework's own default)
    #[arg(long)]
    pub threads: Option<usize>,
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
    /// Python with torch for the reference run (default: the one `setup` installed)
    #[arg(long, value_name = "FILE")]
    pub python: Option<PathBuf>,
    /// The reference script (default: python/reference.py in the repository)
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
}

struct Tools {
    lenet: PathBuf,
    /// Other binaries for some frameworks.
    lenet_for: Vec<(String, PathBuf)>,
    python: PathBuf,
    reference: PathBuf,
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
    if !FRAMEWORKS.contains(&framework) || framework == "pytorch" {
        return Err(format!(
            "unknown framework '{framework}': expected one of {}",
            FRAMEWORKS[1..].join(", ")
        ));
    }
    if file.is_empty() {
        return Err(format!("'{value}' names no file"));
    }
    Ok((framework.to_string(), PathBuf::from(file)))
}

fn tools(args: &Args) -> Result<Tools> {
    let root = setup::root();
    let reference = args
        .reference
        .clone()
        .unwrap_or_else(|| root.join("python").join("reference.py"));
    let needs_python = args.frameworks.iter().any(|f| f == "pytorch");
    if let Some(lenet) = &args.lenet {
        if args.python.is_some() || !needs_python {
            return Ok(Tools {
                lenet: lenet.clone(),
                lenet_for: args.lenet_for.clone(),
                python: args.python.clone().unwrap_or_else(|| "python3".into()),
                reference,
            });
        }
    }
    let env = setup::run()?;
    let lenet = match &args.lenet {
        Some(l) => l.clone(),
        None => env.build_release(&["lenet-compare"])?.join("lenet"),
    };
    Ok(Tools {
        lenet,
        lenet_for: args.lenet_for.clone(),
        python: args.python.clone().unwrap_or(env.python),
        reference,
    })
}

fn check(args: &Args) -> Result<()> {
    for f in &args.frameworks {
        if !FRAMEWORKS.contains(&f.as_str()) {
            bail!(
                "unknown framework '{f}': expected one of {}",
                FRAMEWORKS.join(", ")
            );
        }
    }
    if args.frameworks.is_empty() || args.models.is_empty() {
        bail!("nothing to run: --frameworks and --models need at least one name each");
    }
    if args.repeats == 0 || args.repeats > 1000 {
        bail!("repeats must be 1 to 1000, not {}", args.repeats);
    }
    if let Some(tag) = &args.tag {
        if tag.is_empty() || common::report::slug(tag) != *tag {
            bail!(
                "tag '{tag}' must be lowercase letters, digits and single dashes (for example {})",
                common::report::slug(tag)
            );
        }
    }
    let probe = RunSpec {
        epochs: args.epochs,
        limit: args.limit,
        threads: args.threads,
        ..RunSpec::recipe("tch", ModelKind::LeNet2)
    };
    probe.validate().map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Finds MNIST (downloading it into the cache if that is where it goes) and checks every file once,
/// so that bad data stops the comparison with one clear error before any run starts. Returns the
/// folder, which every run is then given explicitly.
fn check_data(args: &Args) -> Result<(PathBuf, common::Mnist)> {
    let dir = common::mnist::locate(args.dataset, args.data_dir.as_deref())?;
    let mut data = common::Mnist::load_dir(&dir)?;
    data.dataset = args.dataset;
    if let Some(n) = args.limit {
        data.check_limit(n, common::SplitKind::Train)?;
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
    let env = Environment::capture();
    let machine = args.machine.clone().unwrap_or_else(|| {
        env.machine_slug(args.device != DeviceRequest::Cpu && env.gpu.is_some())
    });
    let mut dir = args.out.join(&machine);
    if let Some(tag) = &args.tag {
        dir = dir.join(tag);
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the results folder {}", dir.display()))?;
    common::report::check_writable_dir(&dir)
        .with_context(|| format!("cannot write into the results folder {}", dir.display()))?;
    let samples =
        common::plots::samples(args.dataset, &data.test, 8).map_err(anyhow::Error::msg)?;
    drop(data);
    write_picture(&dir, &samples)?;
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
        eprintln!("warning: Ctrl-C cannot be caught ({e}): it will end the comparison at once");
    }
    let mut failed = Vec::new();
    'runs: for model in &args.models {
        for framework in &args.frameworks {
            for repeat in 1..=args.repeats {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    break 'runs;
                }
                let path = dir.join(report_name(framework, *model, args.dataset, repeat));
                let seed = args.seed + u64::from(repeat - 1);
                let spec = spec(&args, framework, *model, seed);
                if args.resume && finished_earlier(&path, &spec) {
                    eprintln!(
                        "== {framework} {model}: kept {} (finished earlier with the same settings)",
                        path.display()
                    );
                    continue;
                }
                match run_one(&tools, &args, &spec, &path)? {
                    Some(report) if !report.succeeded() => failed.push(path),
                    Some(_) => {}
                    None => break 'runs,
                }
            }
        }
    }
    let title = match &args.tag {
        Some(tag) => format!("{machine}/{tag}"),
        None => machine.clone(),
    };
    let table = write_summary(&dir, &title)?;
    println!("\n{table}");
    println!("\nwritten to {}", dir.display());
    if let Err(e) = write_index(&args.out) {
        eprintln!(
            "warning: could not rewrite {}: {e:#}",
            args.out.join("README.md").display()
        );
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        let kept = collect(&dir)?.len();
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

/// Whether `path` holds a successful report of exactly `spec` (what `--resume` keeps).
fn finished_earlier(path: &Path, spec: &RunSpec) -> bool {
    match RunReport::read(path) {
        Ok(r) => r.succeeded() && r.spec == *spec,
        Err(_) => false,
    }
}

/// `FRAMEWORK-MODEL[-DATASET][-rK].json`: MNIST and the first repeat keep the short name.
fn report_name(framework: &str, model: ModelKind, dataset: Dataset, repeat: u32) -> String {
    let mut name = format!("{framework}-{model}");
    if dataset != Dataset::Mnist {
        name.push_str(&format!("-{dataset}"));
    }
    if repeat > 1 {
        name.push_str(&format!("-r{repeat}"));
    }
    name + ".json"
}

fn write_picture(dir: &Path, picture: &common::plots::Picture) -> Result<()> {
    let path = dir.join(&picture.file);
    common::report::write_atomic(&path, picture.svg.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Rebuilds `summary.md` in a results folder from the reports there; returns the table.
/// `title` names the folder: the machine, and the tag if there is one.
pub fn write_summary(dir: &Path, title: &str) -> Result<String> {
    let reports = collect(dir)?;
    let table = summary::table(&reports);
    let machine = title;
    let charts = common::plots::charts(&reports).map_err(anyhow::Error::msg)?;
    for picture in &charts {
        write_picture(dir, picture)?;
    }
    let mut text = summary_markdown(machine, &reports, &table);
    text.push_str(&pictures_markdown(dir, &charts));
    common::report::write_atomic(&dir.join("summary.md"), text.as_bytes())
        .with_context(|| format!("cannot write {}", dir.join("summary.md").display()))?;
    Ok(table)
}

/// The pictures in a results folder (the charts just drawn, and any sample grids), as Markdown.
fn pictures_markdown(dir: &Path, charts: &[common::plots::Picture]) -> String {
    let mut text = String::new();
    let samples: Vec<String> = Dataset::ALL
        .iter()
        .map(|d| format!("{d}-samples.svg"))
        .filter(|f| dir.join(f).is_file())
        .collect();
    if charts.is_empty() && samples.is_empty() {
        return text;
    }
    text.push_str("\n## Pictures\n\n");
    for file in samples {
        text.push_str(&format!("![sample images]({file})\n\n"));
    }
    for picture in charts {
        text.push_str(&format!("![{}]({})\n\n", picture.title, picture.file));
    }
    text
}

/// Every folder under `out` that holds run reports, at any depth.
pub fn result_dirs(out: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut has_reports = false;
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                has_reports = true;
            }
        }
        if has_reports {
            found.push(dir);
        }
    }
    found.sort();
    Ok(found)
}

/// `cargo xtask report`: rebuilds every results folder's `summary.md` and charts from its raw
/// reports, redraws the sample grids where the dataset is at hand, and rewrites the index
/// `OUT/README.md`.
pub fn report(out: &Path) -> Result<bool> {
    // Each dataset is read and its sample grid drawn once, whatever the number of folders.
    let mut samples: std::collections::BTreeMap<Dataset, Option<common::plots::Picture>> =
        std::collections::BTreeMap::new();
    for dir in result_dirs(out)? {
        let reports = collect(&dir)?;
        let mut datasets: Vec<Dataset> = reports.iter().map(|r| r.spec.dataset).collect();
        datasets.sort();
        datasets.dedup();
        for dataset in datasets {
            if let std::collections::btree_map::Entry::Vacant(slot) = samples.entry(dataset) {
                let picture = match common::mnist::resolve_dataset_dir(dataset, None)
                    .ok()
                    .filter(|(d, _)| d.is_dir())
                    .and_then(|(d, _)| common::Mnist::load_dir(&d).ok())
                {
                    Some(data) => Some(
                        common::plots::samples(dataset, &data.test, 8)
                            .map_err(anyhow::Error::msg)?,
                    ),
                    None => None,
                };
                slot.insert(picture);
            }
            let file = dir.join(format!("{dataset}-samples.svg"));
            match &samples[&dataset] {
                Some(picture) => write_picture(&dir, picture)?,
                None if file.is_file() => eprintln!(
                    "{} not found here: kept {}",
                    dataset.title(),
                    file.display()
                ),
                None => eprintln!(
                    "{} not found here: no sample images in {}",
                    dataset.title(),
                    dir.display()
                ),
            }
        }
        let title = dir
            .strip_prefix(out)
            .unwrap_or(&dir)
            .to_string_lossy()
            .replace('\\', "/");
        write_summary(&dir, &title)?;
        println!("rewrote {}", dir.join("summary.md").display());
    }
    write_index(out)?;
    println!("rewrote {}", out.join("README.md").display());
    Ok(true)
}

/// `OUT/README.md`: each results folder with what it holds.
pub fn write_index(out: &Path) -> Result<()> {
    let mut text = String::from(
        "# Results\n\nEach folder holds one comparison on one machine: the raw JSON report of every \
         run, `summary.md` (the table, the machine, the versions) and the pictures. `cargo xtask \
         report` rebuilds the summaries, pictures and this list from the JSON.\n\n\
         | folder | machine | dataset | frameworks | models | epochs | runs |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for dir in result_dirs(out)? {
        let reports = collect(&dir)?;
        let Some(first) = reports.first() else {
            continue;
        };
        let rel = dir.strip_prefix(out).unwrap_or(&dir);
        let link = rel.to_string_lossy().replace('\\', "/");
        let machine = match &first.environment.gpu {
            Some(gpu) if reports.iter().any(|r| r.device() == "cuda") => gpu.clone(),
            _ => format!(
                "{} ({} logical CPUs)",
                first.environment.cpu_model, first.environment.logical_cpus
            ),
        };
        let unique = |f: &dyn Fn(&RunReport) -> String| {
            let mut v: Vec<String> = reports.iter().map(f).collect();
            v.sort();
            v.dedup();
            v.join(", ")
        };
        let mut frameworks: Vec<String> = Vec::new();
        for r in &reports {
            if !frameworks.contains(&r.spec.framework) {
                frameworks.push(r.spec.framework.clone());
            }
        }
        text.push_str(&format!(
            "| [{link}]({link}/summary.md) | {machine} | {} | {} | {} | {} | {} |\n",
            unique(&|r| r.spec.dataset.to_string()),
            frameworks.join(", "),
            unique(&|r| r.spec.model.to_string()),
            unique(&|r| r.spec.epochs.to_string()),
            reports.len()
        ));
    }
    common::report::write_atomic(&out.join("README.md"), text.as_bytes())
        .with_context(|| format!("cannot write {}", out.join("README.md").display()))
}

fn spec(args: &Args, framework: &str, model: ModelKind, seed: u64) -> RunSpec {
    RunSpec {
        framework: framework.to_string(),
        model,
        dataset: args.dataset,
        init: args.init,
        device: args.device,
        epochs: args.epochs,
        batch_size: BATCH_SIZE,
        learning_rate: LEARNING_RATE,
        seed,
        limit: args.limit,
        threads: args.threads,
    }
}

/// Runs one (framework, model, seed) in its own process and returns its report: the one the process
/// wrote, or a failed one that says how the process ended. `None` when Ctrl-C stopped it (no report
/// is left for it then).
fn run_one(
    tools: &Tools,
    args: &Args,
    spec: &RunSpec,
    report_path: &Path,
) -> Result<Option<RunReport>> {
    let framework = spec.framework.as_str();
    let model = spec.model;
    let seed = spec.seed;
    // A report left by an earlier run must not pass for this one.
    let _ = std::fs::remove_file(report_path);
    let plan = report_path.with_extension("plan.safetensors");
    let failed = |reason: String| -> Result<Option<RunReport>> {
        let r = RunReport::failed(spec.clone(), Environment::capture(), reason);
        r.write(report_path)?;
        Ok(Some(r))
    };
    eprintln!("== {framework} {model}");
    let mut cmd = if framework == "pytorch" {
        let examples = args.limit.unwrap_or(60_000).min(60_000);
        let mut planner = Command::new(&tools.lenet);
        planner
            .args(["plan", "--model", model.name()])
            .args(["--seed", &seed.to_string()])
            .args(["--epochs", &args.epochs.to_string()])
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
        let mut cmd = Command::new(&tools.python);
        cmd.arg(&tools.reference)
            .arg("--plan")
            .arg(&plan)
            .args(["--model", model.name()])
            .args(["--dataset", args.dataset.name()])
            .args(["--init", &args.init.to_string()])
            .args(["--device", &args.device.to_string()])
            .args(["--epochs", &args.epochs.to_string()])
            .args(["--seed", &seed.to_string()]);
        cmd.env("PYTHONUNBUFFERED", "1");
        cmd
    } else {
        let mut cmd = Command::new(tools.lenet(framework));
        cmd.args(["train", "--framework", framework, "--model", model.name()])
            .args(["--dataset", args.dataset.name()])
            .args(["--init", &args.init.to_string()])
            .args(["--device", &args.device.to_string()])
            .args(["--epochs", &args.epochs.to_string()])
            .args(["--seed", &seed.to_string()]);
        cmd
    };
    if let Some(dir) = &args.data_dir {
        cmd.arg("--data-dir").arg(dir);
    }
    if let Some(n) = args.limit {
        cmd.args(["--limit", &n.to_string()]);
    }
    if let Some(t) = args.threads {
        cmd.args(["--threads", &t.to_string()]);
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
        Ok(r) if r.spec.framework == framework && r.spec.model == model && r.spec.seed == seed => {
            Ok(Some(r))
        }
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

/// Every run report in a results folder.
pub fn collect(dir: &Path) -> Result<Vec<RunReport>> {
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            reports.push(RunReport::read(&path)?);
        }
    }
    summary::sort(&mut reports);
    Ok(reports)
}

fn summary_markdown(machine: &str, reports: &[RunReport], table: &str) -> String {
    let mut text = format!("# Results: {machine}\n\n{table}\n\n");
    let failed: Vec<&RunReport> = reports.iter().filter(|r| !r.succeeded()).collect();
    if !failed.is_empty() {
        text.push_str("Failed runs (`--resume` reruns them and keeps the others):\n\n");
        for r in failed {
            text.push_str(&format!(
                "- {} {}, seed {}: {}\n",
                r.spec.framework,
                r.spec.model,
                r.spec.seed,
                r.failure
                    .as_deref()
                    .and_then(|f| f.lines().next())
                    .unwrap_or("no result")
            ));
        }
        text.push('\n');
    }
    if let Some(r) = reports.first() {
        let e = &r.environment;
        text.push_str(&format!(
            "- CPU: {} ({} logical CPUs), {} {}\n",
            e.cpu_model, e.logical_cpus, e.os, e.arch
        ));
        if let Some(gpu) = &e.gpu {
            text.push_str(&format!(
                "- GPU: {gpu}, driver {}\n",
                e.gpu_driver.as_deref().unwrap_or("?")
            ));
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for r in reports {
        if let Some(b) = &r.backend {
            lines.push(format!(
                "- {} {}: {} on {}, {} thread{}{}{}\n",
                r.spec.framework,
                r.spec.model,
                b.framework_version,
                b.device_name,
                b.threads,
                if b.threads == 1 { "" } else { "s" },
                if b.features.is_empty() {
                    String::new()
                } else {
                    format!(", {}", b.features.join(", "))
                },
                if b.notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", b.notes.join("; "))
                }
            ));
        }
    }
    // Repeats of a configuration print the same line.
    lines.dedup();
    text.push_str(&lines.concat());
    if let Some(r) = reports.first() {
        let mut seeds: Vec<u64> = reports.iter().map(|r| r.spec.seed).collect();
        seeds.sort();
        seeds.dedup();
        let seeds = match seeds.as_slice() {
            [one] => format!("seed {one}"),
            many => format!(
                "seeds {} (repeats: mean ± sample standard deviation)",
                many.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut datasets: Vec<&str> = reports.iter().map(|r| r.spec.dataset.title()).collect();
        datasets.dedup();
        text.push_str(&format!(
            "\nDataset: {}. Recipe: Adam lr {}, betas (0.9, 0.999), eps 1e-8, batch {}, {} epochs, {seeds}{}. \
             Epoch times are training only (first step to a device synchronisation after the last); \
             \"vs PyTorch\" divides the median epoch time by PyTorch's on the same device; images/s \
             is the training set over the median epoch; peak host memory is the run process's \
             resident peak, data included. Raw reports: the JSON files beside this one.\n",
            datasets.join(", "),
            r.spec.learning_rate,
            r.spec.batch_size,
            r.spec.epochs,
            r.spec
                .limit
                .map(|n| format!(", first {n} images of each split"))
                .unwrap_or_default()
        ));
        if reports.iter().any(|r| r.spec.init == InitKind::Native) {
            text.push_str(&format!(
                "\nInitial weights: each framework's own default initialisers (`--init native`), \
                 not the shared ones; the optimiser stays the recipe's. What each framework does \
                 by default:\n\n{}",
                common::harness::defaults_table()
            ));
        }
    }
    text
}
