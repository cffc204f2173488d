//! `cargo xtask compare` when things go wrong: a run killed mid-epoch, Ctrl-C, `--resume`, bad
//! options. The runs are real `lenet` processes (tch, LeNet2) on a small synthetic data set.
//!
//! They need the release `lenet` binary beside this test's folder (`target/release/lenet`), which
//! `cargo xtask test` builds with the rest of the workspace.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reports::RunReport;

/// `target/<profile>/lenet`, next to the `deps` folder this test runs from.
fn lenet() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lenet"))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build --release`; `cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// A data folder with `n` training and `n` test images of noise, labelled 0..9 in turn.
fn data(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 12345u32;
    let pixels: Vec<u8> = (0..n * 784)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    common::mnist::write_dir(dir.path(), &pixels, &labels).unwrap();
    dir
}

/// `compare` of tch LeNet2 on the CPU with results in `OUT/test/`, then `args`.
fn xtask(args: &[&str]) -> Command {
    xtask_with(&lenet(), args)
}

/// `compare` of tch LeNet2 with the binary `lenet`, results in `OUT/test/`, then `args`.
fn xtask_with(lenet: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("compare")
        .arg("--lenet")
        .arg(lenet)
        .args([
            "--frameworks",
            "tch",
            "--models",
            "lenet2",
            "--machine",
            "test",
        ])
        .args(args)
        .env_remove("MNIST_DIR");
    cmd
}

/// Three repeats over `data` into `out`, `extra` added.
fn compare(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = xtask(&["--repeats", "3", "--device", "cpu", "--threads", "1"]);
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

/// The cell of `column` in the summary table's row that starts with `row`.
fn cell(summary: &str, row: &str, column: &str) -> String {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = cells(
        summary
            .lines()
            .find(|l| l.starts_with("| framework"))
            .unwrap(),
    );
    let index = header.iter().position(|h| h == column).unwrap();
    let line = summary
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no row {row:?} in {summary}"));
    cells(line)[index].clone()
}

/// The speed-and-accuracy table of a summary (its first section).
fn speed_table(summary: &str) -> &str {
    let start = summary
        .find("## Speed and accuracy")
        .expect("a speed table");
    let end = summary[start..]
        .find("## Resources")
        .map_or(summary.len(), |e| start + e);
    &summary[start..end]
}

/// Starts `cmd` with its output going to `log`.
fn spawn(mut cmd: Command, log: &Path) -> Child {
    let file = File::create(log).unwrap();
    cmd.stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// The `lenet train` process whose command line holds `needle` (a report's full path: tests run in
/// parallel), if one is running.
fn process_with(needle: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && cmdline.contains(" train ") {
            return Some(pid);
        }
    }
    None
}

/// Waits (two minutes at most) until the run that writes `report` (a full path), the second of the
/// comparison, has finished its first epoch and is training its second; returns its process.
fn wait_for_run(report: &str, compare: &mut Child, log: &Path) -> u32 {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(" epoch 1/40:").count() >= 2 {
            if let Some(pid) = process_with(report) {
                return pid;
            }
        }
        if let Ok(Some(status)) = compare.try_wait() {
            panic!(
                "compare ended ({status}) before {report} started:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{report} never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {signal} {pid}");
}

fn report(dir: &Path, name: &str) -> RunReport {
    RunReport::read(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Long enough (about two seconds a run here) for a signal to land inside the second run's training.
const EPOCHS: &[&str] = &["--epochs", "40"];

#[test]
fn a_killed_run_is_a_failed_row_and_retrying_it_finishes_the_comparison() {
    let data = data(320);
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("log.txt");
    let mut cmd = compare(data.path(), out.path(), EPOCHS);
    let mut child = spawn(cmd, &log);
    let second = out.path().join("test").join("tch-lenet2-r2.json");
    let victim = wait_for_run(second.to_str().unwrap(), &mut child, &log);
    signal(victim, "KILL");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("1 run failed"), "{text}");

    let dir = out.path().join("test");
    for name in ["tch-lenet2.json", "tch-lenet2-r3.json"] {
        assert!(report(&dir, name).succeeded(), "{name}");
    }
    let killed = report(&dir, "tch-lenet2-r2.json");
    let reason = killed.failure.unwrap();
    assert!(reason.contains("was killed (SIGKILL"), "{reason}");
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert_eq!(
        cell(&summary, "| tch       | lenet2 | cpu", "runs"),
        "3 (1 failed)",
        "{summary}"
    );
    assert!(
        summary.contains("- tch lenet2, seed 1: the run process was killed (SIGKILL"),
        "{summary}"
    );

    // --resume keeps the killed run as failed (a failure costs its time once), and with
    // --retry-failed reruns it, and it alone.
    let kept: Vec<Vec<u8>> = ["tch-lenet2.json", "tch-lenet2-r3.json"]
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    cmd = compare(data.path(), out.path(), &[EPOCHS, &["--resume"]].concat());
    let output = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("kept the failed report"), "{text}");
    assert!(!text.contains("== tch lenet2, 1 thread\n"), "{text}");
    cmd = compare(
        data.path(),
        out.path(),
        &[EPOCHS, &["--resume", "--retry-failed"]].concat(),
    );
    let output = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert_eq!(
        text.matches("finished earlier with the same settings")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("== tch lenet2, 1 thread\n").count(),
        1,
        "{text}"
    );
    for (name, bytes) in ["tch-lenet2.json", "tch-lenet2-r3.json"].iter().zip(&kept) {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    assert!(report(&dir, "tch-lenet2-r2.json").succeeded());
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(!summary.contains("FAILED"), "{summary}");
    assert_eq!(
        cell(&summary, "| tch       | lenet2 | cpu", "runs"),
        "3",
        "{summary}"
    );

    // Another plan (here: fewer epochs) is refused before any run, with the way out; the folder
    // is left as it was.
    let before: Vec<Vec<u8>> = ["tch-lenet2.json", "tch-lenet2-r2.json", "summary.md"]
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let output = compare(data.path(), out.path(), &["--epochs", "2", "--resume"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.contains("holds 3 runs of 40 epochs on every image of MNIST and this comparison runs 2 epochs on every image of MNIST")
            && first.contains("--tag NAME"),
        "{text}"
    );
    assert!(!text.contains("== tch"), "no run should start: {text}");
    for (name, bytes) in ["tch-lenet2.json", "tch-lenet2-r2.json", "summary.md"]
        .iter()
        .zip(&before)
    {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    // In a folder of its own, the same comparison runs; nothing is kept (other settings).
    let output = compare(
        data.path(),
        out.path(),
        &["--epochs", "2", "--resume", "--tag", "short"],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("finished earlier"), "{text}");
    assert_eq!(report(&dir.join("short"), "tch-lenet2.json").spec.epochs, 2);
}

/// A stand-in for `lenet` that answers everything as the real one does but `train`, which it
/// counts in `COUNT` (a line per run) and then does as `mode` says: `hang` (a child process that
/// never ends, `sleep 98765`, waited for) or `fail` (exits with status 3).
fn stand_in(dir: &Path, mode: &str) -> PathBuf {
    let script = dir.join("lenet");
    let count = dir.join("count");
    let act = match mode {
        "hang" => "sleep 98765 & wait",
        "fail" => "echo 'stand-in: failing on purpose' >&2; exit 3",
        other => panic!("unknown mode {other}"),
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = train ]; then\n  echo run >>'{}'\n  {act}\nfi\nexec '{}' \"$@\"\n",
            count.display(),
            lenet().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// `compare` of one tch LeNet2 run on the CPU with the stand-in `lenet`, `extra` added.
fn stand_in_compare(lenet: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = xtask_with(lenet, &["--device", "cpu", "--epochs", "1", "--data-dir"]);
    cmd.arg(data).arg("--out").arg(out).args(extra);
    cmd.output().unwrap()
}

/// Whether a process whose command line holds `needle` is alive.
fn alive(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        !zombie
            && String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(needle)
    })
}

/// A run that hangs is stopped at its time limit with the processes it started, and becomes a
/// failed report that says so; the comparison goes on and ends.
#[test]
fn a_hung_run_is_stopped_at_its_time_limit() {
    let data = data(20);
    let tmp = tempfile::tempdir().unwrap();
    let lenet = stand_in(tmp.path(), "hang");
    let out = tmp.path().join("out");
    let start = Instant::now();
    let output = stand_in_compare(&lenet, data.path(), &out, &["--run-timeout", "2"]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(start.elapsed() < Duration::from_secs(60), "{text}");
    assert!(text.contains("1 run failed"), "{text}");
    let failure = report(&out.join("test"), "tch-lenet2.json")
        .failure
        .unwrap();
    assert!(
        failure.starts_with("stopped at its time limit of 2 s (compare's --run-timeout)"),
        "{failure}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive("sleep 98765"), "the run's child outlived it");
    let summary = std::fs::read_to_string(out.join("test").join("summary.md")).unwrap();
    assert!(summary.contains("stopped at its time limit"), "{summary}");
}

/// `--resume` keeps a failed run as failed without running it again; `--retry-failed` runs it.
#[test]
fn resume_keeps_a_failed_run_unless_asked_to_retry_it() {
    let data = data(20);
    let tmp = tempfile::tempdir().unwrap();
    let lenet = stand_in(tmp.path(), "fail");
    let out = tmp.path().join("out");
    let runs = || {
        std::fs::read_to_string(tmp.path().join("count"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let output = stand_in_compare(&lenet, data.path(), &out, &[]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(runs(), 1);
    let failure = report(&out.join("test"), "tch-lenet2.json")
        .failure
        .unwrap();
    assert!(failure.contains("exited with status 3"), "{failure}");

    let output = stand_in_compare(&lenet, data.path(), &out, &["--resume"]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(runs(), 1, "{text}");
    assert!(
        text.contains("kept the failed report") && text.contains("--retry-failed runs it again"),
        "{text}"
    );
    assert!(text.contains("1 run failed"), "{text}");

    let output = stand_in_compare(&lenet, data.path(), &out, &["--resume", "--retry-failed"]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(runs(), 2, "{text}");
    // --retry-failed alone (without --resume) is refused.
    let output = stand_in_compare(&lenet, data.path(), &out, &["--retry-failed"]);
    assert!(!output.status.success());
    assert_eq!(runs(), 2);
}

/// A sweep point that fails (here its process is killed) is a failed point: the sweep goes on to
/// the next, and the summary's sweep table shows it.
#[test]
fn a_failed_point_does_not_stop_a_sweep() {
    let data = data(320);
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("log.txt");
    let mut cmd = xtask(&["--sweep", "--batch-size", "16,32,64", "--threads", "1"]);
    cmd.args(["--device", "cpu"])
        .args(EPOCHS)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--out")
        .arg(out.path());
    let mut child = spawn(cmd, &log);
    let dir = out.path().join("test").join("sweep");
    let second = dir.join("tch-lenet2.json");
    let victim = wait_for_run(second.to_str().unwrap(), &mut child, &log);
    signal(victim, "KILL");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("1 run failed"), "{text}");
    assert!(text.contains("== tch lenet2, batch 64\n"), "{text}");
    for name in [
        "tch-lenet2-b16.json",
        "tch-lenet2-b64.json",
        "tch-lenet2-t1.json",
    ] {
        let r = report(&dir, name);
        assert!(r.succeeded(), "{name}");
        assert_eq!(r.spec.epochs, 40);
    }
    assert_eq!(report(&dir, "tch-lenet2-b64.json").spec.batch_size, 64);
    assert_eq!(report(&dir, "tch-lenet2-t1.json").spec.threads, Some(1));
    assert!(!report(&dir, "tch-lenet2.json").succeeded());
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("## Sweeps"), "{summary}");
    assert!(
        summary.contains("images per second by batch size"),
        "{summary}"
    );
    // The sweep's own table: a row per framework, a column per point.
    let sweeps = &summary[summary.find("## Sweeps").unwrap()..];
    let row = sweeps
        .lines()
        .find(|l| l.starts_with("| tch |"))
        .unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(row.matches("FAILED").count(), 1, "{row}");
    assert!(
        summary.contains("- tch at batch size 32: the run process was killed (SIGKILL"),
        "{summary}"
    );
    assert!(dir
        .join("mnist-lenet2-cpu-images-per-second-by-batch-size.svg")
        .is_file());
}

#[test]
fn ctrl_c_stops_the_run_and_keeps_what_finished() {
    let data = data(320);
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("log.txt");
    let mut child = spawn(compare(data.path(), out.path(), EPOCHS), &log);
    let second = out.path().join("test").join("tch-lenet2-r2.json");
    let second = second.to_str().unwrap();
    let pid = wait_for_run(second, &mut child, &log);
    signal(child.id(), "INT");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(
        text.contains("interrupted: the run in progress was stopped"),
        "{text}"
    );
    assert!(text.contains("--resume"), "{text}");
    // The stopped run's process is gone, and it left no report; the third never started.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(process_with(second), None, "{pid} still runs");
    let dir = out.path().join("test");
    assert!(report(&dir, "tch-lenet2.json").succeeded());
    assert!(!dir.join("tch-lenet2-r2.json").exists());
    assert!(!dir.join("tch-lenet2-r3.json").exists());
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("| tch "), "{summary}");
    assert!(!summary.contains("FAILED"), "{summary}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.contains("plan"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `compare ARGS` must fail before any run, with `expected` in its first line. In ARGS, `DATA` is a
/// folder of 20 images and `TMP` an empty folder except for a file named `file`.
fn check(args: &[&str], expected: &str) {
    let data = data(20);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file"), b"").unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("DATA", data.path().to_str().unwrap())
                .replace("TMP", tmp.path().to_str().unwrap())
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = xtask(&args).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} should fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.lines().next().unwrap_or("").contains(expected),
        "{args:?}: {err:?} should say {expected:?}"
    );
    assert!(!err.contains("== tch"), "no run should start: {err}");
}

#[test]
fn bad_options_stop_compare_before_any_run() {
    let ok = ["--data-dir", "DATA", "--out", "TMP"];
    let with = |extra: &[&'static str]| [&ok[..], extra].concat();
    check(&with(&["--frameworks", "flax"]), "unknown framework 'flax'");
    check(&with(&["--models", "lenet9"]), "unknown model 'lenet9'");
    check(&with(&["--dataset", "cifar"]), "unknown dataset 'cifar'");
    check(&with(&["--device", "tpu"]), "unknown device 'tpu'");
    check(
        &with(&["--repeats", "0"]),
        "repeats must be 1 to 1000, not 0",
    );
    check(
        &with(&["--epochs", "0"]),
        "epochs must be 1 to 10000, not 0",
    );
    check(&with(&["--limit", "0"]), "image limit must be at least 1");
    check(
        &with(&["--batch-size", "32,0"]),
        "batch size must be 1 to 65536, not 0",
    );
    check(&with(&["--threads", "1,0"]), "threads must be 1 to 4096");
    check(
        &with(&["--batch-size", "32,big"]),
        "invalid value 'big' for '--batch-size",
    );
    check(&with(&["--limit", "21"]), "image limit 21 must be 1 to 20");
    check(
        &with(&["--tag", "My Tag"]),
        "tag 'My Tag' must be lowercase",
    );
    check(
        &["--data-dir", "TMP/absent", "--out", "TMP"],
        "--data-dir does not exist",
    );
    check(
        &["--data-dir", "DATA", "--out", "TMP/file/results"],
        "cannot create the results folder",
    );
    check(&with(&["--shard", "4/3"]), "slice 4 of 3 does not exist");
}

/// The run reports under `out`, by their path below it.
fn run_reports(out: &Path) -> std::collections::BTreeMap<String, RunReport> {
    let dir = out.join("test");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name.clone(), report(&dir, &name))
        })
        .collect()
}

/// Three slices of a comparison (six runs: two batch sizes, three repeats), run as separate
/// processes, one of them with its index from a Kubernetes Indexed Job's variable, run every run
/// of the whole comparison once: the same reports, none twice, none missing; `report --merge`
/// brings them into one folder whose summary has every row.
#[test]
fn shards_run_every_run_once_and_merge_into_one_table() {
    let data = data(64);
    let base = tempfile::tempdir().unwrap();
    let extra = ["--epochs", "1", "--batch-size", "16,32"];
    let run = |out: &Path, shard: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = compare(data.path(), out, &[&extra[..], shard].concat());
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let output = cmd.output().unwrap();
        assert!(
            output.status.success(),
            "{shard:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let whole = base.path().join("whole");
    run(&whole, &[], None);
    let whole = run_reports(&whole);
    assert_eq!(whole.len(), 6, "{:?}", whole.keys());
    let slices: Vec<PathBuf> = (1..=3).map(|i| base.path().join(format!("s{i}"))).collect();
    let said = run(&slices[0], &["--shard", "1/3"], None);
    assert!(
        said.contains("shard 1/3: 2 of the comparison's 6 runs"),
        "{said}"
    );
    run(
        &slices[1],
        &["--shard", "3"],
        Some(("JOB_COMPLETION_INDEX", "1")),
    );
    run(&slices[2], &["--shard", "3/3"], None);
    let mut seen = std::collections::BTreeMap::new();
    for slice in &slices {
        for (name, r) in run_reports(slice) {
            assert!(r.succeeded(), "{name}");
            assert!(seen.insert(name.clone(), r).is_none(), "{name} ran twice");
        }
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        whole.keys().collect::<Vec<_>>(),
        "the slices against the whole comparison"
    );
    for (name, r) in &seen {
        assert_eq!(r.spec, whole[name].spec, "{name}");
    }
    // Merged into one folder, the table has every run.
    let merged = base.path().join("merged");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["report", "--lenet"])
        .arg(lenet())
        .arg("--out")
        .arg(&merged)
        .arg("--merge")
        .args(&slices);
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        run_reports(&merged).keys().collect::<Vec<_>>(),
        whole.keys().collect::<Vec<_>>()
    );
    let summary = std::fs::read_to_string(merged.join("test").join("summary.md")).unwrap();
    assert_eq!(
        speed_table(&summary)
            .lines()
            .filter(|l| l.starts_with("| tch "))
            .count(),
        2,
        "a row per batch size, three repeats each: {summary}"
    );
}

/// `compare --kernels` runs the comparison's runs again as kernel passes, each report beside the
/// timed one as NAME.kernels.json, the timed reports untouched; where no CUDA is (here: the CPU,
/// and `--device auto` without a GPU, where the Python row tries to load the counter and cannot)
/// every pass says "no device activity measured" in its report and in the summary's device table,
/// never zeros. A Rust row (tch) and a Python row (pytorch, whose records `compare` reads back).
#[test]
fn a_kernel_pass_sits_beside_the_timed_runs_and_says_what_it_measured() {
    let data = data(64);
    let out = tempfile::tempdir().unwrap();
    // Any file: never loaded on the CPU; with --device auto, loading it fails.
    let counter = data.path().join("train-labels-idx1-ubyte");
    let python = std::env::var_os("LENET_PYTHON").filter(|p| !p.is_empty());
    // On the CPU, both rows timed and then passed; on `auto` (no GPU here) the Python row's pass
    // alone, where it tries to load the counter (the Rust rows' is in tests/cli.rs).
    for (device, frameworks) in [("cpu", &["tch", "pytorch"][..]), ("auto", &["pytorch"])] {
        let run = |extra: &[&str]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
            cmd.arg("compare")
                .arg("--lenet")
                .arg(lenet())
                .args(["--frameworks", &frameworks.join(","), "--models", "lenet2"])
                .args(["--machine", "test", "--epochs", "1", "--device", device])
                .env_remove("MNIST_DIR")
                .arg("--data-dir")
                .arg(data.path())
                .arg("--out")
                .arg(out.path())
                .args(["--tag", device])
                .args(extra);
            if let Some(p) = &python {
                cmd.arg("--python").arg(p);
            }
            let output = cmd.output().unwrap();
            assert!(
                output.status.success(),
                "{device} {extra:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let dir = out.path().join("test").join(device);
        let timed = (device == "cpu").then(|| {
            run(&[]);
            std::fs::read(dir.join("tch-lenet2.json")).unwrap()
        });
        run(&["--kernels", counter.to_str().unwrap()]);
        for framework in frameworks {
            let name = format!("{framework}-lenet2.kernels.json");
            let pass = report(&dir, &name);
            assert!(pass.succeeded(), "{name}: {:?}", pass.failure);
            let note = pass.kernel_pass.and_then(|p| p.note).unwrap_or_default();
            assert_eq!(
                note, "no device activity measured: the run trained on the CPU",
                "{device} {name}"
            );
            assert!(pass.epochs.iter().all(|e| e.device_activity.is_none()));
        }
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("records") || n.contains("plan"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let Some(timed) = timed else { continue };
        assert_eq!(
            std::fs::read(dir.join("tch-lenet2.json")).unwrap(),
            timed,
            "the timed report is untouched"
        );
        let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        let device_table = &summary[summary
            .find("## What the device did")
            .unwrap_or_else(|| panic!("no device table: {summary}"))..];
        for framework in ["| tch ", "| pytorch "] {
            assert_eq!(
                cell(device_table, framework, "kernels/step"),
                "no device activity measured"
            );
        }
        // The speed table still has one row per framework: a pass is not a run of its own.
        assert_eq!(
            speed_table(&summary)
                .lines()
                .filter(|l| l.starts_with("| tch "))
                .count(),
            1
        );
    }
    check(
        &[
            "--kernels",
            "TMP/absent",
            "--data-dir",
            "DATA",
            "--out",
            "TMP",
        ],
        "--kernels",
    );
}
