//! What the needs read: the named filters of runs (the few-core CPU, the GPU, the large batches
//! at the recipe's data), the folder a need reads from, each framework's time in it in its faster
//! profile, and the words for a folder's machine.

use std::collections::BTreeMap;
use std::path::Path;

use common::framework::Runner;
use common::harness::{DeviceKind, InitKind, BATCH_SIZE};
use common::{Dataset, ModelKind};
use reports::RunReport;

use super::Evidence;
use crate::folder::ResultsFolder;

/// Cores up to which a CPU machine counts as "few".
pub const FEW_CORES: usize = 4;

/// The smallest batch size that counts as "large".
pub const LARGE_BATCH: usize = 512;

/// The runs the few-core CPU answers and headline read: on the CPU of a machine with few cores, at
/// the recipe's batch size, with the framework's own threads.
pub(super) fn few_core_cpu_at_recipe_batch(r: &RunReport) -> bool {
    r.on_cpu()
        && r.spec.batch_size == BATCH_SIZE
        && r.environment.logical_cpus <= FEW_CORES
        && r.spec.threads.is_none()
}

/// The runs the GPU answers and headlines read: on CUDA, at the recipe's batch size.
pub(super) fn gpu_at_recipe_batch(r: &RunReport) -> bool {
    r.on_cuda() && r.spec.batch_size == BATCH_SIZE
}

/// The runs the energy answer reads: the GPU's at the recipe's batch size that measured their
/// energy.
pub(super) fn gpu_energy_at_recipe_batch(r: &RunReport) -> bool {
    gpu_at_recipe_batch(r) && r.joules_per_thousand_images().is_some()
}

/// The runs the large-batch answer reads on `device`: from batch [`LARGE_BATCH`] up.
pub(super) fn large_batch_on(device: DeviceKind) -> impl Fn(&RunReport) -> bool {
    move |r| r.on(device) && r.spec.batch_size >= LARGE_BATCH
}

/// A framework's time in one folder and model: the mean of its runs' median epochs, in its faster
/// profile.
#[derive(Debug, Clone)]
pub(super) struct Timed {
    pub(super) framework: String,
    /// The profile's label ("" for idiomatic, " (tuned)").
    pub(super) profile: String,
    pub(super) seconds: f64,
}

impl Timed {
    /// The framework with its profile (`tch (tuned)`).
    pub(super) fn label(&self) -> String {
        format!("{}{}", self.framework, self.profile)
    }
}

impl Evidence<'_> {
    /// Whether the registry runs `framework` with `lenet` (not a Python row).
    pub(super) fn is_rust(&self, framework: &str) -> bool {
        self.catalogue
            .get(framework)
            .is_some_and(|f| f.runner == Runner::Lenet)
    }

    /// The baseline's name (PyTorch).
    pub(super) fn baseline(&self) -> &str {
        self.catalogue.baseline().unwrap_or_default()
    }

    /// The Rust rows of `times`, in its order.
    pub(super) fn rust<'t>(&self, times: &'t [Timed]) -> Vec<&'t Timed> {
        times
            .iter()
            .filter(|t| self.is_rust(&t.framework))
            .collect()
    }

    /// The baseline's row of `times`.
    pub(super) fn baseline_of<'t>(&self, times: &'t [Timed]) -> Option<&'t Timed> {
        times.iter().find(|t| t.framework == self.baseline())
    }

    /// The reports of `folder` that train the recipe's data from the shared weights and meet `keep`.
    pub(super) fn kept<'f>(
        folder: &'f ResultsFolder,
        keep: &'f dyn Fn(&RunReport) -> bool,
    ) -> impl Iterator<Item = &'f RunReport> + 'f {
        folder.reports.iter().filter(move |r| {
            r.succeeded()
                && r.spec.dataset == Dataset::Mnist
                && r.spec.init == InitKind::Shared
                && r.spec.limit.is_none()
                && keep(r)
        })
    }

    /// The folder with the most Rust frameworks that have runs meeting `keep` for both models (the
    /// most recent on a tie).
    pub(super) fn best_folder(&self, keep: &dyn Fn(&RunReport) -> bool) -> Option<&ResultsFolder> {
        self.folders
            .iter()
            .filter_map(|folder| {
                let mut per_model: BTreeMap<String, Vec<ModelKind>> = BTreeMap::new();
                let mut latest = 0;
                for r in Self::kept(folder, keep).filter(|r| self.is_rust(&r.spec.framework)) {
                    per_model
                        .entry(r.spec.framework.clone())
                        .or_default()
                        .push(r.spec.model);
                    latest = latest.max(r.environment.started_unix);
                }
                let complete = per_model
                    .values()
                    .filter(|m| ModelKind::ALL.iter().all(|k| m.contains(k)))
                    .count();
                (complete > 0).then_some((complete, latest, folder))
            })
            .max_by_key(|(n, latest, _)| (*n, *latest))
            .map(|(_, _, f)| f)
    }

    /// Each framework's time in `folder` for `model`, fastest first.
    pub(super) fn times(
        folder: &ResultsFolder,
        model: ModelKind,
        keep: &dyn Fn(&RunReport) -> bool,
    ) -> Vec<Timed> {
        let mut runs: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for r in Self::kept(folder, keep).filter(|r| r.spec.model == model) {
            if let Some(s) = r.median_epoch_seconds() {
                let profile = if r.spec.profile.is_idiomatic() {
                    String::new()
                } else {
                    format!(" ({})", r.spec.profile)
                };
                runs.entry((r.spec.framework.clone(), profile))
                    .or_default()
                    .push(s);
            }
        }
        let mut best: BTreeMap<String, Timed> = BTreeMap::new();
        for ((framework, profile), seconds) in runs {
            let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
            let t = Timed {
                framework: framework.clone(),
                profile,
                seconds: mean,
            };
            if best.get(&framework).is_none_or(|b| mean < b.seconds) {
                best.insert(framework, t);
            }
        }
        let mut out: Vec<Timed> = best.into_values().collect();
        out.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        out
    }

    /// `folder` as a verdict's source.
    pub(super) fn source(&self, folder: &ResultsFolder) -> Option<String> {
        Some(self.rel(&folder.dir))
    }

    /// `dir` relative to the repository.
    pub(super) fn rel(&self, dir: &Path) -> String {
        dir.strip_prefix(self.root)
            .unwrap_or(dir)
            .display()
            .to_string()
    }

    /// The machine of `folder`'s runs: its GPU where its first run used CUDA, else its CPU.
    pub(super) fn machine(folder: &ResultsFolder) -> String {
        folder
            .reports
            .first()
            .map(|r| match &r.environment.gpu {
                Some(gpu) if r.on_cuda() => gpu.clone(),
                _ => format!(
                    "{} ({} cores)",
                    r.environment.cpu_model, r.environment.logical_cpus
                ),
            })
            .unwrap_or_default()
    }
}
