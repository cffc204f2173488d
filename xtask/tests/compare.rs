//! `cargo xtask compare` when things go wrong: a run killed mid-epoch, Ctrl-C, `--resume`, a run
//! that hangs or fails, bad options. The runs are real `lenet` processes (tch, LeNet2) on a small
//! synthetic data set (`compare_shards_and_kernels.rs` has the slices and the kernel passes).
//!
//! They need the release `lenet` binary beside this test's folder (`target/release/lenet`), which
//! `cargo xtask test` builds with the rest of the workspace.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{
    cell, check, compare, data, lenet, process_with, report, signal, spawn, wait_for_run, xtask,
    xtask_with, EPOCHS,
};

/// The second of three runs is killed mid-training: the others' reports, the failed row and the
/// summary say so; `--resume` keeps it failed, `--retry-failed` reruns it alone; a comparison of
/// another plan into that folder is refused before any run, and runs under `--tag`.
#[test]
fn a_killed_run_is_a_failed_row_and_retrying_it_finishes_the_comparison() {
    let data = data(320);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("test");
    kill_the_second_run(data.path(), out.path());
    resume_keeps_the_killed_run_and_retrying_reruns_it(data.path(), out.path());
    another_plan_runs_only_in_a_folder_of_its_own(data.path(), out.path());
    assert_eq!(report(&dir.join("short"), "tch-lenet2.json").spec.epochs, 2);
}

/// Three runs into `out`, the second killed: a failed row in the summary, the others kept.
fn kill_the_second_run(data: &Path, out: &Path) {
    let log = out.join("log.txt");
    let mut child = spawn(compare(data, out, EPOCHS), &log);
    let second = out.join("test").join("tch-lenet2-r2.json");
    let victim = wait_for_run(second.to_str().unwrap(), &mut child, &log);
    signal(victim, "KILL");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("1 run failed"), "{text}");

    let dir = out.join("test");
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
}

/// --resume keeps the killed run as failed (a failure costs its time once), and with
/// --retry-failed reruns it, and it alone.
fn resume_keeps_the_killed_run_and_retrying_reruns_it(data: &Path, out: &Path) {
    let dir = out.join("test");
    let kept: Vec<Vec<u8>> = ["tch-lenet2.json", "tch-lenet2-r3.json"]
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let output = compare(data, out, &[EPOCHS, &["--resume"]].concat())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("kept the failed report"), "{text}");
    assert!(!text.contains("== tch lenet2, 1 thread\n"), "{text}");
    let output = compare(
        data,
        out,
        &[EPOCHS, &["--resume", "--retry-failed"]].concat(),
    )
    .output()
    .unwrap();
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
}

/// Another plan (here: fewer epochs) is refused before any run, with the way out; the folder is
/// left as it was. In a folder of its own (`--tag`), the same comparison runs.
fn another_plan_runs_only_in_a_folder_of_its_own(data: &Path, out: &Path) {
    let dir = out.join("test");
    let before: Vec<Vec<u8>> = ["tch-lenet2.json", "tch-lenet2-r2.json", "summary.md"]
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let output = compare(data, out, &["--epochs", "2", "--resume"])
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
    // Nothing is kept there (other settings).
    let output = compare(data, out, &["--epochs", "2", "--resume", "--tag", "short"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("finished earlier"), "{text}");
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
