//! The summary of a `serve` folder (see `reports::serve` for the records): per model, one table of
//! every row and thread count (load, cold start, single-image latency, throughput, memory) and
//! whether each row's answers are the reference row's.

use std::path::Path;

use common::{Error, ModelKind};
use reports::serve::ServeReport;
use reports::Catalogue;

use crate::folder::{write_file, write_picture};
use crate::plots::{grouped_bars, DrawError, Picture};

/// How the serving tables were measured, below them.
const MEASURED: &str = "\nEach row serves the same model file (trained once; the file's \
     metadata in the reports), on the CPU, each prediction from the host's images to the logits \
     back on the host. The Rust rows run in a `lenet` built with their framework alone, so that \
     no other framework's libraries are loaded at their start. Load: reading the file and building the model in the measuring process (for \
     onnxruntime, the InferenceSession from the exported file; the export is in the report's \
     notes). Cold start: the median of new processes started until their first answer, timed by \
     the process that started them (the load and the interpreter's or binary's own start \
     included). Batch 1: single test images after a warm-up, nearest-rank percentiles. \
     Throughput: batches of that size, timed for a set time after one untimed batch. Differ: \
     the test images whose predicted class is not the first row's (the parity reference); max |Δ logit| over the \
     first 16 test images. Peak: the process's peak resident memory over the whole \
     measurement. Single measurements, not tests.\n";

fn ms(seconds: f64) -> String {
    format!("{:.3}", seconds * 1e3)
}

fn threads(r: &ServeReport) -> String {
    r.threads.map_or_else(
        || format!("all ({})", r.environment.logical_cpus),
        |t| t.to_string(),
    )
}

/// The batch sizes measured in `reports`, each once, in order.
fn batch_sizes(reports: &[&ServeReport]) -> Vec<usize> {
    let mut sizes: Vec<usize> = reports
        .iter()
        .flat_map(|r| r.throughput.iter().map(|t| t.batch))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// One model's table; each row's answers are compared with `reference`'s.
fn table(reports: &[&ServeReport], reference: Option<&str>) -> String {
    let sizes = batch_sizes(reports);
    let mut text = String::from(
        "| row | threads | load ms | first ms | cold start ms | batch 1 p50 ms | p99 ms |",
    );
    for b in &sizes {
        text.push_str(&format!(" images/s at {b} |"));
    }
    text.push_str(" peak MiB | accuracy | differ | max \\|Δ logit\\| |\n|---|---|");
    text.push_str(&"---:|".repeat(5 + sizes.len() + 4));
    text.push('\n');
    for r in reports {
        let is_reference = |o: &&&ServeReport| Some(o.framework.as_str()) == reference;
        let reference = reports
            .iter()
            .filter(is_reference)
            .find(|o| o.threads == r.threads)
            .or_else(|| reports.iter().find(is_reference));
        let rate = |b: &usize| {
            r.throughput.iter().find(|t| t.batch == *b).map_or_else(
                || "-".to_string(),
                |t| format!("{:.0}", t.images_per_second),
            )
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.framework,
            threads(r),
            ms(r.load_seconds),
            ms(r.first_prediction_seconds),
            r.median_cold_start()
                .map_or_else(|| "-".to_string(), |s| format!("{:.1}", s * 1e3)),
            ms(r.batch1.p50),
            ms(r.batch1.p99)
        ));
        for b in &sizes {
            text.push_str(&format!(" {} |", rate(b)));
        }
        let differ = reference
            .and_then(|o| r.differing_classes(o))
            .map_or_else(|| "-".to_string(), |d| d.to_string());
        let logit = reference
            .and_then(|o| r.logit_difference(o))
            .map_or_else(|| "-".to_string(), |d| format!("{d:.1e}"));
        let mib = |b: u64| format!("{:.0}", b as f64 / 1048576.0);
        let host = r.peak_host_bytes.map_or_else(|| "-".to_string(), mib);
        // On CUDA, the GPU memory beside the host's.
        let memory = match r.peak_device_bytes {
            Some(d) => format!("{host} (GPU {})", mib(d)),
            None => host,
        };
        text.push_str(&format!(
            " {memory} | {:.2}% | {differ} | {logit} |\n",
            r.accuracy * 100.0
        ));
    }
    text
}

/// The summary of a `serve` folder: a table per model, the versions, how it was measured; each
/// row's answers are compared with `reference`'s (the registry's parity reference).
pub fn summary(title: &str, reports: &[ServeReport], reference: Option<&str>) -> String {
    let mut text = format!("# Serving: {title}\n\n");
    let mut models: Vec<_> = reports.iter().map(|r| r.model).collect();
    models.sort();
    models.dedup();
    for model in models {
        let mut rows: Vec<&ServeReport> = reports.iter().filter(|r| r.model == model).collect();
        rows.sort_by_key(|r| {
            (
                r.threads.unwrap_or(usize::MAX),
                Some(r.framework.as_str()) != reference,
            )
        });
        let trained = rows.first().map_or_else(String::new, |r| {
            let m = &r.model_metadata;
            let field = |k: &str| m.get(k).map_or("?", String::as_str);
            format!(
                ", trained with {} for {} epochs from seed {}",
                field("framework"),
                field("epochs"),
                field("seed")
            )
        });
        let images = rows.first().map_or(0, |r| r.test_images);
        text.push_str(&format!(
            "## {model} ({} test images{trained})\n\n{}\n",
            crate::summary::thousands(images),
            table(&rows, reference)
        ));
    }
    if let Some(first) = reports.first() {
        let e = &first.environment;
        text.push_str(&format!(
            "Machine: {} ({} logical CPUs), {} {}.\n\n",
            e.cpu_model, e.logical_cpus, e.os, e.arch
        ));
    }
    let mut versions: Vec<String> = reports
        .iter()
        .map(|r| format!("- {}: {}", r.framework, r.framework_version))
        .collect();
    versions.sort();
    versions.dedup();
    text.push_str(&format!("Versions:\n\n{}\n", versions.join("\n")));
    let mut notes: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.notes
                .iter()
                .map(move |n| format!("- {}: {n}", r.framework))
        })
        .collect();
    notes.sort();
    notes.dedup();
    if !notes.is_empty() {
        text.push_str(&format!("\nNotes:\n\n{}\n", notes.join("\n")));
    }
    text.push_str(MEASURED);
    text
}

/// The reports of `model` at `threads`, in the summary's order.
fn at(reports: &[ServeReport], model: ModelKind, threads: Option<usize>) -> Vec<&ServeReport> {
    reports
        .iter()
        .filter(|r| r.model == model && r.threads == threads)
        .collect()
}

/// The charts of a serving folder: per model and thread count, the batch-1 latency (p50 and p99)
/// and the throughput at each batch size, a group of bars per row in its colour.
pub fn charts(reports: &[ServeReport], catalogue: &Catalogue) -> Result<Vec<Picture>, DrawError> {
    let mut keys: Vec<(ModelKind, Option<usize>)> =
        reports.iter().map(|r| (r.model, r.threads)).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for (model, threads) in keys {
        let mut rows = at(reports, model, threads);
        // The parity reference first, as in the tables.
        rows.sort_by_key(|r| Some(r.framework.as_str()) != catalogue.parity_reference());
        let t = threads.map_or_else(|| "all".to_string(), |t| t.to_string());
        let cores = threads.map_or_else(|| "all threads".to_string(), |t| format!("{t} thread(s)"));
        let latency: Vec<(String, Vec<f64>)> = rows
            .iter()
            .map(|r| {
                (
                    r.framework.clone(),
                    vec![r.batch1.p50 * 1e3, r.batch1.p99 * 1e3],
                )
            })
            .collect();
        let title = format!("{model}, {cores}: one image, p50 (solid) and p99 (light)");
        out.push(Picture {
            file: format!("serve-{model}-t{t}-latency.svg"),
            svg: grouped_bars(
                &title,
                "ms",
                &latency,
                &["p50".into(), "p99".into()],
                catalogue,
            )?,
            title,
        });
        let sizes = batch_sizes(&rows);
        let rate: Vec<(String, Vec<f64>)> = rows
            .iter()
            .map(|r| {
                let of = |b: &usize| {
                    r.throughput
                        .iter()
                        .find(|x| x.batch == *b)
                        .map_or(0.0, |x| x.images_per_second)
                };
                (r.framework.clone(), sizes.iter().map(of).collect())
            })
            .collect();
        let names: Vec<String> = sizes.iter().map(|b| format!("batch {b}")).collect();
        let title = format!(
            "{model}, {cores}: images per second at batch {} (solid to light)",
            sizes
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push(Picture {
            file: format!("serve-{model}-t{t}-throughput.svg"),
            svg: grouped_bars(&title, "images/s", &rate, &names, catalogue)?,
            title,
        });
    }
    Ok(out)
}

/// Writes `summary.md` of the serving folder `dir` from its JSON files, and its charts; each row's
/// answers are compared with the catalogue's parity reference's.
pub fn write_summary(dir: &Path, title: &str, catalogue: &Catalogue) -> Result<usize, Error> {
    let reports = ServeReport::load(dir)?;
    let pictures = charts(&reports, catalogue).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut text = summary(title, &reports, catalogue.parity_reference());
    text.push_str("\n## Charts\n\n");
    for p in &pictures {
        write_picture(dir, p)?;
        text.push_str(&format!("![{}]({})\n\n", p.title, p.file));
    }
    write_file(&dir.join("summary.md"), text.as_bytes())?;
    Ok(reports.len())
}
