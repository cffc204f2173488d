//! Sweeps: the series found in a folder's reports, their tables and charts, and the comparison
//! table's rows per point.

use common::harness::RunSpec;
use common::ModelKind;
use reports::RunReport;
use results::sweep::{self, Axis};
use results::{plots, summary};

mod support;
use support::{backend, catalogue, cell, finished};

/// A two-epoch run of 60,000 images whose second epoch takes `seconds`.
fn run(framework: &str, batch_size: usize, threads: Option<usize>, seconds: f64) -> RunReport {
    let spec = RunSpec {
        batch_size,
        threads,
        ..RunSpec::recipe(framework, ModelKind::LeNet2)
    };
    RunReport {
        backend: Some(backend(common::DeviceKind::Cpu)),
        ..finished(spec, &[99.0, seconds])
    }
}

fn failed(framework: &str, batch_size: usize, reason: &str) -> RunReport {
    let mut r = run(framework, batch_size, None, 1.0);
    r.epochs.clear();
    r.final_test = None;
    r.final_train = None;
    r.failure = Some(reason.into());
    r
}

/// A sweep on the CPU: batch sizes 32, 128, 512 at each framework's threads, then 1 and 2 threads
/// at batch 32.
fn reports() -> Vec<RunReport> {
    vec![
        run("tch", 32, None, 6.0),
        run("tch", 128, None, 3.0),
        failed("tch", 512, "out of memory\nmore"),
        run("pytorch", 32, None, 12.0),
        run("pytorch", 128, None, 4.0),
        run("pytorch", 512, None, 2.0),
        run("pytorch", 32, Some(1), 20.0),
        run("pytorch", 32, Some(2), 12.0),
        run("tch", 32, Some(1), 10.0),
        run("tch", 32, Some(2), 6.0),
    ]
}

#[test]
fn a_sweep_has_a_batch_series_and_a_thread_series() {
    let reports = reports();
    let series = sweep::series(&reports, &catalogue());
    assert_eq!(series.len(), 2);
    let batch = &series[0];
    assert_eq!(batch.axis, Axis::BatchSize);
    assert_eq!(batch.points, [32, 128, 512]);
    let names: Vec<&str> = batch.frameworks.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["pytorch", "tch"], "the baseline first");
    assert_eq!(batch.images_per_second("tch", 32), Some(10_000.0));
    assert_eq!(batch.images_per_second("tch", 512), None, "failed");
    let threads = &series[1];
    assert_eq!(threads.axis, Axis::Threads);
    assert_eq!(threads.points, [1, 2]);
    assert_eq!(threads.images_per_second("pytorch", 1), Some(3_000.0));
    // One point per framework is not a sweep.
    assert!(sweep::series(&reports[..1], &catalogue()).is_empty());
}

#[test]
fn the_sweep_tables_give_rates_and_ratios_at_each_point() {
    let text = sweep::tables(&reports(), &catalogue());
    assert!(
        text.contains("### LeNet2 on MNIST (cpu): images per second by batch size"),
        "{text}"
    );
    assert!(text.contains("| framework | 32 | 128 | 512 |"), "{text}");
    assert!(
        text.contains("| pytorch | 5,000 | 15,000 | 30,000 |"),
        "{text}"
    );
    // tch: twice PyTorch's rate at 32 (0.50x its time), 0.75x at 128, failed at 512.
    assert!(
        text.contains("| tch | 10,000 (0.50x) | 20,000 (0.75x) | FAILED |"),
        "{text}"
    );
    assert!(
        text.contains("- tch at batch size 512: out of memory\n"),
        "{text}"
    );
    assert!(text.contains("images per second by threads"), "{text}");
    assert!(
        text.contains("| tch | 6,000 (0.50x) | 10,000 (0.50x) |"),
        "{text}"
    );
    assert!(sweep::tables(&reports()[..1], &catalogue()).is_empty());
}

#[test]
fn the_comparison_table_keeps_points_apart() {
    let mut reports = reports();
    summary::sort(&mut reports, &catalogue());
    let table = summary::table(&reports, &catalogue());
    // Each (framework, point) is a row of its own, divided by PyTorch at the same point.
    assert_eq!(table.lines().count(), 2 + reports.len(), "{table}");
    let at = |framework: &str, batch: &str, threads: &str, column: &str| {
        cell(
            &table,
            |c| c[0] == framework && c[3] == batch && c[4] == threads,
            column,
        )
    };
    assert_eq!(at("tch", "128", "2 (own)", "vs PyTorch"), "0.75x");
    assert_eq!(at("tch", "32", "2 (own)", "vs PyTorch"), "0.50x");
    assert_eq!(at("tch", "32", "1", "vs PyTorch"), "0.50x");
    assert_eq!(at("pytorch", "32", "2", "vs PyTorch"), "1.00x");
    assert!(at("tch", "512", "2 (own)", "test acc").starts_with("FAILED: out of memory"));
}

#[test]
fn a_sweep_is_drawn_as_throughput_charts() {
    let charts = plots::charts(&reports(), &catalogue()).unwrap();
    let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "mnist-lenet2-cpu-images-per-second-by-batch-size.svg",
            "mnist-lenet2-cpu-images-per-second-by-threads.svg"
        ],
        "no accuracy or epoch-time chart mixes the points"
    );
    for c in &charts {
        assert!(
            c.svg.contains("pytorch") && c.svg.contains("tch"),
            "{}",
            c.file
        );
    }
}
