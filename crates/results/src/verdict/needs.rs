//! The needs of the front page, each answered from the evidence: the fastest on the GPU, at large
//! batch and on few CPU cores, the build, no native dependencies, closeness to PyTorch, energy and
//! the least code.

use std::collections::BTreeMap;

use common::framework::Runner;
use common::harness::DeviceKind;
use common::ModelKind;
use reports::cost::BuildCost;
use reports::RunReport;

use super::filters::{
    few_core_cpu_at_recipe_batch, gpu_at_recipe_batch, gpu_energy_at_recipe_batch, large_batch_on,
    Timed, LARGE_BATCH,
};
use super::text::{mib, minutes, ratio, sci, seconds, times_over};
use super::{Evidence, Verdict};
use crate::folder::ResultsFolder;
use crate::summary::thousands;

impl Evidence<'_> {
    /// Every need, in the front page's order.
    pub fn verdicts(&self) -> Vec<Verdict> {
        vec![
            self.fastest(
                "Fastest GPU training at the recipe's batch (32)",
                gpu_at_recipe_batch,
            ),
            self.large_batch(),
            self.fastest(
                "Fastest CPU training on few cores (batch 32)",
                few_core_cpu_at_recipe_batch,
            ),
            self.build(),
            self.no_native(),
            self.step_for_step(),
            self.energy(),
            self.least_code(),
        ]
        .into_iter()
        .chain(self.serving_verdicts())
        .collect()
    }

    /// The verdict on `need` read from `folder`: `what` on its machine, then each model's `parts`.
    fn read_from(
        &self,
        folder: &ResultsFolder,
        need: &'static str,
        winner: Option<String>,
        what: &str,
        parts: &[String],
    ) -> Verdict {
        Verdict {
            need,
            says: format!("{what} on {}: {}", Self::machine(folder), parts.join("; ")),
            winner,
            source: self.source(folder),
        }
    }

    pub(super) fn cannot(need: &'static str, why: &str) -> Verdict {
        Verdict {
            need,
            winner: None,
            says: why.to_string(),
            source: None,
        }
    }

    /// The fastest Rust row of the best folder for `keep`, per model, against the baseline's
    /// fastest profile and the next Rust row.
    fn fastest(&self, need: &'static str, keep: impl Fn(&RunReport) -> bool) -> Verdict {
        let Some(folder) = self.best_folder(&keep) else {
            return Self::cannot(need, "no committed comparison has these runs yet");
        };
        let mut winner = None;
        let mut parts = Vec::new();
        for model in ModelKind::ALL {
            let times = Self::times(folder, model, &keep);
            let rust = self.rust(&times);
            let Some(first) = rust.first() else { continue };
            winner.get_or_insert_with(|| first.label());
            let mut text = format!(
                "{} {}: {}",
                model.title(),
                first.label(),
                seconds(first.seconds)
            );
            if let Some(base) = self.baseline_of(&times) {
                text.push_str(&format!(
                    ", {} {}'s {}",
                    ratio(first.seconds, base.seconds),
                    base.label(),
                    seconds(base.seconds)
                ));
            }
            if let Some(next) = rust.get(1) {
                text.push_str(&format!(
                    "; next Rust row {} {} ({} slower)",
                    next.label(),
                    seconds(next.seconds),
                    times_over(next.seconds, first.seconds)
                ));
            }
            parts.push(text);
        }
        self.read_from(folder, need, winner, "per epoch", &parts)
    }

    /// Images per second at the largest batch size measured on each device, from batch
    /// [`LARGE_BATCH`] up.
    fn large_batch(&self) -> Verdict {
        let need = "Fastest at large batch (512 and up)";
        let mut parts = Vec::new();
        let mut winner = None;
        let mut source = None;
        for device in [DeviceKind::Cuda, DeviceKind::Cpu] {
            let keep = large_batch_on(device);
            let name = device.to_string().to_uppercase();
            let Some(folder) = self.best_folder(&keep) else {
                parts.push(format!(
                    "{name}: not measured yet (no committed {name} sweep)"
                ));
                continue;
            };
            let batch = Self::kept(folder, &keep)
                .map(|r| r.spec.batch_size)
                .max()
                .unwrap_or(LARGE_BATCH);
            let at = |r: &RunReport| keep(r) && r.spec.batch_size == batch;
            let mut rows = Vec::new();
            for model in ModelKind::ALL {
                let times = Self::times(folder, model, &at);
                let rust = self.rust(&times);
                let Some(first) = rust.first() else { continue };
                let images = Self::kept(folder, &at)
                    .find(|r| r.spec.model == model)
                    .map_or(0, |r| r.train_examples);
                winner.get_or_insert_with(|| first.label());
                let mut text = format!(
                    "{} {} {} images/s",
                    model.title(),
                    first.label(),
                    thousands((images as f64 / first.seconds).round() as usize)
                );
                if let Some(base) = self.baseline_of(&times) {
                    text.push_str(&format!(
                        " ({} {}'s time)",
                        ratio(first.seconds, base.seconds),
                        base.label()
                    ));
                }
                rows.push(text);
            }
            parts.push(format!(
                "{name} at batch {batch} on {}: {}",
                Self::machine(folder),
                rows.join(", ")
            ));
            source.get_or_insert_with(|| self.rel(&folder.dir));
        }
        Verdict {
            need,
            winner,
            says: parts.join("; "),
            source,
        }
    }

    /// The CPU builds' records of the most recent build-cost folder.
    fn cpu_builds(&self) -> Option<(&str, Vec<&BuildCost>)> {
        self.costs
            .iter()
            .filter_map(|(dir, costs)| {
                let cpu: Vec<&BuildCost> = costs
                    .iter()
                    .filter(|c| c.device == "cpu" && self.catalogue.get(&c.framework).is_some())
                    .collect();
                let latest = cpu.iter().map(|c| c.environment.started_unix).max()?;
                Some((latest, dir.as_str(), cpu))
            })
            .max_by_key(|(latest, _, cpu)| (cpu.len(), *latest))
            .map(|(_, dir, cpu)| (dir, cpu))
    }

    fn build(&self) -> Verdict {
        let need = "Smallest and quickest build";
        let Some((dir, builds)) = self.cpu_builds() else {
            return Self::cannot(need, "no build costs committed yet (`cargo xtask cost`)");
        };
        let size = |c: &BuildCost| c.stripped_bytes + c.native_bytes();
        let smallest = builds.iter().min_by_key(|c| size(c));
        let quickest = builds
            .iter()
            .min_by(|a, b| a.cold_build_seconds.total_cmp(&b.cold_build_seconds));
        let (Some(smallest), Some(quickest)) = (smallest, quickest) else {
            return Self::cannot(need, "no CPU build measured");
        };
        let next_size = builds
            .iter()
            .filter(|c| c.framework != smallest.framework)
            .map(|c| size(c))
            .min();
        let next_time = builds
            .iter()
            .filter(|c| c.framework != quickest.framework)
            .map(|c| c.cold_build_seconds)
            .min_by(f64::total_cmp);
        let machine = builds
            .first()
            .map(|c| {
                format!(
                    "{} ({} cores)",
                    c.environment.cpu_model, c.environment.logical_cpus
                )
            })
            .unwrap_or_default();
        let mut says = format!(
            "{} is the smallest to ship: {} MiB with its native libraries",
            smallest.framework,
            mib(size(smallest))
        );
        if let Some(n) = next_size {
            says.push_str(&format!(" (next {} MiB)", mib(n)));
        }
        says.push_str(&format!(
            "; {} builds quickest from cold: {}",
            quickest.framework,
            minutes(quickest.cold_build_seconds)
        ));
        if let Some(n) = next_time {
            says.push_str(&format!(" (next {})", minutes(n)));
        }
        says.push_str(&format!(", on {machine}"));
        let winner = if smallest.framework == quickest.framework {
            smallest.framework.clone()
        } else {
            format!(
                "{} (size), {} (time)",
                smallest.framework, quickest.framework
            )
        };
        Verdict {
            need,
            winner: Some(winner),
            says,
            source: Some(dir.to_string()),
        }
    }

    /// Among the frameworks whose CPU build loads no native library outside the system's, the
    /// fastest on few CPU cores.
    fn no_native(&self) -> Verdict {
        let need = "No native dependencies (nothing but the binary)";
        let Some((dir, builds)) = self.cpu_builds() else {
            return Self::cannot(need, "no build costs committed yet (`cargo xtask cost`)");
        };
        let pure: Vec<&str> = builds
            .iter()
            .filter(|c| c.native_libraries.is_empty())
            .map(|c| c.framework.as_str())
            .collect();
        if pure.is_empty() {
            return Self::cannot(need, "every measured build loads a native library");
        }
        let keep = few_core_cpu_at_recipe_batch;
        let mut says = format!(
            "{} load no library outside the system's ({dir})",
            pure.join(" and ")
        );
        let mut winner = pure[0].to_string();
        let mut source = Some(dir.to_string());
        if let Some(folder) = self.best_folder(&keep) {
            let times = Self::times(folder, ModelKind::LeNet2, &keep);
            let ranked: Vec<&Timed> = times
                .iter()
                .filter(|t| pure.contains(&t.framework.as_str()))
                .collect();
            if let Some(first) = ranked.first() {
                winner = first.framework.clone();
                says.push_str(&format!(
                    "; of those, {} is the fastest on {}: LeNet2 {}",
                    first.label(),
                    Self::machine(folder),
                    seconds(first.seconds)
                ));
                if let Some(next) = ranked.get(1) {
                    says.push_str(&format!(
                        " against {}'s {}",
                        next.label(),
                        seconds(next.seconds)
                    ));
                }
                source = self.source(folder);
            }
        }
        Verdict {
            need,
            winner: Some(winner),
            says,
            source,
        }
    }

    /// From the registry's parity tolerances: how closely each framework's 20 Adam steps are held
    /// to the reference's.
    fn step_for_step(&self) -> Verdict {
        let need = "Closest to PyTorch step for step";
        let baseline = self.catalogue.get(self.baseline());
        let Some(to_reference) = baseline.and_then(|b| b.step_tolerance) else {
            return Self::cannot(need, "PyTorch is not held to tch step for step");
        };
        let mut held: Vec<(&str, f64)> = self
            .catalogue
            .frameworks
            .iter()
            .filter(|f| f.runner == Runner::Lenet)
            .filter_map(|f| Some((f.name.as_str(), f.step_tolerance?)))
            .collect();
        held.sort_by(|a, b| a.1.total_cmp(&b.1));
        let reference = self
            .catalogue
            .frameworks
            .iter()
            .find(|f| f.runner == Runner::Lenet && f.parity_reference);
        let Some(reference) = reference else {
            return Self::cannot(need, "no Rust framework is the parity reference");
        };
        let mut says = format!(
            "{} is the reference every row is held to: PyTorch's 20 Adam steps agree with it within {} (relative loss)",
            reference.name,
            sci(to_reference)
        );
        if !held.is_empty() {
            says.push_str(&format!(
                "; then {}",
                held.iter()
                    .map(|(n, t)| format!("{n} within {}", sci(*t)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let loose: Vec<&str> = self
            .catalogue
            .frameworks
            .iter()
            .filter(|f| {
                f.runner == Runner::Lenet && f.step_tolerance.is_none() && !f.parity_reference
            })
            .map(|f| f.name.as_str())
            .collect();
        if !loose.is_empty() {
            says.push_str(&format!("; not held step for step: {}", loose.join(", ")));
        }
        Verdict {
            need,
            winner: Some(reference.name.clone()),
            says,
            source: Some("tests/reference.rs, tests/frameworks.rs".into()),
        }
    }

    fn energy(&self) -> Verdict {
        let need = "Least GPU energy per image (batch 32)";
        let keep = gpu_energy_at_recipe_batch;
        let Some(folder) = self.best_folder(&keep) else {
            return Self::cannot(need, "no committed GPU run measured its energy yet");
        };
        let mut parts = Vec::new();
        let mut winner = None;
        for model in ModelKind::ALL {
            let mut best: BTreeMap<String, f64> = BTreeMap::new();
            for r in Self::kept(folder, &keep).filter(|r| r.spec.model == model) {
                let j = r.joules_per_thousand_images().unwrap_or(f64::INFINITY);
                let e = best.entry(r.label()).or_insert(j);
                *e = e.min(j);
            }
            let mut rows: Vec<(String, f64)> = best.into_iter().collect();
            rows.sort_by(|a, b| a.1.total_cmp(&b.1));
            let framework = |label: &str| label.split(' ').next().unwrap_or(label).to_string();
            let rust: Vec<&(String, f64)> = rows
                .iter()
                .filter(|(l, _)| self.is_rust(&framework(l)))
                .collect();
            let Some((label, j)) = rust.first() else {
                continue;
            };
            winner.get_or_insert_with(|| label.clone());
            let mut text = format!("{} {label} {j:.1} J per 1,000 images", model.title());
            if let Some((bl, bj)) = rows.iter().find(|(l, _)| framework(l) == self.baseline()) {
                text.push_str(&format!(" ({} {bl}'s {bj:.1})", ratio(*j, *bj)));
            }
            parts.push(text);
        }
        let what = "the whole board's energy (NVML)";
        self.read_from(folder, need, winner, what, &parts)
    }

    fn least_code(&self) -> Verdict {
        let need = "Least code for the models";
        let mut rust: Vec<(&String, &usize)> = self
            .listing_lines
            .iter()
            .filter(|(f, _)| self.is_rust(f))
            .collect();
        rust.sort_by_key(|(f, n)| (**n, (*f).clone()));
        let Some((first, n)) = rust.first() else {
            return Self::cannot(need, "no listings");
        };
        let others = rust[1..]
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .chain(
                self.listing_lines
                    .get(self.baseline())
                    .map(|n| format!("PyTorch {n}")),
            )
            .collect::<Vec<_>>()
            .join(", ");
        Verdict {
            need,
            winner: Some(first.to_string()),
            says: format!("{n} lines for LeNet2 and LeNet3 together (then {others})"),
            source: Some("[docs/models.md](docs/models.md)".into()),
        }
    }
}
