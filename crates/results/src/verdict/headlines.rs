//! The front page's headline tables: on a CPU with few cores and on a GPU, each row's time, its
//! ratio to PyTorch and its accuracy; and, where kernel passes measured it, what the GPU did per
//! training step.

use std::collections::BTreeMap;

use common::ModelKind;
use reports::RunReport;

use super::filters::{few_core_cpu_at_recipe_batch, gpu_at_recipe_batch};
use super::text::{ratio, seconds};
use super::Evidence;
use crate::folder::ResultsFolder;
use crate::summary::entry;

impl Evidence<'_> {
    /// The headline tables: on a CPU with few cores, and on a GPU, at the recipe's batch, each row
    /// (in each profile it ran) from the folder the verdict reads; `None` where there is none.
    pub fn headlines(&self) -> Vec<(String, String)> {
        let cpu = few_core_cpu_at_recipe_batch;
        let gpu = gpu_at_recipe_batch;
        let mut out = Vec::new();
        for (what, keep) in [
            ("CPU", &cpu as &dyn Fn(&RunReport) -> bool),
            ("GPU", &gpu as &dyn Fn(&RunReport) -> bool),
        ] {
            if let Some(folder) = self.best_folder(keep) {
                let dir = self.rel(&folder.dir);
                out.push((
                    format!(
                        "On a {what}: {} ([{dir}]({dir}/summary.md))",
                        Self::machine(folder)
                    ),
                    self.headline(folder, keep),
                ));
            }
        }
        out
    }

    /// Each (framework, profile) of `folder`: per model, the mean of its runs' median epochs, the
    /// ratio to the baseline's idiomatic row, and the mean final test accuracy.
    fn headline(&self, folder: &ResultsFolder, keep: &dyn Fn(&RunReport) -> bool) -> String {
        // Per row label: per model, the sums of the median epochs and of the test accuracies.
        type Sums = BTreeMap<ModelKind, (f64, f64)>;
        let mut rows: Vec<(String, Sums)> = Vec::new();
        for r in Self::kept(folder, keep) {
            let (Some(s), Some(acc)) = (
                r.median_epoch_seconds(),
                r.final_test.as_ref().map(|t| t.accuracy),
            ) else {
                continue;
            };
            let e = entry(&mut rows, r.label())
                .entry(r.spec.model)
                .or_insert((0.0, 0.0));
            e.0 += s;
            e.1 += acc;
        }
        // Means over the repeats.
        let mut counts: BTreeMap<(String, ModelKind), usize> = BTreeMap::new();
        for r in Self::kept(folder, keep) {
            if r.median_epoch_seconds().is_some() && r.final_test.is_some() {
                *counts.entry((r.label(), r.spec.model)).or_default() += 1;
            }
        }
        for (label, models) in &mut rows {
            for (model, (s, acc)) in models.iter_mut() {
                let n = counts[&(label.clone(), *model)] as f64;
                *s /= n;
                *acc /= n;
            }
        }
        let base = rows
            .iter()
            .find(|(l, _)| l == self.baseline())
            .map(|(_, m)| m.clone());
        let mut out = per_model_head(|m| {
            vec![
                format!("{m} epoch"),
                "vs PyTorch".into(),
                format!("{m} test acc"),
            ]
        });
        for (label, models) in &rows {
            out.push_str(&format!("| {label} |"));
            for model in ModelKind::ALL {
                match models.get(&model) {
                    Some((s, acc)) => {
                        let vs = base
                            .as_ref()
                            .and_then(|b| b.get(&model))
                            .map_or("-".to_string(), |(b, _)| ratio(*s, *b));
                        out.push_str(&format!(" {} | {vs} | {:.2}% |", seconds(*s), 100.0 * acc));
                    }
                    None => out.push_str(" - | - | - |"),
                }
            }
            out.push('\n');
        }
        out
    }

    /// The GPU headline's device table, where the folder the GPU headline reads has kernel passes
    /// that measured the device: per row and model, kernels and busy time per step, the device
    /// floor and the median epoch over it; `None` otherwise.
    pub fn device_headline(&self) -> Option<(String, String)> {
        let gpu = gpu_at_recipe_batch;
        let folder = self.best_folder(&gpu)?;
        // Per row label and model: kernels per step, busy µs per step, floor, epoch over floor.
        type PerModel = BTreeMap<ModelKind, Vec<[f64; 4]>>;
        let mut rows: Vec<(String, PerModel)> = Vec::new();
        for r in Self::kept(folder, &gpu) {
            let (Some(m), Some(floor), Some(times)) = (
                r.device_steps.as_ref().and_then(|d| d.measured()),
                r.device_floor_seconds(),
                r.times_floor(),
            ) else {
                continue;
            };
            entry(&mut rows, r.label())
                .entry(r.spec.model)
                .or_default()
                .push([m.kernels, m.busy_seconds * 1e6, floor, times]);
        }
        if rows.is_empty() {
            return None;
        }
        let mut out = per_model_head(|m| {
            vec![
                format!("{m} kernels/step"),
                "busy/step".into(),
                "device floor".into(),
                "epoch / floor".into(),
            ]
        });
        for (label, models) in &rows {
            out.push_str(&format!("| {label} |"));
            for model in ModelKind::ALL {
                match models.get(&model) {
                    Some(values) => {
                        let n = values.len() as f64;
                        let mean = |i: usize| values.iter().map(|v| v[i]).sum::<f64>() / n;
                        out.push_str(&format!(
                            " {:.1} | {:.0} µs | {} | {:.1}x |",
                            mean(0),
                            mean(1),
                            seconds(mean(2)),
                            mean(3)
                        ));
                    }
                    None => out.push_str(" - | - | - | - |"),
                }
            }
            out.push('\n');
        }
        let dir = self.rel(&folder.dir);
        Some((
            format!(
                "What the GPU did per training step: {} ([{dir}]({dir}/summary.md))",
                Self::machine(folder)
            ),
            out,
        ))
    }
}

/// The head of a front-page table: the framework, then each model's columns, named by `cells`
/// from the model's title.
fn per_model_head(cells: impl Fn(&str) -> Vec<String>) -> String {
    let mut out = String::from("| framework |");
    let mut width = 0;
    for model in ModelKind::ALL {
        let names = cells(model.title());
        width = names.len();
        for c in names {
            out.push_str(&format!(" {c} |"));
        }
    }
    out.push_str("\n|---|");
    for _ in ModelKind::ALL {
        out.push_str(&"---|".repeat(width));
    }
    out.push('\n');
    out
}
