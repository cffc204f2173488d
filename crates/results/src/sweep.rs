//! Sweeps: comparisons whose runs vary the batch size, or the CPU threads, besides the framework
//! (`cargo xtask compare --sweep`). A series is the runs of one (dataset, model, device, init) along
//! one axis: the batch series at each framework's own threads, the thread series at the recipe's
//! batch size. Each series becomes a compact table of images per second (a row per framework, a
//! column per point, each cell with its ratio to the baseline at the same point) and a log-log
//! chart (`plots`); the full numbers of every point (accuracy, memory, host share) are the rows of
//! the comparison table.

use std::collections::{BTreeMap, BTreeSet};

use common::harness::{InitKind, BATCH_SIZE};
use common::{Dataset, ModelKind};

use crate::summary::{self, mean_sd};
use reports::Catalogue;
use reports::RunReport;

/// What a series varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Axis {
    BatchSize,
    Threads,
}

impl Axis {
    pub fn name(self) -> &'static str {
        match self {
            Axis::BatchSize => "batch size",
            Axis::Threads => "threads",
        }
    }

    /// The file-name part of the series' chart.
    pub fn slug(self) -> &'static str {
        match self {
            Axis::BatchSize => "batch-size",
            Axis::Threads => "threads",
        }
    }

    /// The run's value on this axis, when the run belongs to this axis' series.
    fn value(self, r: &RunReport) -> Option<usize> {
        match (self, r.spec.threads) {
            (Axis::BatchSize, None) => Some(r.spec.batch_size),
            (Axis::Threads, Some(n)) if r.spec.batch_size == BATCH_SIZE => Some(n),
            _ => None,
        }
    }
}

/// The runs of one (dataset, model, device, init) along one axis.
#[derive(Debug)]
pub struct Series<'a> {
    pub dataset: Dataset,
    pub model: ModelKind,
    pub device: String,
    pub init: InitKind,
    pub axis: Axis,
    /// The points, ascending.
    pub points: Vec<usize>,
    /// Per framework in display order (the baseline first), its runs at each point.
    pub frameworks: Vec<(String, BTreeMap<usize, Vec<&'a RunReport>>)>,
}

impl Series<'_> {
    pub fn title(&self) -> String {
        let model = match self.model {
            ModelKind::LeNet2 => "LeNet2",
            ModelKind::LeNet3 => "LeNet3",
        };
        format!(
            "{model} on {} ({}): images per second by {}",
            self.dataset.title(),
            self.device,
            self.axis.name()
        )
    }

    /// The mean images per second of a framework's successful runs at `point`.
    pub fn images_per_second(&self, framework: &str, point: usize) -> Option<f64> {
        let (_, runs) = self.frameworks.iter().find(|(f, _)| f == framework)?;
        let values: Vec<f64> = runs
            .get(&point)?
            .iter()
            .filter(|r| r.succeeded())
            .filter_map(|r| r.images_per_second())
            .collect();
        mean_sd(&values).map(|(m, _)| m)
    }
}

/// Every series in `reports` with two points or more, in display order.
pub fn series<'a>(reports: &'a [RunReport], catalogue: &Catalogue) -> Vec<Series<'a>> {
    let mut sorted: Vec<&RunReport> = reports.iter().collect();
    let baseline = catalogue.baseline();
    sorted.sort_by(|a, b| summary::display_order(a, b, baseline));
    let mut out = Vec::new();
    for axis in [Axis::BatchSize, Axis::Threads] {
        type Group<'a> = Vec<(String, BTreeMap<usize, Vec<&'a RunReport>>)>;
        let mut groups: BTreeMap<(Dataset, ModelKind, String, InitKind), Group<'_>> =
            BTreeMap::new();
        for r in &sorted {
            let Some(point) = axis.value(r) else {
                continue;
            };
            let key = (r.spec.dataset, r.spec.model, r.device(), r.spec.init);
            let frameworks = groups.entry(key).or_default();
            // A framework in each profile is a line of its own (`tch (tuned)`).
            summary::entry(frameworks, r.label())
                .entry(point)
                .or_default()
                .push(r);
        }
        for ((dataset, model, device, init), frameworks) in groups {
            let points: BTreeSet<usize> = frameworks
                .iter()
                .flat_map(|(_, runs)| runs.keys().copied())
                .collect();
            if points.len() < 2 {
                continue;
            }
            out.push(Series {
                dataset,
                model,
                device,
                init,
                axis,
                points: points.into_iter().collect(),
                frameworks,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.dataset, a.model, &a.device, a.init, a.axis)
            .cmp(&(b.dataset, b.model, &b.device, b.init, b.axis))
    });
    out
}

/// Images per second with thousands separators.
fn rate(v: f64) -> String {
    summary::thousands(v.round() as usize)
}

/// One Markdown table per series: images per second at each point, with the time ratio to the
/// baseline at the same point, as in the comparison table (below 1: faster than the baseline); "FAILED" where every run of a point
/// failed, with the first line of its reason below the table. Empty when there is no series.
pub fn tables(reports: &[RunReport], catalogue: &Catalogue) -> String {
    let baseline = catalogue.baseline();
    let mut text = String::new();
    for s in series(reports, catalogue) {
        text.push_str(&format!("### {}\n\n", s.title()));
        text.push_str(&format!(
            "| framework | {} |\n|---|{}\n",
            s.points
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(s.points.len())
        ));
        let mut failures = Vec::new();
        for (framework, runs) in &s.frameworks {
            let cells: Vec<String> = s
                .points
                .iter()
                .map(|&p| {
                    let Some(at) = runs.get(&p) else {
                        return "-".to_string();
                    };
                    match s.images_per_second(framework, p) {
                        Some(v) => {
                            let base = baseline
                                .filter(|b| b != framework)
                                .and_then(|b| s.images_per_second(b, p));
                            match base {
                                Some(b) if v > 0.0 => format!("{} ({:.2}x)", rate(v), b / v),
                                _ => rate(v),
                            }
                        }
                        None => {
                            if let Some(reason) = at.iter().find_map(|r| r.failure.as_deref()) {
                                let first = reason.lines().next().unwrap_or("");
                                failures
                                    .push(format!("{framework} at {} {p}: {first}", s.axis.name()));
                            }
                            "FAILED".to_string()
                        }
                    }
                })
                .collect();
            text.push_str(&format!("| {framework} | {} |\n", cells.join(" | ")));
        }
        text.push('\n');
        for f in failures {
            text.push_str(&format!("- {f}\n"));
        }
        if !text.ends_with("\n\n") {
            text.push('\n');
        }
    }
    text
}
