//! The front page's answer: for each need a user has, the Rust framework the committed results say
//! wins, by how much, on which machine, with a link to the folder; or, where the results cannot say,
//! that they cannot. Made from the results folders, the build-cost records, the registry and the
//! models' listings; `cargo xtask report` writes it into the README between two marker lines, and a
//! test fails when the README and the results disagree.
//!
//! The rules: a Rust row is a framework the registry runs with `lenet` (not a Python row); a
//! framework's time is the mean over its repeats of each run's median epoch (epochs 2..N), in its
//! faster profile; a comparison is read from the folder with the most Rust frameworks that meet the
//! need's conditions (the most recent one on a tie), never assembled across folders, so that every
//! ratio is between runs of one machine.

use std::collections::BTreeMap;
use std::path::Path;

use common::framework::Runner;
use common::harness::{InitKind, BATCH_SIZE};
use common::{Dataset, ModelKind};

use crate::folder::ResultsFolder;
use crate::summary::thousands;
use reports::cost::BuildCost;
use reports::Catalogue;
use reports::RunReport;

/// The line that opens the generated verdict in the README.
pub const BEGIN: &str =
    "<!-- verdict: written by `cargo xtask report` from results/; edit crates/results/src/verdict.rs instead -->";
/// The line that closes it.
pub const END: &str = "<!-- end of verdict -->";

/// Cores up to which a CPU machine counts as "few".
pub const FEW_CORES: usize = 4;

/// The runs the few-core CPU answers and headline read: on the CPU of a machine with few cores, at
/// the recipe's batch size, with the framework's own threads.
fn few_core_cpu_at_recipe_batch(r: &RunReport) -> bool {
    r.device() == "cpu"
        && r.spec.batch_size == BATCH_SIZE
        && r.environment.logical_cpus <= FEW_CORES
        && r.spec.threads.is_none()
}

/// The runs the GPU answers and headline read: on CUDA, at the recipe's batch size.
fn gpu_at_recipe_batch(r: &RunReport) -> bool {
    r.device() == "cuda" && r.spec.batch_size == BATCH_SIZE
}

/// The smallest batch size that counts as "large".
pub const LARGE_BATCH: usize = 512;

/// One need and what the results say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub need: &'static str,
    /// The winner, or `None` where the results cannot tell.
    pub winner: Option<String>,
    /// By how much, or why the results cannot tell.
    pub says: String,
    /// The folder the figures come from, relative to the repository, when there is one.
    pub source: Option<String>,
}

/// What the verdict is made from.
pub struct Evidence<'a> {
    /// The repository: links are relative to it.
    pub root: &'a Path,
    pub folders: &'a [ResultsFolder],
    /// Each build-cost folder (relative to the repository) with its records.
    pub costs: &'a [(String, Vec<BuildCost>)],
    pub catalogue: &'a Catalogue,
    /// Code lines of each framework's two model listings (docs/models.md).
    pub listing_lines: &'a BTreeMap<String, usize>,
}

/// A framework's time in one folder and model: the mean of its runs' median epochs, in its faster
/// profile.
#[derive(Debug, Clone)]
struct Timed {
    framework: String,
    /// The profile's label ("" for idiomatic, " (tuned)").
    profile: String,
    seconds: f64,
}

impl Timed {
    fn label(&self) -> String {
        format!("{}{}", self.framework, self.profile)
    }
}

impl Evidence<'_> {
    fn is_rust(&self, framework: &str) -> bool {
        self.catalogue
            .get(framework)
            .is_some_and(|f| f.runner == Runner::Lenet)
    }

    fn baseline(&self) -> &str {
        self.catalogue.baseline().unwrap_or("pytorch")
    }

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
    }

    /// The reports of `folder` that train the recipe's data from the shared weights and meet `keep`.
    fn kept<'f>(
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
    fn best_folder(&self, keep: &dyn Fn(&RunReport) -> bool) -> Option<&ResultsFolder> {
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
    fn times(
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

    fn source(&self, folder: &ResultsFolder) -> Option<String> {
        Some(self.rel(&folder.dir))
    }

    /// `dir` relative to the repository.
    fn rel(&self, dir: &Path) -> String {
        dir.strip_prefix(self.root)
            .unwrap_or(dir)
            .display()
            .to_string()
    }

    fn machine(folder: &ResultsFolder) -> String {
        folder
            .reports
            .first()
            .map(|r| match &r.environment.gpu {
                Some(gpu) if r.device() == "cuda" => gpu.clone(),
                _ => format!(
                    "{} ({} cores)",
                    r.environment.cpu_model, r.environment.logical_cpus
                ),
            })
            .unwrap_or_default()
    }

    fn cannot(need: &'static str, why: &str) -> Verdict {
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
            let rust: Vec<&Timed> = times
                .iter()
                .filter(|t| self.is_rust(&t.framework))
                .collect();
            let Some(first) = rust.first() else { continue };
            winner.get_or_insert_with(|| first.label());
            let mut text = format!(
                "{} {}: {}",
                model.title(),
                first.label(),
                seconds(first.seconds)
            );
            if let Some(base) = times.iter().find(|t| t.framework == self.baseline()) {
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
        Verdict {
            need,
            says: format!(
                "per epoch on {}: {}",
                Self::machine(folder),
                parts.join("; ")
            ),
            winner,
            source: self.source(folder),
        }
    }

    /// Images per second at the largest batch size measured on each device, from batch
    /// [`LARGE_BATCH`] up.
    fn large_batch(&self) -> Verdict {
        let need = "Fastest at large batch (512 and up)";
        let mut parts = Vec::new();
        let mut winner = None;
        let mut source = None;
        for device in ["cuda", "cpu"] {
            let keep = |r: &RunReport| r.device() == device && r.spec.batch_size >= LARGE_BATCH;
            let Some(folder) = self.best_folder(&keep) else {
                parts.push(format!(
                    "{}: not measured yet (no committed {} sweep)",
                    device.to_uppercase(),
                    device.to_uppercase()
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
                let rust: Vec<&Timed> = times
                    .iter()
                    .filter(|t| self.is_rust(&t.framework))
                    .collect();
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
                if let Some(base) = times.iter().find(|t| t.framework == self.baseline()) {
                    text.push_str(&format!(
                        " ({} {}'s time)",
                        ratio(first.seconds, base.seconds),
                        base.label()
                    ));
                }
                rows.push(text);
            }
            parts.push(format!(
                "{} at batch {batch} on {}: {}",
                device.to_uppercase(),
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
        let Some(to_tch) = baseline.and_then(|b| b.step_tolerance) else {
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
            sci(to_tch)
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
        let keep = |r: &RunReport| {
            r.device() == "cuda"
                && r.spec.batch_size == BATCH_SIZE
                && r.joules_per_thousand_images().is_some()
        };
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
        Verdict {
            need,
            says: format!(
                "the whole board's energy (NVML) on {}: {}",
                Self::machine(folder),
                parts.join("; ")
            ),
            winner,
            source: self.source(folder),
        }
    }

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
            let e = row_of(&mut rows, r.label())
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
        let gpu = |r: &RunReport| r.device() == "cuda" && r.spec.batch_size == BATCH_SIZE;
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
            row_of(&mut rows, r.label())
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

/// The values of the row labelled `label`, added (empty) after the others the first time.
fn row_of<T: Default>(rows: &mut Vec<(String, T)>, label: String) -> &mut T {
    let i = match rows.iter().position(|(l, _)| *l == label) {
        Some(i) => i,
        None => {
            rows.push((label, T::default()));
            rows.len() - 1
        }
    };
    &mut rows[i].1
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// `a` as a multiple of `b`'s time ("0.93x").
fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

fn times_over(a: f64, b: f64) -> String {
    format!("{:.1}x", a / b)
}

fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1024.0 * 1024.0);
    if m < 100.0 {
        format!("{m:.1}")
    } else {
        thousands(m.round() as usize)
    }
}

fn minutes(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}:{:02} min", s / 60, s % 60)
}

fn sci(x: f64) -> String {
    let e = x.log10().floor() as i32;
    let m = x / 10f64.powi(e);
    if (m - 1.0).abs() < 1e-9 {
        format!("1e{e}")
    } else {
        format!("{m:.0}e{e}")
    }
}

/// The generated part of the front page: the verdict, then the headline tables.
pub fn front_page(evidence: &Evidence) -> String {
    let mut out = markdown(&evidence.verdicts());
    for (title, table) in evidence.headlines() {
        out.push_str(&format!(
            "\n**{title}**, median epoch (2..N), batch 32:\n\n{table}"
        ));
    }
    if let Some((title, table)) = evidence.device_headline() {
        out.push_str(&format!(
            "\n**{title}**, from each row's kernel pass (CUPTI), batch 32: the kernels a step \
             launches, the time a kernel was running per step, the device floor (that time times \
             an epoch's steps: a host with no overhead) and the timed epoch over it:\n\n{table}"
        ));
    }
    out
}

/// The verdict as a Markdown table, links relative to the README (the repository's root).
pub fn markdown(verdicts: &[Verdict]) -> String {
    let mut out =
        String::from("| if you need | take | because (measured) | from |\n|---|---|---|---|\n");
    for v in verdicts {
        let winner = v
            .winner
            .as_deref()
            .map_or("not known yet".to_string(), |w| format!("**{w}**"));
        let source = match &v.source {
            Some(s) if Path::new(s).extension().is_none() && s.starts_with("results") => {
                format!("[{s}]({s}/summary.md)")
            }
            Some(s) => s.clone(),
            None => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {winner} | {} | {source} |\n",
            v.need, v.says
        ));
    }
    out
}

/// The page the verdict is on, relative to the repository.
pub const PAGE: &str = "README.md";

/// The front page's generated part from the repository at `root`: its results folders and
/// build-cost records under `results/`, and its models' listings.
pub fn front_page_at(root: &Path, catalogue: &Catalogue) -> Result<String, common::Error> {
    let out = root.join("results");
    let folders = crate::folder::load_all(&out, catalogue)?;
    let mut costs = Vec::new();
    for dir in crate::folder::cost_dirs(&out)? {
        let rel = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        costs.push((rel, reports::cost::load(&dir)?));
    }
    let sources = crate::listings::sources(catalogue, root)?;
    let listing_lines = crate::listings::line_counts(&sources)?;
    Ok(front_page(&Evidence {
        root,
        folders: &folders,
        costs: &costs,
        catalogue,
        listing_lines: &listing_lines,
    }))
}

/// The front page ([`PAGE`]) at `root`, as it is and as the results say it should be.
pub fn page(root: &Path, catalogue: &Catalogue) -> Result<(String, String), common::Error> {
    let file = root.join(PAGE);
    let current = std::fs::read_to_string(&file)
        .map_err(|e| common::Error::io(format!("cannot read {}", file.display()), e))?;
    let wanted = replace_region(&current, &front_page_at(root, catalogue)?)?;
    Ok((current, wanted))
}

/// Rewrites the front page's generated part; returns whether it changed.
pub fn update_page(root: &Path, catalogue: &Catalogue) -> Result<bool, common::Error> {
    let (current, wanted) = page(root, catalogue)?;
    if current == wanted {
        return Ok(false);
    }
    let file = root.join(PAGE);
    common::fsio::write_atomic(&file, wanted.as_bytes())
        .map_err(|e| common::Error::io(format!("cannot write {}", file.display()), e))?;
    Ok(true)
}

/// `text` with the region between [`BEGIN`] and [`END`] replaced by `body`; an error when the
/// markers are missing or out of order.
pub fn replace_region(text: &str, body: &str) -> Result<String, common::Error> {
    let invalid = |what: &str| common::Error::Invalid(format!("the verdict's markers: {what}"));
    let start = text.find(BEGIN).ok_or_else(|| invalid("no opening line"))?;
    let end = text[start..]
        .find(END)
        .map(|e| start + e)
        .ok_or_else(|| invalid("no closing line after the opening one"))?;
    Ok(format!(
        "{}{BEGIN}\n\n{}\n{}",
        &text[..start],
        body.trim_end(),
        &text[end..]
    ))
}
