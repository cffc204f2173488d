//! Build costs (`cargo xtask cost`): their JSON round trip, the first epoch taken from a run's
//! report, the summary, and their place beside the run folders (not read as run reports, listed in
//! the index).

use common::harness::RunSpec;
use common::ModelKind;
use reports::cost::{self, BuildCost, FirstEpoch, NativeLibrary};
use reports::{Environment, RunReport};

mod support;

/// A LeNet3 run of burn whose epochs took `epoch_seconds`, 0.25 s after its start.
fn report(epoch_seconds: &[f64]) -> RunReport {
    RunReport {
        setup_seconds: 0.25,
        ..support::finished(RunSpec::recipe("burn", ModelKind::LeNet3), epoch_seconds)
    }
}

fn cost(framework: &str, first_epochs: Vec<FirstEpoch>) -> BuildCost {
    BuildCost {
        schema: cost::COST_SCHEMA,
        framework: framework.into(),
        device: "cpu".into(),
        cargo_args: vec!["--features".into(), framework.into()],
        rustc: "rustc 1.91.0".into(),
        environment: Environment {
            cpu_model: "AMD EPYC".into(),
            logical_cpus: 2,
            command: vec!["xtask".into(), "cost".into()],
            ..Environment::default()
        },
        cold_build_seconds: 125.4,
        rebuild_seconds: 20.6,
        touched: format!("crates/{framework}-impl/src/lib.rs"),
        binary_bytes: 30 * 1024 * 1024,
        stripped_bytes: 12 * 1024 * 1024,
        native_libraries: vec![
            NativeLibrary {
                name: "libtorch_cpu.so".into(),
                bytes: 400 * 1024 * 1024,
            },
            NativeLibrary {
                name: "libc10.so".into(),
                bytes: 1024 * 1024,
            },
        ],
        missing_libraries: Vec::new(),
        crates: 321,
        build_scripts: 45,
        first_epochs,
    }
}

/// The first epoch's extra is epoch 1 less the median of the later epochs; a run of one epoch
/// has no steady epoch to compare with, and a failed run none at all.
#[test]
fn the_first_epoch_comes_from_the_report() {
    let f = FirstEpoch::of(&report(&[9.0, 4.0, 2.0, 3.0]), "../burn-lenet3.json").unwrap();
    assert_eq!(f.model, "lenet3");
    assert_eq!(f.setup_seconds, 0.25);
    assert_eq!(f.steady_epoch_seconds, 3.0);
    assert_eq!(f.extra_seconds(), 6.0);
    let even = FirstEpoch::of(&report(&[9.0, 4.0, 2.0]), "r.json").unwrap();
    assert_eq!(even.steady_epoch_seconds, 3.0);
    assert!(FirstEpoch::of(&report(&[9.0]), "r.json").is_none());
    let mut failed = report(&[9.0, 4.0]);
    failed.failure = Some("out of memory".into());
    assert!(FirstEpoch::of(&failed, "r.json").is_none());
}

/// A folder of build costs reads back what was written, its summary has a row per build and per
/// first epoch, and the results index lists it while the run folders ignore its JSON.
#[test]
fn build_costs_round_trip_and_are_indexed() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("amd-epyc-2cpu").join(cost::FOLDER);
    std::fs::create_dir_all(&dir).unwrap();
    let first = FirstEpoch::of(&report(&[9.0, 4.0, 3.0]), "../burn-lenet3.json").unwrap();
    let written = [cost("burn", vec![first]), cost("candle", vec![])];
    for c in &written {
        c.write(&dir.join(format!("{}-cpu.json", c.framework)))
            .unwrap();
    }
    assert_eq!(cost::load(&dir).unwrap(), written);
    assert_eq!(
        results::cost::write_summary(&dir, "amd-epyc-2cpu/build-cost").unwrap(),
        2
    );
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("| burn | cpu | 2:05 | 0:21 | 30.0 | 12.0 | 401.0 (2) | 321 | 45 |"),
        "{summary}"
    );
    assert!(
        summary.contains("| burn | lenet3 | 0.25 | 9.00 | 3.50 | 5.50 | ../burn-lenet3.json |"),
        "{summary}"
    );
    assert!(summary.contains("`xtask cost`"), "{summary}");

    // A run folder beside it: the index lists both, each in its own table.
    let runs = out.path().join("amd-epyc-2cpu");
    report(&[9.0, 4.0])
        .write(&runs.join("burn-lenet3.json"))
        .unwrap();
    assert_eq!(
        results::folder::result_dirs(out.path()).unwrap(),
        vec![runs.clone()]
    );
    assert_eq!(results::folder::cost_dirs(out.path()).unwrap(), vec![dir]);
    let catalogue = reports::Catalogue::default();
    let folders = results::folder::load_all(out.path(), &catalogue).unwrap();
    results::folder::write_index(out.path(), &folders).unwrap();
    let index = std::fs::read_to_string(out.path().join("README.md")).unwrap();
    assert!(
        index.contains(
            "| [amd-epyc-2cpu/build-cost](amd-epyc-2cpu/build-cost/summary.md) | burn (cpu), candle (cpu) |"
        ),
        "{index}"
    );
    assert!(
        index.contains("[amd-epyc-2cpu](amd-epyc-2cpu/summary.md)"),
        "{index}"
    );
}
