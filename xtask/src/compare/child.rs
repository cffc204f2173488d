//! One run in its own process: the Python rows' plan file first, then the run, supervised until
//! it ends, passes its time limit or Ctrl-C stops it; a process that ends without a report leaves a
//! failed one that says how.
//!
//! Each run process leads a process group of its own, so that a run stopped at its time limit or by
//! Ctrl-C is stopped with every process it started (a Python row's workers, say), and on Linux it
//! is killed with `compare` if `compare` itself is killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::framework::{FrameworkInfo, Runner};
use common::harness::{DeviceKind, RunSpec};
use reports::{Environment, RunReport};

use super::plan::describe;
use super::select::Tools;
use super::INTERRUPTED;
use crate::flags;
use crate::process::{self, ended, signal};

/// Runs one (framework, model, seed) in its own process and returns its report: the one the process
/// wrote, or a failed one that says how the process ended (or that it passed `limit`, the run's
/// time limit, plan file included). `None` when Ctrl-C stopped it (no report is left for it then).
/// A Python reference first gets its plan file (the shared weights and the batch orders over
/// `examples` training examples) from `lenet plan`.
pub(super) fn run_one(
    tools: &Tools,
    args: &flags::Compare,
    info: &FrameworkInfo,
    spec: &RunSpec,
    examples: usize,
    limit: Duration,
    report_path: &Path,
) -> Result<Option<RunReport>> {
    // A report left by an earlier run must not pass for this one.
    let _ = std::fs::remove_file(report_path);
    let run = Run {
        tools,
        args,
        info,
        spec,
        examples,
        limit,
        deadline: Instant::now() + limit,
        report: report_path,
        plan: report_path.with_extension("plan.safetensors"),
        // A Python row's kernel pass: the counter's records, attributed here to the report's
        // epochs.
        records: report_path.with_extension("records.txt"),
    };
    let _ = std::fs::remove_file(&run.records);
    eprintln!("== {}", describe(spec));
    let mut cmd = match run.command() {
        Prepared::Command(cmd) => cmd,
        Prepared::Failed(reason) => return run.failed(reason),
        Prepared::Interrupted => return Ok(None),
    };
    cmd.args(spec.to_args());
    if let Some(dir) = &args.run.data_dir {
        cmd.arg("--data-dir").arg(dir);
    }
    cmd.arg("--out").arg(report_path);
    let status = run_child(&mut cmd, run.deadline);
    let _ = std::fs::remove_file(&run.plan);
    run.outcome(status)
}

/// One run being made: what it runs, with what, its files and its time.
struct Run<'a> {
    tools: &'a Tools,
    args: &'a flags::Compare,
    info: &'a FrameworkInfo,
    spec: &'a RunSpec,
    /// The training examples a Python row's plan file covers.
    examples: usize,
    limit: Duration,
    deadline: Instant,
    report: &'a Path,
    /// A Python row's plan file (the shared weights and the batch orders).
    plan: PathBuf,
    /// A Python row's kernel counter records.
    records: PathBuf,
}

/// The command of a run, or why there is none.
enum Prepared {
    Command(Command),
    /// The run fails before it starts, for this reason.
    Failed(String),
    /// Ctrl-C came while its plan file was being made.
    Interrupted,
}

impl Run<'_> {
    /// Writes and returns the failed report that says `reason`.
    fn failed(&self, reason: String) -> Result<Option<RunReport>> {
        let r = RunReport::failed(self.spec.clone(), Environment::capture(), reason);
        r.write(self.report)?;
        Ok(Some(r))
    }

    /// The run's command, without the run's settings: `lenet train`, or a Python row's script
    /// after its plan file.
    fn command(&self) -> Prepared {
        match (self.info.runner, &self.tools.python) {
            (Runner::Python, Some(python)) => self.python_command(python),
            (Runner::Python, None) => {
                Prepared::Failed(format!("no Python to run {} with", self.spec.framework))
            }
            (Runner::Lenet, _) => {
                let mut cmd = Command::new(self.tools.lenet(&self.spec.framework));
                cmd.arg("train");
                if let Some(counter) = &self.args.kernels {
                    cmd.arg("--kernels").arg(counter);
                }
                Prepared::Command(cmd)
            }
        }
    }

    /// A Python row: its plan file from `lenet plan`, then its script with `python`.
    fn python_command(&self, python: &Path) -> Prepared {
        let spec = self.spec;
        let mut planner = Command::new(&self.tools.lenet);
        planner
            .args(["plan", "--model", spec.model.name()])
            .args(["--seed", &spec.seed.to_string()])
            .args(["--epochs", &spec.epochs.to_string()])
            .args(["--examples", &self.examples.to_string()])
            .arg("--out")
            .arg(&self.plan);
        match run_child(&mut planner, self.deadline) {
            Ok(Ended::Exited(status)) if status.success() => {}
            Ok(Ended::Exited(status)) => {
                return Prepared::Failed(format!(
                    "`lenet plan` (the reference run's weights and batch order) {}",
                    ended(status)
                ))
            }
            Ok(Ended::TimedOut) => return Prepared::Failed(timed_out(self.limit)),
            Ok(Ended::Interrupted) => return Prepared::Interrupted,
            Err(e) => return Prepared::Failed(format!("{e:#}")),
        }
        let script = match (&self.args.scripts, &self.info.script) {
            (Some(dir), Some(s)) => dir.join(Path::new(s).file_name().unwrap_or_default()),
            (None, Some(s)) => process::root().join(s),
            (_, None) => return Prepared::Failed(format!("{} names no script", spec.framework)),
        };
        let mut cmd = Command::new(python);
        cmd.arg(script).arg("--plan").arg(&self.plan);
        cmd.env("PYTHONUNBUFFERED", "1");
        if let Some(counter) = &self.args.kernels {
            cmd.arg("--kernels")
                .arg(counter)
                .arg("--kernel-records")
                .arg(&self.records);
        }
        Prepared::Command(cmd)
    }

    /// The report of a run process that ended as `status` says: the one it wrote, or a failed one;
    /// `None` when Ctrl-C stopped it.
    fn outcome(&self, status: Result<Ended>) -> Result<Option<RunReport>> {
        let status = match status {
            Ok(Ended::Exited(status)) => status,
            Ok(Ended::Interrupted) => {
                let _ = std::fs::remove_file(self.report);
                return Ok(None);
            }
            Ok(Ended::TimedOut) => {
                let _ = std::fs::remove_file(&self.records);
                return self.failed(timed_out(self.limit));
            }
            Err(e) => return self.failed(format!("{e:#}")),
        };
        match RunReport::read(self.report) {
            Ok(mut r) if r.spec == *self.spec => {
                if self.args.kernels.is_some() && self.info.runner == Runner::Python {
                    attribute_python_pass(&mut r, &self.records);
                    let _ = std::fs::remove_file(&self.records);
                    r.write(self.report)?;
                }
                Ok(Some(r))
            }
            _ => self.failed(format!(
                "the run process {} and left no report",
                ended(status)
            )),
        }
    }
}

/// A Python row's kernel pass: its epochs get the activity the counter recorded into `records`
/// (as `lenet train --kernels` attributes its own), and the report says what was measured; on the
/// CPU, nothing (the script does not load the counter there).
fn attribute_python_pass(report: &mut RunReport, records: &Path) {
    report.kernel_pass = Some(if report.device() == DeviceKind::Cuda.to_string() {
        meters::kernels::attribute(meters::kernels::read(records), &mut report.epochs)
    } else {
        reports::report::KernelPass::nothing("the run trained on the CPU")
    });
}

/// The failure of a run stopped at its time limit.
fn timed_out(limit: Duration) -> String {
    format!(
        "stopped at its time limit of {} s (compare's --run-timeout): the run and every process \
         it started were killed",
        limit.as_secs()
    )
}

/// How a supervised process ended.
#[derive(Debug)]
pub(super) enum Ended {
    Exited(ExitStatus),
    /// Ctrl-C came first; the process is stopped.
    Interrupted,
    /// The deadline came first; the process and its group are killed.
    TimedOut,
}

/// Starts `cmd` as the leader of a process group of its own and waits for it until `deadline`.
pub(super) fn run_child(cmd: &mut Command, deadline: Instant) -> Result<Ended> {
    own_group(cmd);
    let mut child: Child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))?;
    loop {
        let status = child.try_wait().context("cannot wait for a run process")?;
        if let Some(status) = status {
            // A signal sent to `compare`'s own group (a terminal's Ctrl-C, `timeout`) may reach
            // the run before the handler has set the flag: give the handler a moment to tell that
            // apart from a crash.
            if signal(status).is_some() {
                std::thread::sleep(Duration::from_millis(300));
            }
            // What the run started may outlive it.
            kill_group(&mut child);
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Ok(Ended::Interrupted);
            }
            return Ok(Ended::Exited(status));
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            kill_group(&mut child);
            let _ = child.wait();
            return Ok(Ended::Interrupted);
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            let _ = child.wait();
            return Ok(Ended::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes the process `cmd` starts the leader of a new process group, killed (on Linux) when the
/// process that started it dies.
#[cfg(unix)]
fn own_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches only the new process's own settings.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn own_group(_: &mut Command) {}

/// Kills `child`'s process group (the child and whatever it started that is still in the group).
#[cfg(unix)]
fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: a plain system call. The group is the one `own_group` made, led by `child`; a
        // group keeps its id while any member lives, and Linux gives no new process an id that a
        // group still uses, so this reaches that group or, when it is gone, nothing of ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(child: &mut Child) {
    let _ = child.kill();
}
