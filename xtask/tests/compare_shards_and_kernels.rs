//! `cargo xtask compare` beyond one table: a comparison run in slices (`--shard`) and merged
//! (`report --merge`), and kernel passes (`--kernels`) beside the timed runs. The runs are real
//! `lenet` processes (tch, LeNet2, and the PyTorch row where a Python with torch is given) on a
//! small synthetic data set.
//!
//! They need the release `lenet` binary beside this test's folder (`target/release/lenet`), which
//! `cargo xtask test` builds with the rest of the workspace.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use reports::RunReport;
use support::{cell, check, compare, data, lenet, report, run_reports, speed_table};

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
    let mut seen = BTreeMap::new();
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
    merged_into_one_table(&slices, &base.path().join("merged"), &whole);
}

/// `report --merge` of the `slices` into `merged`: every run of the `whole` comparison, and a
/// table that has every run.
fn merged_into_one_table(slices: &[PathBuf], merged: &Path, whole: &BTreeMap<String, RunReport>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["report", "--lenet"])
        .arg(lenet())
        .arg("--out")
        .arg(merged)
        .arg("--merge")
        .args(slices);
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        run_reports(merged).keys().collect::<Vec<_>>(),
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
        let pass = Pass {
            device,
            frameworks,
            data: data.path(),
            out: out.path(),
            python: python.clone(),
        };
        let dir = out.path().join("test").join(device);
        let timed = (device == "cpu").then(|| {
            pass.run(&[]);
            std::fs::read(dir.join("tch-lenet2.json")).unwrap()
        });
        pass.run(&["--kernels", counter.to_str().unwrap()]);
        passes_say_nothing_was_measured(&dir, device, frameworks);
        let Some(timed) = timed else { continue };
        the_tables_join_the_pass_to_the_timed_run(&dir, &timed);
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

/// The comparisons of one device in the kernel pass test: its frameworks, on LeNet2 for an epoch,
/// into `OUT/test/DEVICE/`.
struct Pass<'a> {
    device: &'a str,
    frameworks: &'a [&'a str],
    data: &'a Path,
    out: &'a Path,
    /// The Python rows' Python (`LENET_PYTHON`), if one is given.
    python: Option<OsString>,
}

impl Pass<'_> {
    /// Runs the comparison with `extra` options, which must succeed.
    fn run(&self, extra: &[&str]) {
        let device = self.device;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("compare")
            .arg("--lenet")
            .arg(lenet())
            .args([
                "--frameworks",
                &self.frameworks.join(","),
                "--models",
                "lenet2",
            ])
            .args(["--machine", "test", "--epochs", "1", "--device", device])
            .env_remove("MNIST_DIR")
            .arg("--data-dir")
            .arg(self.data)
            .arg("--out")
            .arg(self.out)
            .args(["--tag", device])
            .args(extra);
        if let Some(p) = &self.python {
            cmd.arg("--python").arg(p);
        }
        let output = cmd.output().unwrap();
        assert!(
            output.status.success(),
            "{device} {extra:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Each framework's pass in `dir` succeeded and says that no device activity was measured, with
/// none in its epochs, and no plan or records file is left.
fn passes_say_nothing_was_measured(dir: &Path, device: &str, frameworks: &[&str]) {
    for framework in frameworks {
        let name = format!("{framework}-lenet2.kernels.json");
        let pass = report(dir, &name);
        assert!(pass.succeeded(), "{name}: {:?}", pass.failure);
        let note = pass.kernel_pass.and_then(|p| p.note).unwrap_or_default();
        assert_eq!(
            note, "no device activity measured: the run trained on the CPU",
            "{device} {name}"
        );
        assert!(pass.epochs.iter().all(|e| e.device_activity.is_none()));
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("records") || n.contains("plan"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The timed report in `dir` is as it was (`timed`), the summary's device table says that nothing
/// was measured, and its speed table has one row per framework: a pass is not a run of its own.
fn the_tables_join_the_pass_to_the_timed_run(dir: &Path, timed: &[u8]) {
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
    assert_eq!(
        speed_table(&summary)
            .lines()
            .filter(|l| l.starts_with("| tch "))
            .count(),
        1
    );
}
