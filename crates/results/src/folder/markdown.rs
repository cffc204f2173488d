//! A results folder's `summary.md` in Markdown: its tables under their headings, the kernel passes'
//! section, the failed runs, the machine, each run's settings with the frameworks' notes, the recipe
//! and the pictures.

use std::path::Path;

use common::harness::InitKind;
use common::Dataset;
use reports::report::{DeviceSteps, KernelPass};
use reports::{Catalogue, RunReport};

use crate::plots::Picture;
use crate::summary;

/// The whole of `summary.md` but its sweeps and pictures: the tables, the device section, the
/// failed runs, the machine, the settings and the recipe.
pub(super) fn summary_markdown(
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
    text.push_str(&failed_runs(reports));
    if let Some(r) = reports.first() {
        text.push_str(&machine_lines(r));
    }
    text.push_str(&settings_table(reports));
    if let Some(r) = reports.first() {
        text.push_str(&recipe(r, reports, catalogue));
    }
    text
}

/// The failed runs, each with its point where the folder has several, and its reason's first
/// line; empty when every run finished.
fn failed_runs(reports: &[RunReport]) -> String {
    let failed: Vec<&RunReport> = reports.iter().filter(|r| !r.succeeded()).collect();
    if failed.is_empty() {
        return String::new();
    }
    let mut text = String::from(
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
    text
}

/// The machine of the folder's first run: its CPU, and its GPU where it has one.
fn machine_lines(r: &RunReport) -> String {
    let e = &r.environment;
    let mut text = format!(
        "- CPU: {} ({} logical CPUs), {} {}\n",
        e.cpu_model, e.logical_cpus, e.os, e.arch
    );
    if let Some(gpu) = &e.gpu {
        text.push_str(&format!(
            "- GPU: {gpu}, driver {}\n",
            e.gpu_driver.as_deref().unwrap_or("?")
        ));
    }
    text
}

/// The seeds of the runs: one, or several as repeats.
fn seeds(reports: &[RunReport]) -> String {
    let mut seeds: Vec<u64> = reports.iter().map(|r| r.spec.seed).collect();
    seeds.sort();
    seeds.dedup();
    match seeds.as_slice() {
        [one] => format!("seed {one}"),
        many => format!(
            "seeds {} (repeats: mean ± sample standard deviation)",
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The dataset, the recipe (from `r`, the first run) and how to read the tables; with native
/// initial weights, what each framework does by default.
fn recipe(r: &RunReport, reports: &[RunReport], catalogue: &Catalogue) -> String {
    let mut datasets: Vec<&str> = reports.iter().map(|r| r.spec.dataset.title()).collect();
    datasets.dedup();
    let mut text = format!(
        "\nDataset: {}. Recipe: Adam lr {}, betas (0.9, 0.999), eps 1e-8, batch {}, {} epochs, {}{}. \
         Epoch times are training only (first step to a device synchronisation after the last); \
         \"vs PyTorch\" divides the median epoch time by PyTorch's on the same device; images/s \
         is the training set over the median epoch; peak host memory is the run process's \
         resident peak, data included. Raw reports: the JSON files beside this one.\n",
        datasets.join(", "),
        r.spec.learning_rate,
        r.spec.batch_size,
        r.spec.epochs,
        seeds(reports),
        r.spec
            .limit
            .map(|n| format!(", first {n} images of each split"))
            .unwrap_or_default()
    );
    if reports.iter().any(|r| r.spec.init == InitKind::Native) {
        text.push_str(&format!(
            "\nInitial weights: each framework's own default initialisers (`--init native`), \
             not the shared ones; the optimiser stays the recipe's. What each framework does \
             by default:\n\n{}",
            summary::defaults_table(catalogue)
        ));
    }
    text
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
        let Some(DeviceSteps::Nothing(why)) = &r.device_steps else {
            continue;
        };
        let why = why
            .strip_prefix(KernelPass::NOTHING)
            .map_or(why.as_str(), |w| w.trim_start_matches(": "));
        let row = format!("{} {}", r.label(), r.spec.model);
        match nothing.iter_mut().find(|(w, _)| *w == why) {
            Some((_, rows)) if !rows.contains(&row) => rows.push(row),
            Some(_) => {}
            None => nothing.push((why, vec![row])),
        }
    }
    if !nothing.is_empty() {
        text.push_str(&format!("{}:\n\n", capitalised(KernelPass::NOTHING)));
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
pub(super) fn pictures_markdown(dir: &Path, charts: &[Picture]) -> String {
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

/// The items separated by commas, or "-" for none.
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
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
            listed(&b.features),
            listed(&tuned),
            listed(&refs),
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
