//! Every kind of chart read as a reader reads it: the labels on its axes. A sweep's x axis names
//! every point and nothing else; a log axis has a label at or below its smallest value and at or
//! above its largest (no decade left unlabelled); an accuracy chart labels every epoch; an
//! epoch-time chart names every bar.

use common::harness::RunSpec;
use common::ModelKind;
use reports::RunReport;
use results::plots;

mod support;
use support::{backend, catalogue, finished};

/// The text of every `<text>` element of an SVG, in order.
fn texts(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let Some(close) = rest.find("</text>") else {
            break;
        };
        out.push(rest[open_end + 1..close].trim().to_string());
        rest = &rest[close + 7..];
    }
    out
}

/// The labels that are numbers ("1,000" included).
fn numbers(svg: &str) -> Vec<f64> {
    texts(svg)
        .iter()
        .filter_map(|t| t.replace(',', "").parse::<f64>().ok())
        .collect()
}

/// A CPU run of 60,000 images whose epochs take `seconds`.
fn run(framework: &str, batch_size: usize, threads: Option<usize>, seconds: &[f64]) -> RunReport {
    let spec = RunSpec {
        batch_size,
        threads,
        ..RunSpec::recipe(framework, ModelKind::LeNet2)
    };
    RunReport {
        backend: Some(backend(common::DeviceKind::Cpu)),
        ..finished(spec, seconds)
    }
}

#[test]
fn a_log_axis_has_ticks_at_one_two_and_five() {
    assert_eq!(plots::log_ticks(600.0, 30_000.0), [1e3, 2e3, 5e3, 1e4, 2e4]);
    // A range within one decade still gets two ticks.
    let narrow = plots::log_ticks(1_100.0, 1_900.0);
    assert!(narrow.len() >= 2, "{narrow:?}");
    assert!(narrow.iter().all(|&v| (1_100.0..=1_900.0).contains(&v)));
    assert!(plots::log_ticks(0.0, 10.0).is_empty());
    assert_eq!(plots::step_125(620.0, false), 500.0);
    assert_eq!(plots::step_125(36_000.0, true), 50_000.0);
    assert_eq!(plots::step_125(2_000.0, true), 2_000.0);
}

/// The sweep of batch sizes 32, 128, 512 with one framework under 1,000 images/s: the x axis says
/// 32, 128 and 512 and no other batch size, and the y axis has a label at or below the slowest
/// point (it used to start at the first labelled decade above it).
#[test]
fn a_sweep_chart_labels_every_point_and_the_slow_ones() {
    let reports = vec![
        run("pytorch", 32, None, &[99.0, 12.0]),
        run("pytorch", 128, None, &[99.0, 4.0]),
        run("pytorch", 512, None, &[99.0, 2.0]),
        // 60,000 images in 80 s: 750 images/s.
        run("tch", 32, None, &[99.0, 80.0]),
        run("tch", 128, None, &[99.0, 70.0]),
        run("tch", 512, None, &[99.0, 75.0]),
    ];
    let charts = plots::charts(&reports, &catalogue()).unwrap();
    let chart = charts
        .iter()
        .find(|c| c.file.ends_with("by-batch-size.svg"))
        .expect("a batch-size chart");
    let labels = texts(&chart.svg);
    for point in ["32", "128", "512"] {
        assert!(
            labels.iter().any(|t| t == point),
            "no x label {point}: {labels:?}"
        );
    }
    for other in ["64", "256", "1024"] {
        assert!(
            !labels.iter().any(|t| t == other),
            "x label {other}: {labels:?}"
        );
    }
    let values = numbers(&chart.svg);
    let slowest = 60_000.0 / 80.0;
    let fastest = 60_000.0 / 2.0;
    assert!(
        values.iter().any(|&v| v <= slowest && v >= slowest / 10.0),
        "no y label at or below {slowest}: {values:?}"
    );
    assert!(
        values.iter().any(|&v| v >= fastest && v <= fastest * 10.0),
        "no y label at or above {fastest}: {values:?}"
    );
}

/// The thread series names each thread count plotted.
#[test]
fn a_thread_chart_labels_every_thread_count() {
    let reports = vec![
        run("pytorch", 32, Some(1), &[99.0, 20.0]),
        run("pytorch", 32, Some(2), &[99.0, 12.0]),
        run("pytorch", 32, Some(6), &[99.0, 6.0]),
        run("tch", 32, Some(1), &[99.0, 10.0]),
        run("tch", 32, Some(2), &[99.0, 6.0]),
        run("tch", 32, Some(6), &[99.0, 3.0]),
    ];
    let charts = plots::charts(&reports, &catalogue()).unwrap();
    let chart = charts
        .iter()
        .find(|c| c.file.ends_with("by-threads.svg"))
        .expect("a threads chart");
    let labels = texts(&chart.svg);
    for point in ["1", "2", "6"] {
        assert!(
            labels.iter().any(|t| t == point),
            "no x label {point}: {labels:?}"
        );
    }
}

/// An accuracy chart labels every epoch; an epoch-time chart names every row under its bar.
#[test]
fn accuracy_and_time_charts_label_every_epoch_and_row() {
    let reports = vec![
        run("pytorch", 32, None, &[5.0, 2.0, 2.0, 2.0, 2.0]),
        run("tch", 32, None, &[5.0, 3.0, 3.0, 3.0, 3.0]),
    ];
    let charts = plots::charts(&reports, &catalogue()).unwrap();
    let accuracy = charts
        .iter()
        .find(|c| c.file.ends_with("accuracy.svg"))
        .unwrap();
    let labels = texts(&accuracy.svg);
    for epoch in 1..=5 {
        assert!(
            labels.iter().any(|t| *t == epoch.to_string()),
            "no epoch {epoch}: {labels:?}"
        );
    }
    // The legend has a test and a train entry per row.
    assert!(labels.iter().any(|t| t == "tch train") && labels.iter().any(|t| t == "tch test"));
    let time = charts
        .iter()
        .find(|c| c.file.ends_with("epoch-time.svg"))
        .unwrap();
    let labels = texts(&time.svg);
    for row in ["pytorch", "tch"] {
        assert!(
            labels.iter().any(|t| t == row),
            "no bar label {row}: {labels:?}"
        );
    }
}
