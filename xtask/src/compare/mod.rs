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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use common::framework::FrameworkInfo;
use common::harness::{DeviceRequest, RunSpec};
use common::ModelKind;
use reports::{Catalogue, Environment};
use results::folder::{self, write_picture};

use crate::flags;
use child::run_one;
use plan::{
    check, check_data, check_folder_plan, describe, earlier, points, report_name, run_limit, spec,
    tag, Earlier, Point,
};
use select::{tools, Tools};
use shard::Shard;

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
pub fn run(args: flags::Compare) -> Result<bool> {
    let comparison = Comparison::prepare(args)?;
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst)) {
        eprintln!("warning: Ctrl-C cannot be caught ({e}): it will end the comparison at once");
    }
    let failed = comparison.run_all()?;
    comparison.finish(&failed)
}

/// A comparison ready to run: its options checked, its data found, its binaries and frameworks,
/// its points and its results folder.
struct Comparison {
    args: flags::Compare,
    tools: Tools,
    points: Vec<Point>,
    /// Whether the report names carry the thread count (the comparison runs several).
    name_threads: bool,
    shard: Option<Shard>,
    machine: String,
    tag: Option<String>,
    /// The results folder, OUT/MACHINE[/TAG].
    dir: PathBuf,
    /// The training examples a run will have (what a plan file's batch orders must cover).
    examples: usize,
    /// The test examples each epoch evaluates.
    test_examples: usize,
}

/// One run of the comparison, at its place in the comparison's fixed order.
struct Planned<'a> {
    model: ModelKind,
    info: &'a FrameworkInfo,
    point: Point,
    repeat: u32,
}

/// What became of one run.
enum Outcome {
    /// It finished (now or earlier, kept by `--resume`).
    Done,
    /// It failed (now or earlier): its report.
    Failed(PathBuf),
    /// Ctrl-C stopped it: no other run starts.
    Interrupted,
}

impl Comparison {
    /// Checks everything that can be checked before any run, and makes the results folder with
    /// the dataset's sample images.
    fn prepare(args: flags::Compare) -> Result<Self> {
        check(&args)?;
        let shard = args
            .shard
            .as_deref()
            .map(|s| Shard::parse(s, |k| std::env::var(k).ok()))
            .transpose()?;
        let (data_dir, data) = check_data(&args)?;
        let mut args = args;
        args.run.data_dir = Some(data_dir);
        let tools = tools(&args)?;
        let env = Environment::capture();
        let cuda = args.run.device != DeviceRequest::Cpu && env.gpu.is_some();
        let machine = args
            .machine
            .clone()
            .unwrap_or_else(|| env.machine_slug(cuda));
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // Points for CUDA where CUDA is asked for, found or not (its runs then fail as such).
        let points = points(&args, cuda || args.run.device == DeviceRequest::Cuda, cores);
        let name_threads = points
            .iter()
            .map(|p| p.threads)
            .collect::<BTreeSet<_>>()
            .len()
            > 1;
        let tag = tag(&args);
        let dir = results_dir(&args, &machine, tag.as_deref())?;
        let samples = results::plots::samples(args.run.dataset, &data.test, 8)?;
        write_picture(&dir, &samples)?;
        Ok(Self {
            examples: data.train.len(),
            test_examples: data.test.len(),
            args,
            tools,
            points,
            name_threads,
            shard,
            machine,
            tag,
            dir,
        })
    }

    /// Every run of the comparison, in its fixed order (which a shard's slice is taken from):
    /// each model, each framework, each point, each repeat.
    fn runs(&self) -> Vec<Planned<'_>> {
        let mut runs = Vec::new();
        for &model in &self.args.models {
            for info in &self.tools.frameworks {
                for &point in &self.points {
                    for repeat in 1..=self.args.repeats {
                        runs.push(Planned {
                            model,
                            info,
                            point,
                            repeat,
                        });
                    }
                }
            }
        }
        runs
    }

    /// Runs this slice's runs until they end or Ctrl-C; the reports of those that failed.
    fn run_all(&self) -> Result<Vec<PathBuf>> {
        let runs = self.runs();
        if let Some(shard) = self.shard {
            let mine = (0..runs.len()).filter(|&p| shard.takes(p)).count();
            eprintln!(
                "shard {shard}: {mine} of the comparison's {} runs",
                runs.len()
            );
        }
        let mut failed = Vec::new();
        for (position, run) in runs.iter().enumerate() {
            if INTERRUPTED.load(Ordering::SeqCst) {
                break;
            }
            if self.shard.is_some_and(|s| !s.takes(position)) {
                continue;
            }
            match self.run_at(run)? {
                Outcome::Done => {}
                Outcome::Failed(path) => failed.push(path),
                Outcome::Interrupted => break,
            }
        }
        Ok(failed)
    }

    /// One run: kept as it is where `--resume` keeps it, else run in its own process.
    fn run_at(&self, run: &Planned) -> Result<Outcome> {
        let args = &self.args;
        let framework = &run.info.name;
        let name = report_name(
            framework,
            run.model,
            args.run.dataset,
            run.point,
            self.name_threads,
            run.repeat,
        );
        let path = match &args.kernels {
            Some(_) => folder::kernel_pass_file(&self.dir.join(name)),
            None => self.dir.join(name),
        };
        let seed = args.run.seed + u64::from(run.repeat - 1);
        let spec = spec(args, framework, run.model, seed, run.point);
        if args.resume {
            if let Some(kept) = self.kept(&path, &spec) {
                return Ok(kept);
            }
        }
        let limit = run_limit(args, &spec, self.examples, self.test_examples);
        Ok(
            match run_one(
                &self.tools,
                args,
                run.info,
                &spec,
                self.examples,
                limit,
                &path,
            )? {
                Some(report) if !report.succeeded() => Outcome::Failed(path),
                Some(_) => Outcome::Done,
                None => Outcome::Interrupted,
            },
        )
    }

    /// With `--resume`: what becomes of the run of `spec` whose report `path` holds, when it is
    /// kept as it finished or failed earlier with the same settings; `None` to run it.
    fn kept(&self, path: &Path, spec: &RunSpec) -> Option<Outcome> {
        match earlier(path, spec) {
            Earlier::Finished => {
                eprintln!(
                    "== {}: kept {} (finished earlier with the same settings)",
                    describe(spec),
                    path.display()
                );
                Some(Outcome::Done)
            }
            Earlier::Failed(why) if !self.args.retry_failed => {
                eprintln!(
                    "== {}: kept the failed report {} (failed earlier with the same settings: \
                     {why}; --retry-failed runs it again)",
                    describe(spec),
                    path.display()
                );
                Some(Outcome::Failed(path.to_path_buf()))
            }
            Earlier::Failed(_) | Earlier::Nothing => None,
        }
    }

    /// The summary and the index, rewritten from the reports; an [`Interrupted`] error after
    /// Ctrl-C, else whether every run succeeded (`failed` lists those that did not).
    fn finish(&self, failed: &[PathBuf]) -> Result<bool> {
        let title = match &self.tag {
            Some(tag) => format!("{}/{tag}", self.machine),
            None => self.machine.clone(),
        };
        let catalogue = &self.tools.catalogue;
        // Each results folder is read once: this one for its summary and the index, the others for
        // the index.
        let this = results::ResultsFolder::load(&self.dir, &title, catalogue)?;
        let table = this.write_summary(catalogue)?;
        println!("\n{table}");
        println!("\nwritten to {}", self.dir.display());
        let kept = this.reports.len();
        if let Err(e) = write_index(&self.args.out, this, catalogue) {
            eprintln!(
                "warning: could not rewrite {}: {e:#}",
                self.args.out.join("README.md").display()
            );
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            let dir = self.dir.clone();
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
}

/// The results folder `OUT/MACHINE[/TAG]`, refused when it holds reports of another plan, made and
/// checked writable.
fn results_dir(args: &flags::Compare, machine: &str, tag: Option<&str>) -> Result<PathBuf> {
    let mut dir = args.out.join(machine);
    if let Some(tag) = tag {
        dir = dir.join(tag);
    }
    check_folder_plan(&dir, args)?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the results folder {}", dir.display()))?;
    common::fsio::check_writable_dir(&dir)
        .with_context(|| format!("cannot write into the results folder {}", dir.display()))?;
    Ok(dir)
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

/// The comparison's options from a command line, for the tests of its modules.
#[cfg(test)]
mod test_args {
    use clap::Parser;

    use crate::flags;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: flags::Compare,
    }

    /// `compare LINE...` parsed, or clap's error.
    pub fn try_args(line: &[&str]) -> Result<flags::Compare, clap::Error> {
        Cli::try_parse_from(std::iter::once("compare").chain(line.iter().copied())).map(|c| c.args)
    }

    /// `compare LINE...` parsed.
    pub fn args(line: &[&str]) -> flags::Compare {
        try_args(line).unwrap()
    }
}
