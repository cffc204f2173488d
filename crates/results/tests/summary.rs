//! Figures derived from reports: medians, time to an accuracy, the ratio to PyTorch.

use common::harness::RunSpec;
use common::ModelKind;
use epochs::{EpochRecord, EvalRecord};
use reports::{Environment, RunReport, SCHEMA};
use results::summary;

mod support;
use support::{backend, catalogue, cell};

fn report(framework: &str, seconds: &[f64], accuracy: &[f64]) -> RunReport {
    let epochs = seconds
        .iter()
        .zip(accuracy)
        .enumerate()
        .map(|(i, (&s, &a))| EpochRecord {
            epoch: i as u32 + 1,
            train_loss: 0.1,
            train_accuracy: a,
            test_loss: 0.1,
            test_accuracy: a,
            train_seconds: s,
            eval_seconds: 0.5,
            queued_seconds: Some(s * 0.5),
            ..EpochRecord::default()
        })
        .collect();
    let eval = EvalRecord {
        loss: 0.1,
        accuracy: *accuracy.last().unwrap(),
        examples: 10_000,
        seconds: 0.5,
    };
    RunReport {
        schema: SCHEMA,
        spec: RunSpec::recipe(framework, ModelKind::LeNet2),
        backend: None,
        environment: Environment::default(),
        parameters: 61_706,
        train_examples: 60_000,
        test_examples: 10_000,
        setup_seconds: 0.0,
        epochs,
        final_train: Some(eval.clone()),
        final_test: Some(eval),
        peak_host_bytes: Some(300 << 20),
        peak_device_bytes: None,
        gpu_process_bytes: None,
        failure: None,
        kernel_pass: None,
        device_steps: None,
    }
}

#[test]
fn median_skips_the_first_epoch() {
    let r = report("tch", &[9.0, 2.0, 4.0, 3.0], &[0.9, 0.98, 0.991, 0.992]);
    assert_eq!(r.first_epoch_seconds(), Some(9.0));
    assert_eq!(r.median_epoch_seconds(), Some(3.0));
    let r = report("tch", &[9.0, 2.0, 4.0], &[0.9, 0.98, 0.99]);
    assert_eq!(r.median_epoch_seconds(), Some(3.0));
    assert_eq!(r.seconds_to_accuracy(0.99), Some(15.0));
    assert_eq!(r.seconds_to_accuracy(0.995), None);
    assert_eq!(r.total_seconds(), 16.5);
}

/// The host's share of an epoch: the median over epochs 2..N of queued / train seconds, shown for
/// CUDA rows only and never a label by itself: a row is host-bound only where the device was idle
/// most of the epoch (busy 10% is, busy 95% is not, whatever the host share), and where the
/// device's activity was not measured no row is called either.
#[test]
fn the_host_share_marks_host_bound_rows() {
    let mut r = report("tch", &[9.0, 2.0, 4.0, 3.0], &[0.9, 0.98, 0.991, 0.992]);
    for (e, q) in r.epochs.iter_mut().zip([9.0, 1.0, 3.8, 3.0]) {
        e.queued_seconds = Some(q);
        e.device_busy = Some(0.1);
    }
    assert_eq!(r.host_share(), Some(0.95));
    assert_eq!(r.device_busy(), Some(0.1));
    assert_eq!(r.host_bound(), Some(true));
    let mut device_bound = r.clone();
    device_bound.spec.framework = "pytorch".into();
    for e in &mut device_bound.epochs {
        e.queued_seconds = Some(e.train_seconds * 0.99);
        e.device_busy = Some(0.95);
    }
    assert_eq!(device_bound.host_share(), Some(0.99));
    assert_eq!(
        device_bound.host_bound(),
        Some(false),
        "busy 95%: not host-bound"
    );
    let mut unmeasured = r.clone();
    for e in &mut unmeasured.epochs {
        e.device_busy = None;
    }
    assert_eq!(
        unmeasured.host_bound(),
        None,
        "no device activity measured: no label"
    );
    let mut old = r.clone();
    old.epochs[2].queued_seconds = None;
    assert_eq!(old.host_share(), None, "a report that did not record it");

    let cpu = |mut r: RunReport| {
        r.backend = Some(backend(common::DeviceKind::Cpu));
        r
    };
    let cuda = |mut r: RunReport| {
        r.backend = Some(backend(common::DeviceKind::Cuda));
        r
    };
    let table = summary::resources(&[cuda(device_bound.clone()), cuda(r.clone())], &catalogue());
    let share = |name: &str| cell(&table, |c| c[0] == name, "host share");
    assert_eq!(share("pytorch"), "99%");
    assert_eq!(share("tch"), "95%");
    let busy = |name: &str| cell(&table, |c| c[0] == name, "device busy");
    assert_eq!(busy("pytorch"), "95%");
    assert_eq!(busy("tch"), "10% host-bound");
    // Without the device's activity, the host share alone names nobody host-bound.
    let table = summary::resources(&[cuda(unmeasured)], &catalogue());
    assert!(
        !table.contains("host-bound") && !table.contains("device busy"),
        "{table}"
    );
    // CPU rows have no host share: a table of them has no such column.
    let table = summary::resources(&[cpu(r)], &catalogue());
    assert!(!table.contains("host share"), "{table}");
}

/// GPU rows show the driver's memory and energy readings, "-" where there were none; a table of
/// CPU runs has no such columns, nor any table a column that no report of it measured.
#[test]
fn gpu_rows_show_the_drivers_memory_and_energy() {
    let mut measured = report("tch", &[9.0, 2.0, 4.0], &[0.9, 0.98, 0.99]);
    measured.backend = Some(backend(common::DeviceKind::Cuda));
    measured.gpu_process_bytes = Some(600 << 20);
    for (e, j) in measured.epochs.iter_mut().zip([900.0, 100.0, 140.0]) {
        e.energy_joules = Some(j);
    }
    assert_eq!(measured.joules_per_epoch(), Some(120.0));
    assert_eq!(measured.joules_per_thousand_images(), Some(2.0));
    let mut unmeasured = report("pytorch", &[9.0, 2.0, 4.0], &[0.9, 0.98, 0.99]);
    unmeasured.backend = Some(backend(common::DeviceKind::Cuda));
    assert_eq!(unmeasured.joules_per_epoch(), None);
    let table = summary::resources(&[unmeasured, measured.clone()], &catalogue());
    assert!(
        table.contains("| GPU memory (MiB) | energy (J/epoch) | J per 1k images |"),
        "{table}"
    );
    let gpu = |name: &str| {
        ["GPU memory (MiB)", "energy (J/epoch)", "J per 1k images"]
            .map(|column| cell(&table, |c| c[0] == name, column))
    };
    assert_eq!(gpu("tch"), ["600", "120", "2.0"]);
    assert_eq!(gpu("pytorch"), ["-", "-", "-"]);
    // A measurement that no report has is no column (PyTorch's device counter here).
    assert!(!table.contains("peak device"), "{table}");
    measured.backend = Some(backend(common::DeviceKind::Cpu));
    let cpu = summary::resources(&[measured], &catalogue());
    assert!(!cpu.contains("GPU memory"), "{cpu}");
}

#[test]
fn table_divides_by_pytorch() {
    let mut reports = vec![
        report("tch", &[5.0, 3.0, 3.0], &[0.9, 0.95, 0.97]),
        report("pytorch", &[5.0, 2.0, 2.0], &[0.9, 0.95, 0.97]),
    ];
    let mut failed = report("tch", &[], &[0.0]);
    failed.spec.model = ModelKind::LeNet3;
    failed.epochs.clear();
    failed.final_test = None;
    failed.failure = Some("killed by signal 9".into());
    reports.push(failed);
    summary::sort(&mut reports, &catalogue());
    assert_eq!(reports[0].spec.framework, "pytorch", "the baseline first");
    let table = summary::table(&reports, &catalogue());
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[2].contains("| pytorch ") && lines[2].contains("1.00x"),
        "{table}"
    );
    assert!(
        lines[3].contains("| tch ") && lines[3].contains("1.50x"),
        "{table}"
    );
    assert!(lines[3].contains("not reached"), "{table}");
    assert!(lines[4].contains("FAILED: killed by signal 9"), "{table}");
}

/// Both profiles in one table: a profile column, each tuned row compared with the tuned baseline
/// ("vs PyTorch") and with its own idiomatic row ("tuned speed-up").
#[test]
fn tuned_rows_sit_beside_the_idiomatic_ones() {
    use common::harness::Profile;
    let tuned = |mut r: RunReport| {
        r.spec.profile = Profile::Tuned;
        r
    };
    let mut reports = vec![
        report("tch", &[5.0, 4.0, 4.0], &[0.9, 0.95, 0.97]),
        tuned(report("tch", &[5.0, 1.0, 1.0], &[0.9, 0.95, 0.97])),
        report("pytorch", &[5.0, 2.0, 2.0], &[0.9, 0.95, 0.97]),
        tuned(report("pytorch", &[5.0, 0.5, 0.5], &[0.9, 0.95, 0.97])),
    ];
    summary::sort(&mut reports, &catalogue());
    let table = summary::table(&reports, &catalogue());
    let row = |framework: &'static str, profile: &'static str| {
        move |c: &[String]| c[0] == framework && c.contains(&profile.to_string())
    };
    assert_eq!(cell(&table, row("tch", "idiomatic"), "vs PyTorch"), "2.00x");
    assert_eq!(cell(&table, row("tch", "tuned"), "vs PyTorch"), "2.00x");
    assert_eq!(cell(&table, row("tch", "tuned"), "tuned speed-up"), "4.00x");
    assert_eq!(
        cell(&table, row("pytorch", "tuned"), "tuned speed-up"),
        "4.00x"
    );
    assert_eq!(cell(&table, row("tch", "idiomatic"), "tuned speed-up"), "-");
    assert_eq!(reports[2].label(), "pytorch (tuned)");
    // One profile: no profile columns.
    let plain = summary::table(&reports[..1], &catalogue());
    assert!(
        !plain.contains("profile") && !plain.contains("speed-up"),
        "{plain}"
    );
}

#[test]
fn repeats_make_one_row_with_mean_and_sd() {
    let mut reports = Vec::new();
    for (seed, (second, acc)) in [(2.0, 0.990), (4.0, 0.992), (6.0, 0.994)]
        .into_iter()
        .enumerate()
    {
        let mut r = report("burn", &[9.0, second, second], &[0.9, 0.95, acc]);
        r.spec.seed = seed as u64;
        reports.push(r);
    }
    let mut r = report("pytorch", &[5.0, 2.0, 2.0], &[0.9, 0.95, 0.97]);
    r.spec.seed = 7;
    reports.push(r);
    summary::sort(&mut reports, &catalogue());
    let table = summary::table(&reports, &catalogue());
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "a header, a rule and two rows:\n{table}");
    assert!(lines[0].contains("| runs |"), "{table}");
    let burn = lines[3];
    // Median epochs 2, 4, 6: mean 4, sample sd 2; ratio to PyTorch's 2 s: 2x.
    assert!(burn.contains("| 4.00 ± 2.00 "), "{table}");
    assert!(burn.contains("2.00x"), "{table}");
    // Test accuracy 99.0, 99.2, 99.4: mean 99.2, sd 0.2.
    assert!(burn.contains("99.20% ± 0.20%"), "{table}");
    // 60,000 images in 2, 4 and 6 s: 30000, 15000, 10000 images/s.
    assert!(burn.contains("18333 ± 10408"), "{table}");
    let resources = summary::resources(&reports, &catalogue());
    let burn = resources.lines().nth(3).unwrap();
    assert!(
        burn.contains("| 300 ± 0 "),
        "peak host memory in MiB:\n{resources}"
    );
    // The two tables name their rows alike: the same key columns, in the same order.
    let keys = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split('|').take(4).collect::<Vec<_>>().join("|"))
            .collect()
    };
    assert_eq!(keys(&table), keys(&resources));
}

#[test]
fn charts_draw_every_framework() {
    let mut reports = vec![
        report("tch", &[5.0, 3.0, 3.0], &[0.9, 0.95, 0.97]),
        report("pytorch", &[5.0, 2.0, 2.0], &[0.9, 0.95, 0.97]),
    ];
    summary::sort(&mut reports, &catalogue());
    let pictures = results::plots::charts(&reports, &catalogue()).unwrap();
    let files: Vec<&str> = pictures.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "mnist-lenet2-auto-accuracy.svg",
            "mnist-lenet2-auto-epoch-time.svg"
        ]
    );
    for p in &pictures {
        assert!(p.svg.starts_with("<svg"), "{}", p.file);
        assert!(
            p.svg.contains("pytorch") && p.svg.contains("tch"),
            "{}",
            p.file
        );
    }
    assert!(
        pictures[1].svg.contains("3.00 s"),
        "the bar's value is written on it"
    );
}

#[test]
fn slugs_name_machines() {
    assert_eq!(
        reports::env::slug("NVIDIA H100 80GB HBM3"),
        "nvidia-h100-80gb-hbm3"
    );
    assert_eq!(
        reports::env::slug("Intel(R) Xeon(R) Processor-2cpu"),
        "intel-r-xeon-r-processor-2cpu"
    );
    assert_eq!(reports::env::utc(1_795_656_922), "2026-11-26T01:35:22Z");
}

#[test]
fn commands_name_no_local_paths() {
    let cwd = std::path::Path::new("/home/someone/lenet");
    let args = [
        "/home/someone/lenet/target/release/lenet",
        "train",
        "--data-dir",
        "/usr/share/datasets/mnist",
        "--out",
        "/home/someone/lenet/results/x/tch-lenet2.json",
        "--save=/tmp/abc/model.safetensors",
        "--out",
        "relative/r.json",
    ]
    .map(String::from);
    assert_eq!(
        reports::env::portable_command(args, Some(cwd)),
        [
            "lenet",
            "train",
            "--data-dir",
            "mnist",
            "--out",
            "results/x/tch-lenet2.json",
            "--save=model.safetensors",
            "--out",
            "relative/r.json",
        ]
    );
}

#[test]
fn the_defaults_table_has_a_row_per_framework() {
    let table = summary::defaults_table(&catalogue());
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert_eq!(lines[2], "| pytorch | a | b | c | d | e | f | g |");
}

#[test]
fn model_summaries_show_shapes_and_counts() {
    let text = summary::model_summary(&ModelKind::LeNet2.spec());
    assert!(text.contains("[batch, 16, 5, 5]"), "{text}");
    assert!(text.contains("total parameters: 61706"), "{text}");
}

/// A table over runs of several plans opens with a warning naming each plan and its rows; runs of
/// one plan (at several points, in both profiles) get none.
#[test]
fn a_table_of_several_plans_says_so() {
    let long = report("tch", &[5.0, 4.0, 4.0], &[0.9, 0.95, 0.97]);
    let mut other = report("burn", &[5.0, 4.0, 4.0], &[0.9, 0.95, 0.97]);
    other.spec.batch_size = 128;
    other.spec.profile = common::harness::Profile::Tuned;
    assert_eq!(
        results::folder::mixed_plans(&[long.clone(), other.clone()]),
        None
    );
    let mut short = report("pytorch", &[0.2], &[0.35]);
    short.spec.epochs = 1;
    short.spec.limit = Some(640);
    let warning = results::folder::mixed_plans(&[long.clone(), other, short.clone()]).unwrap();
    assert_eq!(
        warning,
        "**Warning: these runs do not share one plan, so rows of different plans do not \
         compare.** 10 epochs on every image of MNIST (tch lenet2, burn (tuned) lenet2); 1 epoch \
         on the first 640 images of MNIST (pytorch lenet2)."
    );
    // In a folder, the table carries it.
    let dir = tempfile::tempdir().unwrap();
    for (name, r) in [("tch-lenet2.json", &long), ("pytorch-lenet2.json", &short)] {
        r.write(&dir.path().join(name)).unwrap();
    }
    let folder = results::ResultsFolder::load(dir.path(), "test", &catalogue()).unwrap();
    let table = folder.table(&catalogue());
    assert!(
        table.starts_with("**Warning: these runs do not share one plan"),
        "{table}"
    );
}
