//! One run in its own process: the Python rows' plan file first, then the run, supervised until
//! it ends, passes its time limit or Ctrl-C stops it; a process that ends without a report leaves a
//! failed one that says how.
//!
//! Each run process leads a process group of its own, so that a run stopped at its time limit or by
//! Ctrl-C is stopped with every process it started (a Python row's workers, say), and on Linux it
//! is killed with `compare` if `compare` itself is killed.

use super::*;
use common::harness::DeviceKind;

/// Runs one (framework, model, seed) in its own process and returns its report: the one the process
/// wrote, or a failed one that says how the process ended (or that it passed `limit`, the run's
/// time limit, plan file included). `None` when Ctrl-C stopped it (no report is left for it then).
/// A Python reference first gets its plan file (the shared weights and the batch orders over
/// `examples` training examples) from `lenet plan`.
pub(super) fn run_one(
    tools: &Tools,
    args: &Args,
    info: &FrameworkInfo,
    spec: &RunSpec,
    examples: usize,
    limit: Duration,
    report_path: &Path,
) -> Result<Option<RunReport>> {
    let deadline = Instant::now() + limit;
    let framework = spec.framework.as_str();
    let model = spec.model;
    // A report left by an earlier run must not pass for this one.
    let _ = std::fs::remove_file(report_path);
    let plan = report_path.with_extension("plan.safetensors");
    // A Python row's kernel pass: the counter's records, attributed here to the report's epochs.
    let records = report_path.with_extension("records.txt");
    let _ = std::fs::remove_file(&records);
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
            match run_child(&mut planner, deadline) {
                Ok(Ended::Exited(status)) if status.success() => {}
                Ok(Ended::Exited(status)) => {
                    return failed(format!(
                        "`lenet plan` (the reference run's weights and batch order) {}",
                        ended(status)
                    ))
                }
                Ok(Ended::TimedOut) => return failed(timed_out(limit)),
                Ok(Ended::Interrupted) => return Ok(None),
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
            if let Some(counter) = &args.kernels {
                cmd.arg("--kernels")
                    .arg(counter)
                    .arg("--kernel-records")
                    .arg(&records);
            }
            cmd
        }
        (Runner::Python, None) => return failed(format!("no Python to run {framework} with")),
        (Runner::Lenet, _) => {
            let mut cmd = Command::new(tools.lenet(framework));
            cmd.arg("train");
            if let Some(counter) = &args.kernels {
                cmd.arg("--kernels").arg(counter);
            }
            cmd
        }
    };
    cmd.args(spec.to_args());
    if let Some(dir) = &args.run.data_dir {
        cmd.arg("--data-dir").arg(dir);
    }
    cmd.arg("--out").arg(report_path);
    let status = run_child(&mut cmd, deadline);
    let _ = std::fs::remove_file(&plan);
    let status = match status {
        Ok(Ended::Exited(status)) => status,
        Ok(Ended::Interrupted) => {
            let _ = std::fs::remove_file(report_path);
            return Ok(None);
        }
        Ok(Ended::TimedOut) => {
            let _ = std::fs::remove_file(&records);
            return failed(timed_out(limit));
        }
        Err(e) => return failed(format!("{e:#}")),
    };
    match RunReport::read(report_path) {
        Ok(mut r) if r.spec == *spec => {
            if args.kernels.is_some() && info.runner == Runner::Python {
                attribute_python_pass(&mut r, &records);
                let _ = std::fs::remove_file(&records);
                r.write(report_path)?;
            }
            Ok(Some(r))
        }
        _ => failed(format!(
            "the run process {} and left no report",
            ended(status)
        )),
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

#[cfg(unix)]
pub(super) fn signal(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
pub(super) fn signal(_: ExitStatus) -> Option<i32> {
    None
}

/// How a process ended, for a failed report.
pub(super) fn ended(status: ExitStatus) -> String {
    match (status.code(), signal(status)) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(9)) => "was killed (SIGKILL: killed from outside, or out of memory)".into(),
        (None, Some(6)) => "aborted (SIGABRT)".into(),
        (None, Some(11)) => "crashed (SIGSEGV)".into(),
        (None, Some(n)) => format!("was killed by signal {n}"),
        (None, None) => format!("ended ({status})"),
    }
}
