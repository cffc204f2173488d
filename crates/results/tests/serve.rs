//! Serving folders (`cargo xtask serve`): their reports round trip, the summary compares each row's
//! answers with the parity reference's, the charts are drawn, and the folder is listed in the index
//! apart from the run folders.

use common::harness::DeviceKind;
use common::serve::{Latency, Throughput};
use common::{Dataset, ModelKind};
use reports::serve::{ServeReport, FOLDER, SERVE_SCHEMA};
use reports::Environment;

mod support;

/// A report of `row` for LeNet2 at one thread whose answers are `classes`, with a batch-1 p50 of
/// `p50` seconds.
fn report(row: &str, classes: &str, p50: f64) -> ServeReport {
    ServeReport {
        schema: SERVE_SCHEMA,
        framework: row.into(),
        framework_version: format!("{row} 1.0"),
        model: ModelKind::LeNet2,
        dataset: Dataset::Mnist,
        model_file: "lenet2.safetensors".into(),
        model_metadata: [
            ("framework".to_string(), "tch".to_string()),
            ("epochs".to_string(), "2".to_string()),
            ("seed".to_string(), "0".to_string()),
        ]
        .into(),
        device: DeviceKind::Cpu,
        threads: Some(1),
        load_seconds: 0.002,
        first_prediction_seconds: 0.003,
        cold_start_seconds: vec![0.3, 0.1, 0.2],
        batch1: Latency {
            count: 100,
            p50,
            p99: p50 * 2.0,
            mean: p50 * 1.1,
            min: p50 * 0.9,
            max: p50 * 3.0,
        },
        throughput: vec![Throughput {
            batch: 256,
            batches: 10,
            seconds: 1.0,
            images_per_second: 2560.0,
        }],
        test_images: classes.len(),
        accuracy: 0.5,
        classes: classes.into(),
        logits: vec![0.5; 20],
        peak_host_bytes: Some(100 << 20),
        peak_device_bytes: None,
        notes: Vec::new(),
        environment: Environment {
            cpu_model: "AMD EPYC".into(),
            logical_cpus: 2,
            ..Environment::default()
        },
    }
}

/// The summary puts the reference first and counts each row's answers that differ from its; the
/// charts are written beside it; the index lists the folder under Serving, and the folder's JSON
/// is not taken for run reports.
#[test]
fn a_serving_folder_is_summarised_and_indexed() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("amd-epyc-2cpu").join(FOLDER);
    std::fs::create_dir_all(&dir).unwrap();
    let reference = report("tch", "0123", 0.0001);
    let mut other = report("burn", "0124", 0.00005);
    // A report from CUDA holds the GPU memory too, shown beside the host's.
    other.peak_device_bytes = Some(50 << 20);
    assert_eq!(other.differing_classes(&reference), Some(1));
    assert_eq!(reference.median_cold_start(), Some(0.2));
    for r in [&other, &reference] {
        r.write(&dir.join(r.file_name())).unwrap();
    }
    assert_eq!(ServeReport::load(&dir).unwrap().len(), 2);
    let mut catalogue = support::catalogue();
    for f in &mut catalogue.frameworks {
        f.parity_reference = f.name == "tch";
    }
    let n = results::serve::write_summary(&dir, "amd-epyc-2cpu/serve", &catalogue).unwrap();
    assert_eq!(n, 2);
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let rows: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("| tch") || l.starts_with("| burn"))
        .collect();
    assert!(rows[0].starts_with("| tch | 1 |"), "{summary}");
    assert!(rows[1].starts_with("| burn | 1 |"), "{summary}");
    let table = &summary[summary.find("| row |").unwrap()..];
    let differ = |row: &str| support::cell(table, |c| c[0] == row, "differ");
    assert_eq!((differ("tch"), differ("burn")), ("0".into(), "1".into()));
    let memory = |row: &str| support::cell(table, |c| c[0] == row, "peak MiB");
    assert_eq!(
        (memory("tch"), memory("burn")),
        ("100".into(), "100 (GPU 50)".into())
    );
    assert!(
        summary.contains("trained with tch for 2 epochs from seed 0"),
        "{summary}"
    );
    for chart in [
        "serve-lenet2-t1-latency.svg",
        "serve-lenet2-t1-throughput.svg",
    ] {
        assert!(summary.contains(&format!("({chart})")), "{summary}");
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("burn"), "{chart}");
    }
    assert!(results::folder::result_dirs(out.path()).unwrap().is_empty());
    assert_eq!(results::folder::serve_dirs(out.path()).unwrap(), vec![dir]);
    results::folder::write_index(out.path(), &[]).unwrap();
    let index = std::fs::read_to_string(out.path().join("README.md")).unwrap();
    assert!(index.contains("## Serving"), "{index}");
    assert!(
        index.contains(
            "[amd-epyc-2cpu/serve](amd-epyc-2cpu/serve/summary.md) | burn, tch | lenet2 | 1 |"
        ),
        "{index}"
    );
}

/// Three significant digits, in plain notation, for the charts' labels.
#[test]
fn values_are_labelled_with_three_significant_digits() {
    let s = results::summary::significant;
    assert_eq!(s(0.017_123), "0.0171");
    assert_eq!(s(18.49), "18.5");
    assert_eq!(s(97_612.0), "97600");
    assert_eq!(s(0.0), "0");
}

/// The front page's serving needs read the serving folder: the best Rust row per model, against
/// the best row of all and the baseline, with the next Rust row; a need the folder has no Rust row
/// for says so.
#[test]
fn the_verdict_names_the_best_rust_row_for_each_serving_need() {
    let mut catalogue = support::catalogue();
    for f in &mut catalogue.frameworks {
        if f.name == "pytorch" {
            f.runner = common::framework::Runner::Python;
        }
    }
    let mut burn = catalogue.frameworks[1].clone();
    burn.name = "burn".into();
    catalogue.frameworks.push(burn);
    let mut tch = report("tch", "01", 0.000_1);
    tch.cold_start_seconds = vec![0.25, 0.26, 0.24];
    let mut burn = report("burn", "01", 0.000_05);
    burn.cold_start_seconds = vec![0.003];
    let onnx = report("onnxruntime", "01", 0.000_02);
    let pytorch = report("pytorch", "01", 0.000_13);
    let lines = std::collections::BTreeMap::new();
    let serving = vec![(
        "results/m/serve".to_string(),
        vec![tch, burn, onnx, pytorch],
    )];
    let evidence = results::verdict::Evidence {
        root: std::path::Path::new("."),
        folders: &[],
        costs: &[],
        catalogue: &catalogue,
        listing_lines: &lines,
        serving: &serving,
    };
    let verdicts = evidence.verdicts();
    let need = |name: &str| verdicts.iter().find(|v| v.need.starts_with(name)).unwrap();
    let latency = need("Lowest latency");
    assert_eq!(latency.winner.as_deref(), Some("burn"));
    assert_eq!(
        latency.says,
        "one image's p50, 1 thread on AMD EPYC (2 cores): LeNet2 burn 0.050 ms, 2.5x above \
         onnxruntime's 0.020 ms (the best row), 2.6x below pytorch's 0.130 ms; next Rust row \
         tch 0.100 ms (2.0x apart)"
    );
    assert_eq!(latency.source.as_deref(), Some("results/m/serve"));
    let cold = need("Quickest cold start");
    assert_eq!(cold.winner.as_deref(), Some("burn"));
    assert!(
        cold.says.ends_with(
            "LeNet2 burn 3.0 ms, 67x below pytorch's 0.20 s; next Rust row tch 0.25 s (83x apart)"
        ),
        "{}",
        cold.says
    );
    // Every report is at 1 thread of 2 cores: none measured the throughput on all of them.
    let throughput = need("Highest serving throughput");
    assert_eq!(throughput.winner, None);
    assert_eq!(
        throughput.says,
        "results/m/serve has no Rust row measured for this"
    );
}
