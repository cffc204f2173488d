//! The comparison table, built from run reports alone (so it can be rebuilt from committed JSON).
//!
//! Reports of the same (dataset, model, device, framework) are repeats of one configuration with
//! different seeds: they make one row, with mean ± standard deviation where there are several.
//! The tables' columns are declared in `columns`; the tables that describe rather than measure (a
//! model's layers, each framework's defaults) are `describe`'s.

mod columns;
mod describe;

use common::harness::{DeviceKind, InitKind, Profile};
use common::{Dataset, ModelKind};

use reports::report::{DeviceSteps, RunReport};
use reports::Catalogue;

pub use columns::{part_table, Part};
pub use describe::{defaults_table, model_summary};

/// The test accuracy whose first crossing the table times.
pub const TARGET_ACCURACY: f64 = 0.99;

fn pct(a: f64) -> String {
    format!("{:.2}%", a * 100.0)
}

/// A value with three significant digits, in plain notation (`0.0171`, `18.5`, `97600`).
pub fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let rounded = if digits == 0 {
        let scale = 10f64.powi(v.abs().log10().floor() as i32 - 2);
        (v / scale).round() * scale
    } else {
        v
    };
    format!("{rounded:.digits$}")
}

/// Parameter counts with thousands separators.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd))
}

/// One value, or `mean ± sd` when there are several.
fn stat(values: &[f64], show: impl Fn(f64) -> String) -> String {
    match mean_sd(values) {
        None => "-".into(),
        Some((m, _)) if values.len() == 1 => show(m),
        Some((m, sd)) => format!("{} ± {}", show(m), show(sd)),
    }
}

/// Sorts reports for display: by dataset, model, device, then framework (the baseline first), then
/// seed.
pub fn sort(reports: &mut [RunReport], catalogue: &Catalogue) {
    let baseline = catalogue.baseline();
    reports.sort_by(|a, b| display_order(a, b, baseline));
}

/// The display order of two reports, `baseline` being the catalogue's.
pub fn display_order(a: &RunReport, b: &RunReport, baseline: Option<&str>) -> std::cmp::Ordering {
    sort_key(a, baseline)
        .cmp(&sort_key(b, baseline))
        .then(a.spec.seed.cmp(&b.spec.seed))
}

/// The settings that make a comparison's point: where runs with the same point differ only in
/// framework (and seed), they are compared with each other.
type Point = (
    Dataset,
    ModelKind,
    Option<DeviceKind>,
    InitKind,
    usize,
    Option<usize>,
    Profile,
);

/// The point of a run: dataset, model, device, init, batch size, threads asked for, profile (so a
/// tuned row is compared with the tuned baseline: each framework at its best).
fn point(r: &RunReport) -> Point {
    (
        r.spec.dataset,
        r.spec.model,
        r.device_kind(),
        r.spec.init,
        r.spec.batch_size,
        r.spec.threads,
        r.spec.profile,
    )
}

/// The same point in the idiomatic profile.
fn idiomatic(p: &Point) -> Point {
    let mut p = *p;
    p.6 = Profile::Idiomatic;
    p
}

/// What makes runs repeats of one configuration: the point and the framework.
fn key(r: &RunReport) -> (Point, String) {
    (point(r), r.spec.framework.clone())
}

/// A configuration's key with the baseline's rows first among a point's.
fn sort_key(r: &RunReport, baseline: Option<&str>) -> (Point, bool, String) {
    let (point, framework) = key(r);
    let not_baseline = Some(framework.as_str()) != baseline;
    (point, not_baseline, framework)
}

/// The repeats of one configuration.
pub struct Group<'a> {
    pub runs: Vec<&'a RunReport>,
}

impl<'a> Group<'a> {
    pub fn first(&self) -> &'a RunReport {
        self.runs[0]
    }

    pub fn succeeded(&self) -> Vec<&'a RunReport> {
        self.runs
            .iter()
            .copied()
            .filter(|r| r.succeeded())
            .collect()
    }

    fn values(&self, f: impl Fn(&RunReport) -> Option<f64>) -> Vec<f64> {
        self.succeeded().into_iter().filter_map(f).collect()
    }

    /// Mean median-epoch time of the successful runs.
    pub fn mean_median_epoch(&self) -> Option<f64> {
        mean_sd(&self.values(RunReport::median_epoch_seconds)).map(|(m, _)| m)
    }
}

/// The value kept under `label` in `rows`, added (empty) after the others the first time: rows
/// kept in the order they first appear.
pub(crate) fn entry<T: Default>(rows: &mut Vec<(String, T)>, label: String) -> &mut T {
    let i = match rows.iter().position(|(l, _)| *l == label) {
        Some(i) => i,
        None => {
            rows.push((label, T::default()));
            rows.len() - 1
        }
    };
    &mut rows[i].1
}

/// Groups sorted reports by configuration, keeping their order.
pub fn groups(reports: &[RunReport]) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    for r in reports {
        match out.last_mut() {
            Some(g) if key(g.first()) == key(r) => g.runs.push(r),
            _ => out.push(Group { runs: vec![r] }),
        }
    }
    out
}

/// The speed-and-accuracy table: time per epoch, the ratio to the baseline ("vs PyTorch"),
/// throughput, time to 99%, accuracy.
pub fn table(reports: &[RunReport], catalogue: &Catalogue) -> String {
    part_table(reports, catalogue, Part::Speed)
}

/// The resources table: parameters, host and device memory, the GPU's memory and energy, the host's
/// share of the epoch.
pub fn resources(reports: &[RunReport], catalogue: &Catalogue) -> String {
    part_table(reports, catalogue, Part::Resources)
}

/// The device table, from the kernel passes joined to the runs: kernels, copies and busy time per
/// step, the device floor and how far each run's epoch is from it; empty where no run has a pass.
pub fn device(reports: &[RunReport], catalogue: &Catalogue) -> String {
    if reports.iter().all(|r| r.device_steps.is_none()) {
        return String::new();
    }
    part_table(reports, catalogue, Part::Device)
}

/// The kernels that took the most device time per step, for each row whose kernel pass measured
/// them (its last epoch), as a Markdown list.
pub fn top_kernels(reports: &[RunReport]) -> String {
    let mut text = String::new();
    for g in groups(reports) {
        let Some(top) = g
            .succeeded()
            .into_iter()
            .find_map(|r| r.device_steps.as_ref())
            .and_then(DeviceSteps::measured)
            .map(|m| &m.top)
        else {
            continue;
        };
        if top.is_empty() {
            continue;
        }
        let r = g.first();
        let kernels: Vec<String> = top
            .iter()
            .map(|k| {
                format!(
                    "`{}` {:.1}x, {:.1} µs",
                    short_kernel(&k.name),
                    k.launches,
                    k.seconds * 1e6
                )
            })
            .collect();
        text.push_str(&format!(
            "- {} {} ({}, batch {}): {}\n",
            r.label(),
            r.spec.model,
            r.device(),
            r.spec.batch_size,
            kernels.join("; ")
        ));
    }
    text
}

/// A kernel's name short enough for a list: its return type, namespaces, template arguments and
/// parameters left out (`void at::native::foo<float>(int)` → `foo`).
pub fn short_kernel(name: &str) -> String {
    let cut = name.find(['<', '(']).unwrap_or(name.len());
    let short = name[..cut].split_whitespace().last().unwrap_or_default();
    let short = short.rsplit("::").next().unwrap_or_default();
    if short.is_empty() {
        name.chars().take(60).collect()
    } else {
        short.chars().take(60).collect()
    }
}
