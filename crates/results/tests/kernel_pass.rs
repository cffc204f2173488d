//! A kernel pass's report (`NAME.kernels.json`) joined to its timed run (`NAME.json`) when a
//! results folder is loaded: the device table's kernels, busy time and floor per step, and "no
//! device activity measured" (never zeros) where the pass measured nothing.

use common::harness::RunSpec;
use common::{DeviceKind, ModelKind};
use epochs::{DeviceActivity, KernelPass, KernelTime};
use reports::report::DeviceSteps;
use reports::RunReport;
use results::ResultsFolder;

mod support;
use support::{backend, catalogue, cell, finished};

/// A timed run on `device` whose epochs took 9, 5 and 4 s (60,000 images at batch 32: 1,875
/// steps).
fn timed(framework: &str, device: DeviceKind) -> RunReport {
    let mut r = finished(
        RunSpec::recipe(framework, ModelKind::LeNet2),
        &[9.0, 5.0, 4.0],
    );
    r.backend = Some(backend(device));
    r
}

/// `timed`'s kernel pass: each epoch `kernels` kernels per step (half in graphs where `graphs`),
/// busy `busy` seconds per step.
fn pass(timed: &RunReport, kernels: u64, busy: f64, graphs: bool) -> RunReport {
    let mut p = timed.clone();
    let steps = p.steps_per_epoch().unwrap() as u64;
    for e in &mut p.epochs {
        e.device_activity = Some(DeviceActivity {
            kernels: kernels * steps,
            graph_kernels: if graphs { kernels * steps / 2 } else { 0 },
            copies: steps,
            sets: steps,
            busy_seconds: busy * steps as f64,
            kernel_seconds: busy * steps as f64,
            span_seconds: e.train_seconds,
            top: vec![KernelTime {
                name: "void at::native::vectorized_elementwise_kernel<4>(int)".into(),
                count: 3 * steps,
                seconds: busy * steps as f64 / 2.0,
            }],
        });
    }
    p.kernel_pass = Some(KernelPass {
        measured: true,
        note: None,
    });
    p
}

/// The device table of a summary.
fn device_table(summary: &str) -> &str {
    summary
        .split("## What the device did (kernel pass)")
        .nth(1)
        .and_then(|s| s.split("\n\n").find(|p| p.starts_with("| framework")))
        .unwrap_or_else(|| panic!("no device table in\n{summary}"))
}

fn write(dir: &std::path::Path, name: &str, r: &RunReport) {
    r.write(&dir.join(name)).unwrap();
}

#[test]
fn a_kernel_pass_gives_its_run_the_kernels_and_the_floor_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let tch = timed("tch", DeviceKind::Cuda);
    let pytorch = timed("pytorch", DeviceKind::Cuda);
    write(dir.path(), "tch-lenet2.json", &tch);
    write(
        dir.path(),
        "tch-lenet2.kernels.json",
        &pass(&tch, 52, 200e-6, false),
    );
    write(dir.path(), "pytorch-lenet2.json", &pytorch);
    write(
        dir.path(),
        "pytorch-lenet2.kernels.json",
        &pass(&pytorch, 40, 100e-6, true),
    );
    let folder = ResultsFolder::load(dir.path(), "gpu", &catalogue()).unwrap();
    // The passes are not runs of the table; each is joined to its run.
    assert_eq!(folder.reports.len(), 2);
    assert_eq!(folder.kernel_passes.len(), 2);
    let tch = folder
        .reports
        .iter()
        .find(|r| r.spec.framework == "tch")
        .unwrap();
    let Some(DeviceSteps::Measured(steps)) = &tch.device_steps else {
        panic!("not joined: {:?}", tch.device_steps)
    };
    let (kernels, busy_seconds, top) = (&steps.kernels, steps.busy_seconds, &steps.top);
    assert_eq!(*kernels, 52.0);
    assert!((busy_seconds - 200e-6).abs() < 1e-12);
    assert_eq!(top[0].launches, 3.0);
    // 1,875 steps at 200 µs: a floor of 0.375 s under a median epoch of 4.5 s.
    let floor = tch.device_floor_seconds().unwrap();
    assert!((floor - 0.375).abs() < 1e-9, "{floor}");
    assert!((tch.times_floor().unwrap() - 12.0).abs() < 1e-9);

    folder.write_summary(&catalogue()).unwrap();
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let table = device_table(&summary);
    let at = |name: &str, column: &str| cell(table, |c| c[0] == name, column);
    assert_eq!(at("tch", "kernels/step"), "52.0");
    assert_eq!(at("pytorch", "kernels/step"), "40.0 (20.0 in graphs)");
    assert_eq!(at("tch", "copies+sets/step"), "2.0");
    assert_eq!(at("tch", "busy/step (µs)"), "200");
    assert_eq!(at("tch", "device floor (s)"), "0.38");
    assert_eq!(at("tch", "epoch / floor"), "12.0x");
    // The pass's epochs are the timed run's (9, 5, 4 s): recording cost nothing here.
    assert_eq!(at("tch", "pass epoch / timed"), "1.00x");
    assert!(
        summary.contains("`vectorized_elementwise_kernel` 3.0x, 100.0 µs"),
        "{summary}"
    );
}

/// A pass on the CPU (or one whose counter could not record) says so in the table, never zeros;
/// a pass of another configuration is not joined; a folder without passes has no device table.
#[test]
fn a_pass_that_measured_nothing_says_so_and_a_folder_without_passes_has_no_device_table() {
    let dir = tempfile::tempdir().unwrap();
    let cpu = timed("tch", DeviceKind::Cpu);
    let mut nothing = cpu.clone();
    nothing.kernel_pass = Some(KernelPass::nothing("the run trained on the CPU"));
    write(dir.path(), "tch-lenet2.json", &cpu);
    write(dir.path(), "tch-lenet2.kernels.json", &nothing);
    let pytorch = timed("pytorch", DeviceKind::Cpu);
    let mut other = pass(&pytorch, 40, 1e-4, false);
    other.spec.batch_size = 64;
    write(dir.path(), "pytorch-lenet2.json", &pytorch);
    write(dir.path(), "pytorch-lenet2.kernels.json", &other);
    let folder = ResultsFolder::load(dir.path(), "cpu", &catalogue()).unwrap();
    let by = |name: &str| {
        folder
            .reports
            .iter()
            .find(|r| r.spec.framework == name)
            .unwrap()
    };
    assert_eq!(
        by("tch").device_steps,
        Some(DeviceSteps::Nothing(
            "no device activity measured: the run trained on the CPU".into()
        ))
    );
    assert_eq!(by("tch").device_floor_seconds(), None);
    assert_eq!(by("pytorch").device_steps, None, "batch 64 is not batch 32");
    folder.write_summary(&catalogue()).unwrap();
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let table = device_table(&summary);
    assert_eq!(
        cell(table, |c| c[0] == "tch", "kernels/step"),
        "no device activity measured"
    );
    for column in ["busy/step (µs)", "device floor (s)", "epoch / floor"] {
        assert_eq!(cell(table, |c| c[0] == "tch", column), "-", "{column}");
        assert_eq!(cell(table, |c| c[0] == "pytorch", column), "-", "{column}");
    }
    assert!(
        summary
            .contains("No device activity measured:\n\n- the run trained on the CPU: tch lenet2\n"),
        "{summary}"
    );

    let plain = tempfile::tempdir().unwrap();
    write(plain.path(), "tch-lenet2.json", &cpu);
    let folder = ResultsFolder::load(plain.path(), "cpu", &catalogue()).unwrap();
    folder.write_summary(&catalogue()).unwrap();
    let summary = std::fs::read_to_string(plain.path().join("summary.md")).unwrap();
    assert!(!summary.contains("kernel pass"), "{summary}");
}

/// A pass that failed measured nothing, and says why.
#[test]
fn a_failed_pass_measured_nothing() {
    let mut p = pass(&timed("tch", DeviceKind::Cuda), 52, 1e-4, false);
    p.failure = Some("CUDA out of memory\nmore".into());
    assert_eq!(
        DeviceSteps::of(&p),
        Some(DeviceSteps::Nothing(
            "no device activity measured: the pass failed: CUDA out of memory".into()
        ))
    );
    assert_eq!(DeviceSteps::of(&timed("tch", DeviceKind::Cuda)), None);
}

/// A machine's probes (the launch queue's depth) sit in its results without being taken for runs.
#[test]
fn probes_are_not_run_reports() {
    let out = tempfile::tempdir().unwrap();
    let machine = out.path().join("gpu");
    let probes = machine.join(results::folder::PROBES);
    std::fs::create_dir_all(&probes).unwrap();
    write(&machine, "tch-lenet2.json", &timed("tch", DeviceKind::Cuda));
    std::fs::write(probes.join("launch-queue.json"), "{\"eager\": {}}\n").unwrap();
    assert_eq!(results::folder::result_dirs(out.path()).unwrap(), [machine]);
    let folders = results::folder::load_all(out.path(), &catalogue()).unwrap();
    assert_eq!(folders.len(), 1);
    assert_eq!(folders[0].reports.len(), 1);
}

/// The front page's GPU picture gets a device table where the GPU folder it reads has kernel
/// passes that measured the device, and none where it has not.
#[test]
fn the_front_page_shows_the_device_per_step_where_passes_measured_it() {
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().join("results").join("gpu");
    std::fs::create_dir_all(&machine).unwrap();
    let evidence_of = |folders: &[ResultsFolder]| {
        let lines = std::collections::BTreeMap::new();
        let catalogue = catalogue();
        let evidence = results::verdict::Evidence {
            root: dir.path(),
            folders,
            costs: &[],
            catalogue: &catalogue,
            listing_lines: &lines,
            serving: &[],
        };
        (
            evidence.device_headline(),
            results::verdict::front_page(&evidence),
        )
    };
    for model in [ModelKind::LeNet2, ModelKind::LeNet3] {
        let mut tch = timed("tch", DeviceKind::Cuda);
        tch.spec.model = model;
        write(&machine, &format!("tch-{model}.json"), &tch);
    }
    let folders = [ResultsFolder::load(&machine, "gpu", &catalogue()).unwrap()];
    let (none, page) = evidence_of(&folders);
    assert!(none.is_none(), "{none:?}");
    assert!(!page.contains("kernels/step"), "{page}");
    for model in [ModelKind::LeNet2, ModelKind::LeNet3] {
        let mut tch = timed("tch", DeviceKind::Cuda);
        tch.spec.model = model;
        write(
            &machine,
            &format!("tch-{model}.kernels.json"),
            &pass(&tch, 52, 200e-6, false),
        );
    }
    let folders = [ResultsFolder::load(&machine, "gpu", &catalogue()).unwrap()];
    let (table, page) = evidence_of(&folders);
    let (_, table) = table.expect("a device table");
    let row = table.lines().find(|l| l.starts_with("| tch |")).unwrap();
    assert_eq!(
        row,
        "| tch | 52.0 | 200 µs | 0.38 s | 12.0x | 52.0 | 200 µs | 0.38 s | 12.0x |"
    );
    assert!(page.contains(row), "{page}");
}
