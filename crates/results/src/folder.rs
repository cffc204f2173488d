//! A results folder as one value: its run reports, read once, and everything made from them (the
//! summary with its table, the charts, a line of the results index). `cargo xtask compare` and
//! `cargo xtask report` load each folder once and hand the value around.

use std::path::{Path, PathBuf};

use common::fsio::write_atomic;
use common::harness::InitKind;
use common::{Dataset, Error};

use crate::plots::{self, Picture};
use crate::summary;
use crate::sweep;
use reports::Catalogue;
use reports::RunReport;

type Result<T> = std::result::Result<T, Error>;

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Writes a picture into `dir`.
pub fn write_picture(dir: &Path, picture: &Picture) -> Result<()> {
    write_file(&dir.join(&picture.file), picture.svg.as_bytes())
}

/// One folder of run reports.
#[derive(Debug, Clone)]
pub struct ResultsFolder {
    pub dir: PathBuf,
    /// How the summary names it: the machine, and the tag if there is one.
    pub title: String,
    /// Sorted for display.
    pub reports: Vec<RunReport>,
    /// The file of each report, in the same order.
    pub files: Vec<PathBuf>,
    /// The kernel passes' reports (`NAME.kernels.json`), each joined to the timed report `NAME.json`
    /// of the same configuration as its `device_steps`, and their files.
    pub kernel_passes: Vec<(PathBuf, RunReport)>,
}

/// The folder, in a machine's results, of measurements of the machine itself rather than runs
/// (the launch queue's depth, `python/launch_queue.py`): its JSON files are not run reports.
pub const PROBES: &str = "probes";

/// How a kernel pass's report is named: after the timed run's, `NAME.json` → `NAME.kernels.json`.
pub const KERNEL_PASS_SUFFIX: &str = ".kernels.json";

/// The kernel pass's file for the timed report at `timed`.
pub fn kernel_pass_file(timed: &Path) -> PathBuf {
    let stem = timed.file_stem().unwrap_or_default().to_string_lossy();
    timed.with_file_name(format!("{stem}{KERNEL_PASS_SUFFIX}"))
}

/// Whether `path` is named as a kernel pass's report.
pub fn is_kernel_pass_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(KERNEL_PASS_SUFFIX))
}

/// A warning for a folder whose runs were made with different plans (epochs, images, dataset,
/// initial weights, learning rate), naming each plan and its rows; `None` when they share one.
pub fn mixed_plans(reports: &[RunReport]) -> Option<String> {
    let plans = reports::plan::plans(reports.iter().map(|r| &r.spec));
    if plans.len() < 2 {
        return None;
    }
    let each: Vec<String> = plans
        .iter()
        .map(|(plan, _)| {
            let mut rows: Vec<String> = reports
                .iter()
                .filter(|r| reports::Plan::of(&r.spec) == *plan)
                .map(|r| format!("{} {}", r.label(), r.spec.model))
                .collect();
            rows.dedup();
            format!("{plan} ({})", rows.join(", "))
        })
        .collect();
    Some(format!(
        "**Warning: these runs do not share one plan, so rows of different plans do not compare.** \
         {}.",
        each.join("; ")
    ))
}

/// Whether a kernel pass measured the configuration of a timed run: the same framework, model,
/// dataset, device, initial weights, batch size, threads and profile (its seed and epochs may
/// differ: the pass measures what a step launches, not what it learns).
pub fn same_configuration(timed: &RunReport, pass: &RunReport) -> bool {
    let (a, b) = (&timed.spec, &pass.spec);
    a.framework == b.framework
        && a.model == b.model
        && a.dataset == b.dataset
        && a.device == b.device
        && a.init == b.init
        && a.batch_size == b.batch_size
        && a.threads == b.threads
        && a.profile == b.profile
        && timed.device() == pass.device()
}

impl ResultsFolder {
    /// Reads every run report (`*.json`) in `dir`, and joins each kernel pass's report
    /// (`NAME.kernels.json`) to its timed run's.
    pub fn load(dir: &Path, title: &str, catalogue: &Catalogue) -> Result<Self> {
        let mut found = Vec::new();
        let mut kernel_passes = Vec::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
                .path();
            if path.extension().is_some_and(|e| e == "json") {
                let report = RunReport::read(&path)?;
                if is_kernel_pass_file(&path) {
                    kernel_passes.push((path, report));
                } else {
                    found.push((path, report));
                }
            }
        }
        kernel_passes.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, report) in &mut found {
            let pass_file = kernel_pass_file(path);
            report.device_steps = kernel_passes
                .iter()
                .find(|(p, pass)| *p == pass_file && same_configuration(report, pass))
                .and_then(|(_, pass)| reports::report::DeviceSteps::of(pass));
        }
        let baseline = catalogue.baseline();
        found.sort_by(|a, b| summary::display_order(&a.1, &b.1, baseline));
        let (files, reports) = found.into_iter().unzip();
        Ok(Self {
            dir: dir.to_path_buf(),
            title: title.to_string(),
            reports,
            files,
            kernel_passes,
        })
    }

    /// The comparison table, under a warning when its runs do not share one plan.
    pub fn table(&self, catalogue: &Catalogue) -> String {
        let table = summary::table(&self.reports, catalogue);
        match mixed_plans(&self.reports) {
            Some(warning) => format!("{warning}\n\n{table}"),
            None => table,
        }
    }

    /// Rewrites `summary.md` and the charts from the reports; returns the table.
    pub fn write_summary(&self, catalogue: &Catalogue) -> Result<String> {
        let table = self.table(catalogue);
        let charts =
            plots::charts(&self.reports, catalogue).map_err(|e| Error::Invalid(e.to_string()))?;
        for picture in &charts {
            write_picture(&self.dir, picture)?;
        }
        let resources = summary::resources(&self.reports, catalogue);
        let mut text = summary_markdown(&self.title, &self.reports, &table, &resources, catalogue);
        let sweeps = sweep::tables(&self.reports, catalogue);
        if !sweeps.is_empty() {
            text.push_str(&format!(
                "## Sweeps

{sweeps}"
            ));
        }
        text.push_str(&pictures_markdown(&self.dir, &charts));
        write_file(&self.dir.join("summary.md"), text.as_bytes())?;
        Ok(table)
    }

    /// The folder's line in the results index, `None` when it holds no report.
    fn index_line(&self, out: &Path) -> Option<String> {
        let reports = &self.reports;
        let first = reports.first()?;
        let rel = self.dir.strip_prefix(out).unwrap_or(&self.dir);
        let link = rel.to_string_lossy().replace('\\', "/");
        let machine = match &first.environment.gpu {
            Some(gpu) if reports.iter().any(|r| r.device() == "cuda") => gpu.clone(),
            _ => format!(
                "{} ({} logical CPUs)",
                first.environment.cpu_model, first.environment.logical_cpus
            ),
        };
        let unique = |f: &dyn Fn(&RunReport) -> String| {
            let mut v: Vec<String> = reports.iter().map(f).collect();
            v.sort();
            v.dedup();
            v.join(", ")
        };
        let mut frameworks: Vec<String> = Vec::new();
        for r in reports {
            if !frameworks.contains(&r.spec.framework) {
                frameworks.push(r.spec.framework.clone());
            }
        }
        Some(format!(
            "| [{link}]({link}/summary.md) | {machine} | {} | {} | {} | {} | {} |\n",
            unique(&|r| r.spec.dataset.to_string()),
            frameworks.join(", "),
            unique(&|r| r.spec.model.to_string()),
            unique(&|r| r.spec.epochs.to_string()),
            reports.len()
        ))
    }

    /// Rewrites, in place, each report whose recorded command names a path of the machine that ran
    /// it (see `env::portable_command`); returns how many it rewrote. Only the command's strings
    /// change in the file: the rest of its text, numbers included, stays byte for byte as the run
    /// wrote it (a report read and written again would not: the writer's float formatting and the
    /// fields added since differ).
    pub fn scrub_commands(&mut self) -> Result<usize> {
        let mut rewritten = 0;
        let passes = self.kernel_passes.iter_mut().map(|(f, r)| (r, &*f));
        for (report, file) in self.reports.iter_mut().zip(&self.files).chain(passes) {
            let old = &report.environment.command;
            let new = reports::env::portable_command(old.iter().cloned(), None);
            if new == *old {
                continue;
            }
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
            let scrubbed = replace_command(&text, old, &new)
                .filter(|t| {
                    let mut expected = report.clone();
                    expected.environment.command = new.clone();
                    // Joined from the kernel pass when the folder was loaded, never in the file.
                    expected.device_steps = None;
                    serde_json::from_str::<RunReport>(t).is_ok_and(|r| r == expected)
                })
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: cannot find its command in the file's text to rewrite it",
                        file.display()
                    ))
                })?;
            write_file(file, scrubbed.as_bytes())?;
            report.environment.command = new;
            rewritten += 1;
        }
        Ok(rewritten)
    }
}

/// `text` (a report's JSON) with the strings of its `"command"` array replaced, one by one, from
/// `old` to `new`; `None` when the array is not found as expected.
fn replace_command(text: &str, old: &[String], new: &[String]) -> Option<String> {
    let start = text.find("\"command\": [")? + "\"command\": [".len();
    let mut out = text[..start].to_string();
    let mut rest = &text[start..];
    for (o, n) in old.iter().zip(new) {
        let quoted = serde_json::to_string(o).ok()?;
        let at = rest.find(&quoted)?;
        // Only white space and a comma may stand between two strings of the array.
        if !rest[..at].chars().all(|c| c.is_whitespace() || c == ',') {
            return None;
        }
        out.push_str(&rest[..at]);
        out.push_str(&serde_json::to_string(n).ok()?);
        rest = &rest[at + quoted.len()..];
    }
    out.push_str(rest);
    Some(out)
}

/// Every folder under `out` that holds run reports, at any depth.
pub fn result_dirs(out: &Path) -> Result<Vec<PathBuf>> {
    Ok(walk(out)?.0)
}

/// Every build-cost folder under `out` (see `reports::cost`), sorted.
pub fn cost_dirs(out: &Path) -> Result<Vec<PathBuf>> {
    Ok(walk(out)?.1)
}

/// The folders under `out` that hold run reports, and the build-cost folders (whose JSON files are
/// not run reports), each list sorted.
fn walk(out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut runs, mut costs) = (Vec::new(), Vec::new());
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut has_reports = false;
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::io(format!("cannot read {}", dir.display()), e))?
                .path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == reports::cost::FOLDER) {
                    costs.push(path);
                } else if path.file_name().is_some_and(|n| n == PROBES) {
                    // Measurements of the machine, not runs (python/launch_queue.py's JSON).
                } else {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "json") {
                has_reports = true;
            }
        }
        if has_reports {
            runs.push(dir);
        }
    }
    runs.sort();
    costs.sort();
    Ok((runs, costs))
}

/// Every results folder under `out`, loaded, titled by its path under `out`.
pub fn load_all(out: &Path, catalogue: &Catalogue) -> Result<Vec<ResultsFolder>> {
    result_dirs(out)?
        .into_iter()
        .map(|dir| {
            let title = dir
                .strip_prefix(out)
                .unwrap_or(&dir)
                .to_string_lossy()
                .replace('\\', "/");
            ResultsFolder::load(&dir, &title, catalogue)
        })
        .collect()
}

/// `OUT/README.md`: each results folder with what it holds.
pub fn write_index(out: &Path, folders: &[ResultsFolder]) -> Result<()> {
    let mut text = String::from(
        "# Results\n\nEach folder holds one comparison on one machine: the raw JSON report of every \
         run, `summary.md` (the table, the machine, the versions) and the pictures. `cargo xtask \
         report` rebuilds the summaries, pictures and this list from the JSON.\n\n\
         | folder | machine | dataset | frameworks | models | epochs | runs |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut folders: Vec<&ResultsFolder> = folders.iter().collect();
    folders.sort_by(|a, b| a.dir.cmp(&b.dir));
    for folder in folders {
        if let Some(line) = folder.index_line(out) {
            text.push_str(&line);
        }
    }
    let costs = cost_dirs(out)?;
    if !costs.is_empty() {
        text.push_str(
            "\n## Build costs\n\nWhat each framework costs before its first step (`cargo xtask \
             cost`): build times, binary and native library sizes, dependency counts, first \
             epochs.\n\n| folder | builds |\n|---|---|\n",
        );
        for dir in costs {
            let name = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
            let builds: Vec<String> = reports::cost::load(&dir)?
                .iter()
                .map(|c| format!("{} ({})", c.framework, c.device))
                .collect();
            text.push_str(&format!(
                "| [{name}]({name}/summary.md) | {} |\n",
                builds.join(", ")
            ));
        }
    }
    write_file(&out.join("README.md"), text.as_bytes())
}

/// The kernel passes' section: the device table, how it was measured, and each row's costliest
/// kernels.
fn device_markdown(table: &str, reports: &[RunReport]) -> String {
    let mut text = format!(
        "## What the device did (kernel pass)\n\nFrom a separate pass of each run with the kernel \
         counter loaded (`NAME.kernels.json` beside `NAME.json`; `cargo xtask compare --kernels`): \
         per training step, the kernels and the memory copies and sets the device ran, and the \
         time during which a kernel was running (the union of their intervals, CUPTI's own \
         timestamps); the device floor is that busy time times the steps of an epoch, the epoch a \
         host with no overhead would reach, and `epoch / floor` the timed run's median epoch over \
         it. `device busy` is the timed run's own reading (NVML); `pass epoch / timed` is the pass's \
         median epoch over the timed run's, what recording every kernel costs (the timed runs \
         never load the counter).\n\n{table}\n\n"
    );
    let top = summary::top_kernels(reports);
    if !top.is_empty() {
        text.push_str(&format!(
            "The kernels that took the most device time, per step (launches, time):\n\n{top}\n"
        ));
    }
    // Each reason once, with the rows it holds for.
    let mut nothing: Vec<(&str, Vec<String>)> = Vec::new();
    for r in reports {
        let Some(reports::report::DeviceSteps::Nothing(why)) = &r.device_steps else {
            continue;
        };
        let why = why
            .strip_prefix(reports::report::KernelPass::NOTHING)
            .map_or(why.as_str(), |w| w.trim_start_matches(": "));
        let row = format!("{} {}", r.label(), r.spec.model);
        match nothing.iter_mut().find(|(w, _)| *w == why) {
            Some((_, rows)) if !rows.contains(&row) => rows.push(row),
            Some(_) => {}
            None => nothing.push((why, vec![row])),
        }
    }
    if !nothing.is_empty() {
        text.push_str(&format!(
            "{}:\n\n",
            capitalised(reports::report::KernelPass::NOTHING)
        ));
        for (why, rows) in nothing {
            text.push_str(&format!("- {why}: {}\n", rows.join(", ")));
        }
        text.push('\n');
    }
    text
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The pictures in a results folder (the charts just drawn, and any sample grids), as Markdown.
fn pictures_markdown(dir: &Path, charts: &[Picture]) -> String {
    let mut text = String::new();
    let samples: Vec<String> = Dataset::ALL
        .iter()
        .map(|d| format!("{d}-samples.svg"))
        .filter(|f| dir.join(f).is_file())
        .collect();
    if charts.is_empty() && samples.is_empty() {
        return text;
    }
    text.push_str("\n## Pictures\n\n");
    for file in samples {
        text.push_str(&format!("![sample images]({file})\n\n"));
    }
    for picture in charts {
        text.push_str(&format!("![{}]({})\n\n", picture.title, picture.file));
    }
    text
}

/// Each configuration's framework version, device, threads, features and tuned settings as one
/// table row, and the notes the frameworks wrote about themselves as numbered notes below it (the
/// same note is written once, whatever the number of rows that carry it).
fn settings_table(reports: &[RunReport]) -> String {
    let mut notes: Vec<String> = Vec::new();
    let mut number = |note: &str| -> usize {
        match notes.iter().position(|n| n == note) {
            Some(i) => i + 1,
            None => {
                notes.push(note.to_string());
                notes.len()
            }
        }
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in reports {
        let Some(b) = &r.backend else { continue };
        let refs: Vec<String> = b
            .notes
            .iter()
            .chain(
                b.tuning
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .map(|n| number(n).to_string())
            .collect();
        let tuned: Vec<String> = b
            .tuning
            .iter()
            .map(|t| {
                format!(
                    "{} ({})",
                    t.setting,
                    if t.applied { "applied" } else { "fell back" }
                )
            })
            .collect();
        let row = vec![
            r.label(),
            r.spec.model.to_string(),
            b.framework_version.clone(),
            b.device_name.clone(),
            b.threads.to_string(),
            if b.features.is_empty() {
                "-".into()
            } else {
                b.features.join(", ")
            },
            if tuned.is_empty() {
                "-".into()
            } else {
                tuned.join(", ")
            },
            if refs.is_empty() {
                "-".into()
            } else {
                refs.join(", ")
            },
        ];
        // Repeats of a configuration make the same row.
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n## Settings of each run\n\n| row | model | version | device | threads | features | tuned | notes |\n|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        text.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    text.push('\n');
    for (i, note) in notes.iter().enumerate() {
        text.push_str(&format!("{}. {note}\n", i + 1));
    }
    text
}

fn summary_markdown(
    machine: &str,
    reports: &[RunReport],
    table: &str,
    resources: &str,
    catalogue: &Catalogue,
) -> String {
    let mut text = format!(
        "# Results: {machine}\n\n## Speed and accuracy\n\n{table}\n\n## Resources\n\n{resources}\n\n"
    );
    let device = summary::device(reports, catalogue);
    if !device.is_empty() {
        text.push_str(&device_markdown(&device, reports));
    }
    let failed: Vec<&RunReport> = reports.iter().filter(|r| !r.succeeded()).collect();
    if !failed.is_empty() {
        text.push_str(
            "Failed runs (`--resume --retry-failed` runs them again and keeps the others):\n\n",
        );
        for r in failed {
            // The point, where the folder has several.
            let mut point = String::new();
            if reports
                .iter()
                .any(|o| o.spec.batch_size != r.spec.batch_size)
            {
                point.push_str(&format!(", batch {}", r.spec.batch_size));
            }
            if reports.iter().any(|o| o.spec.threads != r.spec.threads) {
                match r.spec.threads {
                    Some(1) => point.push_str(", 1 thread"),
                    Some(n) => point.push_str(&format!(", {n} threads")),
                    None => point.push_str(", its own threads"),
                }
            }
            text.push_str(&format!(
                "- {} {}{point}, seed {}: {}\n",
                r.label(),
                r.spec.model,
                r.spec.seed,
                r.failure
                    .as_deref()
                    .and_then(|f| f.lines().next())
                    .unwrap_or("no result")
            ));
        }
        text.push('\n');
    }
    if let Some(r) = reports.first() {
        let e = &r.environment;
        text.push_str(&format!(
            "- CPU: {} ({} logical CPUs), {} {}\n",
            e.cpu_model, e.logical_cpus, e.os, e.arch
        ));
        if let Some(gpu) = &e.gpu {
            text.push_str(&format!(
                "- GPU: {gpu}, driver {}\n",
                e.gpu_driver.as_deref().unwrap_or("?")
            ));
        }
    }
    text.push_str(&settings_table(reports));
    if let Some(r) = reports.first() {
        let mut seeds: Vec<u64> = reports.iter().map(|r| r.spec.seed).collect();
        seeds.sort();
        seeds.dedup();
        let seeds = match seeds.as_slice() {
            [one] => format!("seed {one}"),
            many => format!(
                "seeds {} (repeats: mean ± sample standard deviation)",
                many.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut datasets: Vec<&str> = reports.iter().map(|r| r.spec.dataset.title()).collect();
        datasets.dedup();
        text.push_str(&format!(
            "\nDataset: {}. Recipe: Adam lr {}, betas (0.9, 0.999), eps 1e-8, batch {}, {} epochs, {seeds}{}. \
             Epoch times are training only (first step to a device synchronisation after the last); \
             \"vs PyTorch\" divides the median epoch time by PyTorch's on the same device; images/s \
             is the training set over the median epoch; peak host memory is the run process's \
             resident peak, data included. Raw reports: the JSON files beside this one.\n",
            datasets.join(", "),
            r.spec.learning_rate,
            r.spec.batch_size,
            r.spec.epochs,
            r.spec
                .limit
                .map(|n| format!(", first {n} images of each split"))
                .unwrap_or_default()
        ));
        if reports.iter().any(|r| r.spec.init == InitKind::Native) {
            text.push_str(&format!(
                "\nInitial weights: each framework's own default initialisers (`--init native`), \
                 not the shared ones; the optimiser stays the recipe's. What each framework does \
                 by default:\n\n{}",
                summary::defaults_table(catalogue)
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    /// Only the command's strings change; the numbers keep the text the run wrote.
    #[test]
    fn a_command_is_replaced_and_nothing_else() {
        let text = "{\n  \"environment\": {\n    \"command\": [\n      \"/work/x/lenet\",\n      \"--out\",\n      \"/tmp/r.json\"\n    ],\n    \"started_unix\": 1\n  },\n  \"accuracy\": 0.9917166666666667\n}\n";
        let old = ["/work/x/lenet", "--out", "/tmp/r.json"].map(String::from);
        let new = ["lenet", "--out", "r.json"].map(String::from);
        let got = super::replace_command(text, &old, &new).unwrap();
        assert_eq!(
            got,
            text.replace("/work/x/lenet", "lenet")
                .replace("/tmp/r.json", "r.json")
        );
        // A command that is not in the text as expected is not rewritten.
        let other = ["/elsewhere/lenet".to_string()];
        assert_eq!(super::replace_command(text, &other, &new[..1]), None);
    }
}
