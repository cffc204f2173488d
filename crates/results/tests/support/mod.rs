//! What the results tests share: a catalogue with PyTorch as the baseline and tch, a backend on a
//! given device, and reading one cell of a Markdown table.

use common::framework::{FrameworkDefaults, FrameworkInfo, Runner};
use common::harness::BackendInfo;
use common::DeviceKind;
use results::Catalogue;

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
