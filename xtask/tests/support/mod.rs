//! What the tests of `cargo xtask compare` share: the release `lenet` binary, a synthetic data
//! set, the `compare` command line, the summary's cells, the run processes and their reports. Each
//! test file uses part of it.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reports::RunReport;

/// `target/<profile>/lenet`, next to the `deps` folder this test runs from.
pub fn lenet() -> PathBuf {
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
pub fn data(n: usize) -> tempfile::TempDir {
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
pub fn xtask(args: &[&str]) -> Command {
    xtask_with(&lenet(), args)
}

/// `compare` of tch LeNet2 with the binary `lenet`, results in `OUT/test/`, then `args`.
pub fn xtask_with(lenet: &Path, args: &[&str]) -> Command {
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
pub fn compare(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = xtask(&["--repeats", "3", "--device", "cpu", "--threads", "1"]);
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

/// The cell of `column` in the summary table's row that starts with `row`.
pub fn cell(summary: &str, row: &str, column: &str) -> String {
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
pub fn speed_table(summary: &str) -> &str {
    let start = summary
        .find("## Speed and accuracy")
        .expect("a speed table");
    let end = summary[start..]
        .find("## Resources")
        .map_or(summary.len(), |e| start + e);
    &summary[start..end]
}

/// Starts `cmd` with its output going to `log`.
pub fn spawn(mut cmd: Command, log: &Path) -> Child {
    let file = File::create(log).unwrap();
    cmd.stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// The `lenet train` process whose command line holds `needle` (a report's full path: tests run in
/// parallel), if one is running.
pub fn process_with(needle: &str) -> Option<u32> {
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
pub fn wait_for_run(report: &str, compare: &mut Child, log: &Path) -> u32 {
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

/// Sends `signal` (a name: KILL, INT) to the process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {signal} {pid}");
}

/// The run report `name` in `dir`.
pub fn report(dir: &Path, name: &str) -> RunReport {
    RunReport::read(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Long enough (about two seconds a run here) for a signal to land inside the second run's training.
pub const EPOCHS: &[&str] = &["--epochs", "40"];

/// `compare ARGS` must fail before any run, with `expected` in its first line. In ARGS, `DATA` is a
/// folder of 20 images and `TMP` an empty folder except for a file named `file`.
pub fn check(args: &[&str], expected: &str) {
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

/// The run reports under `out`, by their path below it.
pub fn run_reports(out: &Path) -> std::collections::BTreeMap<String, RunReport> {
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
