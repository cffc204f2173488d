//! What the results tests share: a catalogue with PyTorch as the baseline and tch, a backend on a
//! given device, a finished report with given epoch times, and reading one cell of a Markdown
//! table.

// Each test target uses some of these.
#![allow(dead_code)]

use common::framework::{FrameworkDefaults, FrameworkInfo, Runner};
use common::harness::{BackendInfo, RunSpec};
use common::DeviceKind;
use epochs::{EpochRecord, EvalRecord};
use reports::{Catalogue, Environment, RunReport, SCHEMA};

/// PyTorch as the baseline, and tch.
pub fn catalogue() -> Catalogue {
    let info = |name: &str, baseline: bool, colour| FrameworkInfo {
        name: name.to_string(),
        runner: Runner::Lenet,
        script: None,
        baseline,
        compared_by_default: true,
        cuda_available: false,
        cuda_build: None,
        colour,
        defaults: FrameworkDefaults::row([name, "a", "b", "c", "d", "e", "f", "g"]),
        model_source: None,
        step_tolerance: None,
        parity_reference: false,
    };
    Catalogue::new(vec![
        info("pytorch", true, [214, 39, 40]),
        info("tch", false, [255, 127, 14]),
    ])
}

/// The cells of a Markdown table line, trimmed.
pub fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// The cell of `column` in the first row of `table` whose cells satisfy `row`.
pub fn cell(table: &str, row: impl Fn(&[String]) -> bool, column: &str) -> String {
    let mut lines = table.lines();
    let header = cells(lines.next().unwrap_or(""));
    let at = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column '{column}' in\n{table}"));
    lines
        .map(cells)
        .find(|c| row(c))
        .unwrap_or_else(|| panic!("no such row in\n{table}"))[at]
        .clone()
}

/// What a framework reports about itself, on `device`.
pub fn backend(device: DeviceKind) -> BackendInfo {
    BackendInfo {
        framework: String::new(),
        framework_version: String::new(),
        device,
        device_name: device.to_string(),
        threads: 2,
        features: Vec::new(),
        notes: Vec::new(),
        tuning: Vec::new(),
    }
}

/// A finished run of `spec` on 60,000 images whose epochs took `epoch_seconds` (losses 0.1,
/// accuracies 98%), with no backend.
pub fn finished(spec: RunSpec, epoch_seconds: &[f64]) -> RunReport {
    let epochs = epoch_seconds
        .iter()
        .enumerate()
        .map(|(i, &train_seconds)| EpochRecord {
            epoch: i as u32 + 1,
            train_loss: 0.1,
            train_accuracy: 0.98,
            test_loss: 0.1,
            test_accuracy: 0.98,
            train_seconds,
            eval_seconds: 0.5,
            queued_seconds: None,
            ..EpochRecord::default()
        })
        .collect();
    let eval = EvalRecord {
        loss: 0.1,
        accuracy: 0.98,
        examples: 10_000,
        seconds: 0.5,
    };
    RunReport {
        schema: SCHEMA,
        spec: RunSpec {
            epochs: epoch_seconds.len() as u32,
            ..spec
        },
        backend: None,
        environment: Environment::default(),
        parameters: 61_706,
        train_examples: 60_000,
        test_examples: 10_000,
        setup_seconds: 0.0,
        epochs,
        final_train: Some(eval.clone()),
        final_test: Some(eval),
        peak_host_bytes: None,
        peak_device_bytes: None,
        gpu_process_bytes: None,
        failure: None,
        kernel_pass: None,
        device_steps: None,
    }
}
