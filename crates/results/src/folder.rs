//! A results folder as one value: its run reports, read once, and everything made from them (the
//! summary with its table, the charts, a line of the results index). `cargo xtask compare` and
//! `cargo xtask report` load each folder once and hand the value around. The summary's Markdown is
//! written by `markdown`; finding the folders under a results root and their index, by `index`.

use std::path::{Path, PathBuf};

use common::fsio::write_atomic;
use common::Error;

use crate::plots::{self, Picture};
use crate::summary;
use crate::sweep;
use reports::Catalogue;
use reports::RunReport;

mod index;
mod markdown;

pub use index::{cost_dirs, load_all, result_dirs, serve_dirs, write_index};

type Result<T> = std::result::Result<T, Error>;

/// Writes `bytes` to `path` atomically (a whole file or none).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// The paths of the entries of `dir`, in the order the system gives them.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let cannot = |e| Error::io(format!("cannot read {}", dir.display()), e);
    std::fs::read_dir(dir)
        .map_err(cannot)?
        .map(|entry| entry.map(|e| e.path()).map_err(cannot))
        .collect()
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
        && timed.device_kind() == pass.device_kind()
}

impl ResultsFolder {
    /// Reads every run report (`*.json`) in `dir`, and joins each kernel pass's report
    /// (`NAME.kernels.json`) to its timed run's.
    pub fn load(dir: &Path, title: &str, catalogue: &Catalogue) -> Result<Self> {
        let mut found = Vec::new();
        let mut kernel_passes = Vec::new();
        for path in entries(dir)? {
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
        let mut text =
            markdown::summary_markdown(&self.title, &self.reports, &table, &resources, catalogue);
        let sweeps = sweep::tables(&self.reports, catalogue);
        if !sweeps.is_empty() {
            text.push_str(&format!(
                "## Sweeps

{sweeps}"
            ));
        }
        text.push_str(&markdown::pictures_markdown(&self.dir, &charts));
        write_file(&self.dir.join("summary.md"), text.as_bytes())?;
        Ok(table)
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
