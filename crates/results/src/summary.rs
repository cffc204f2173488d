//! The comparison table, built from run reports alone (so it can be rebuilt from committed JSON).
//!
//! Reports of the same (dataset, model, device, framework) are repeats of one configuration with
//! different seeds: they make one row, with mean ± standard deviation where there are several.

use tabled::builder::Builder;
use tabled::settings::Style;

use common::harness::{DeviceKind, InitKind, Profile};
use common::{Dataset, ModelKind};

use reports::report::{RunReport, HOST_BOUND};
use reports::Catalogue;

/// The test accuracy whose first crossing the table times.
pub const TARGET_ACCURACY: f64 = 0.99;

fn pct(a: f64) -> String {
    format!("{:.2}%", a * 100.0)
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
    String,
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
        r.device(),
        r.spec.init,
        r.spec.batch_size,
        r.spec.threads,
        r.spec.profile,
    )
}

/// The same point in the idiomatic profile.
fn idiomatic(p: &Point) -> Point {
    let mut p = p.clone();
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

/// The share of the epoch the host spent queueing (see [`RunReport::host_share`]), marked
/// host-bound from [`HOST_BOUND`] up; "-" on the CPU, where the host is the device and every step
/// ends before the next is queued.
fn host_share(g: &Group) -> String {
    if g.first().device() != DeviceKind::Cuda.to_string() {
        return "-".into();
    }
    let shares = g.values(RunReport::host_share);
    match mean_sd(&shares) {
        None => "-".into(),
        Some((m, _)) if m >= HOST_BOUND => format!("{} host-bound", stat(&shares, share)),
        Some(_) => stat(&shares, share),
    }
}

/// The threads a run used: those asked for, else what the framework reported, marked as its own.
fn threads(r: &RunReport) -> String {
    match (r.spec.threads, &r.backend) {
        (Some(n), _) => n.to_string(),
        (None, Some(b)) => format!("{} (own)", b.threads),
        (None, None) => "own".into(),
    }
}

fn share(s: f64) -> String {
    format!("{:.0}%", s * 100.0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The comparison as a Markdown table, one row per configuration; the catalogue's baseline is the
/// "vs PyTorch" column's divisor.
pub fn table(reports: &[RunReport], catalogue: &Catalogue) -> String {
    let baseline_name = catalogue.baseline();
    let groups = groups(reports);
    let datasets: std::collections::BTreeSet<Dataset> =
        reports.iter().map(|r| r.spec.dataset).collect();
    let show_dataset = datasets.len() > 1;
    let varies = |f: fn(&RunReport) -> String| {
        reports
            .iter()
            .map(f)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    };
    let show_batch = varies(|r| r.spec.batch_size.to_string());
    let show_threads = varies(|r| format!("{:?}", r.spec.threads));
    let show_profile = varies(|r| r.spec.profile.to_string());
    let repeats = groups.iter().any(|g| g.runs.len() > 1);
    let mut header = vec!["framework", "model"];
    if show_dataset {
        header.push("dataset");
    }
    header.extend(["device", "parameters"]);
    if show_batch {
        header.push("batch");
    }
    if show_threads {
        header.push("threads");
    }
    if show_profile {
        header.push("profile");
    }
    if repeats {
        header.push("runs");
    }
    header.extend(["epoch 1 (s)", "median epoch 2..N (s)", "vs PyTorch"]);
    if show_profile {
        header.push("tuned speed-up");
    }
    header.extend([
        "images/s",
        "host share",
        "total (s)",
        "to 99% test (s)",
        "train acc",
        "test acc",
        "peak host (MiB)",
        "peak device (MiB)",
    ]);
    // The driver's counters, for tables with GPU runs.
    let gpu = reports
        .iter()
        .any(|r| r.device() == DeviceKind::Cuda.to_string());
    if gpu {
        header.extend(["GPU memory (MiB)", "energy (J/epoch)", "J per 1k images"]);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for g in &groups {
        let r = g.first();
        let ok = g.succeeded();
        let baseline = groups
            .iter()
            .find(|b| {
                let f = b.first();
                Some(f.spec.framework.as_str()) == baseline_name && point(f) == point(r)
            })
            .and_then(Group::mean_median_epoch);
        let ratio = match (g.mean_median_epoch(), baseline) {
            (Some(m), Some(b)) if b > 0.0 => format!("{:.2}x", m / b),
            _ => "-".into(),
        };
        // A tuned row's idiomatic time over its own: how much faster the tuning made it.
        let speed_up = match r.spec.profile {
            Profile::Idiomatic => "-".into(),
            Profile::Tuned => {
                let idiomatic_time = groups
                    .iter()
                    .find(|o| {
                        let f = o.first();
                        f.spec.framework == r.spec.framework && point(f) == idiomatic(&point(r))
                    })
                    .and_then(Group::mean_median_epoch);
                match (idiomatic_time, g.mean_median_epoch()) {
                    (Some(i), Some(t)) if t > 0.0 => format!("{:.2}x", i / t),
                    _ => "-".into(),
                }
            }
        };
        let failures: Vec<&str> = g
            .runs
            .iter()
            .filter_map(|r| r.failure.as_deref())
            .map(|f| f.lines().next().unwrap_or(""))
            .collect();
        let test = if ok.is_empty() {
            match failures.first() {
                Some(f) => format!("FAILED: {f}"),
                None => "-".into(),
            }
        } else {
            stat(
                &g.values(|r| r.final_test.as_ref().map(|e| e.accuracy)),
                pct,
            )
        };
        let to99 = if ok.is_empty() {
            "-".into()
        } else {
            let reached = g.values(|r| r.seconds_to_accuracy(TARGET_ACCURACY));
            if reached.is_empty() {
                "not reached".into()
            } else if reached.len() < ok.len() {
                format!(
                    "{} ({} of {} runs)",
                    stat(&reached, |s| format!("{s:.1}")),
                    reached.len(),
                    ok.len()
                )
            } else {
                stat(&reached, |s| format!("{s:.1}"))
            }
        };
        let mut row = vec![r.spec.framework.clone(), r.spec.model.to_string()];
        if show_dataset {
            row.push(r.spec.dataset.to_string());
        }
        row.extend([r.device(), thousands(r.parameters)]);
        if show_batch {
            row.push(r.spec.batch_size.to_string());
        }
        if show_threads {
            row.push(threads(r));
        }
        if show_profile {
            row.push(r.spec.profile.to_string());
        }
        if repeats {
            row.push(if failures.is_empty() {
                g.runs.len().to_string()
            } else {
                format!("{} ({} failed)", g.runs.len(), failures.len())
            });
        }
        row.extend([
            stat(&g.values(RunReport::first_epoch_seconds), |s| {
                format!("{s:.2}")
            }),
            stat(&g.values(RunReport::median_epoch_seconds), |s| {
                format!("{s:.2}")
            }),
            ratio,
        ]);
        if show_profile {
            row.push(speed_up);
        }
        row.extend([
            stat(&g.values(RunReport::images_per_second), |s| {
                format!("{s:.0}")
            }),
            host_share(g),
            stat(
                &g.values(|r| Some(r.total_seconds()).filter(|_| !r.epochs.is_empty())),
                |s| format!("{s:.1}"),
            ),
            to99,
            stat(
                &g.values(|r| r.final_train.as_ref().map(|e| e.accuracy)),
                pct,
            ),
            test,
            stat(&g.values(|r| r.peak_host_bytes.map(mib)), |m| {
                format!("{m:.0}")
            }),
            stat(&g.values(|r| r.peak_device_bytes.map(mib)), |m| {
                format!("{m:.0}")
            }),
        ]);
        if gpu {
            row.extend([
                stat(&g.values(|r| r.gpu_process_bytes.map(mib)), |m| {
                    format!("{m:.0}")
                }),
                stat(&g.values(RunReport::joules_per_epoch), |j| {
                    format!("{j:.0}")
                }),
                stat(&g.values(RunReport::joules_per_thousand_images), |j| {
                    format!("{j:.1}")
                }),
            ]);
        }
        rows.push(row);
    }
    // A measurement no report of the table has (reports from before it existed, a framework that
    // cannot tell) is left out rather than shown as a column of dashes.
    let keep: Vec<bool> = header
        .iter()
        .enumerate()
        .map(|(i, name)| !OPTIONAL_COLUMNS.contains(name) || rows.iter().any(|row| row[i] != "-"))
        .collect();
    let mut builder = Builder::default();
    let pick = |cells: Vec<String>| -> Vec<String> {
        cells
            .into_iter()
            .zip(&keep)
            .filter_map(|(c, k)| k.then_some(c))
            .collect()
    };
    builder.push_record(pick(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        builder.push_record(pick(row));
    }
    let mut t = builder.build();
    t.with(Style::markdown());
    t.to_string()
}

/// The columns a table shows only where a report has their measurement.
const OPTIONAL_COLUMNS: [&str; 6] = [
    "host share",
    "peak host (MiB)",
    "peak device (MiB)",
    "GPU memory (MiB)",
    "energy (J/epoch)",
    "J per 1k images",
];

/// A model's layers with output shapes and parameters, in the spirit of Keras's `model.summary()`.
pub fn model_summary(spec: &common::ModelSpec) -> String {
    #[derive(tabled::Tabled)]
    struct Row {
        #[tabled(rename = "layer")]
        layer: String,
        #[tabled(rename = "output shape")]
        output: String,
        #[tabled(rename = "parameters")]
        params: String,
        #[tabled(rename = "count")]
        count: usize,
    }
    let rows = match spec.summary() {
        Ok(rows) => rows,
        Err(e) => return format!("invalid model: {e}"),
    };
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            layer: r.layer.clone(),
            output: format!(
                "[batch, {}]",
                r.output
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params: r
                .params
                .iter()
                .map(|p| format!("{} {:?}", p.name, p.shape))
                .collect::<Vec<_>>()
                .join(", "),
            count: r.params.iter().map(common::spec::ParamSpec::numel).sum(),
        })
        .collect();
    let mut table = tabled::Table::new(table_rows);
    table.with(Style::psql());
    format!(
        "{} (input [batch, 1, 28, 28])\n{table}\ntotal parameters: {} in {} tensors\n",
        spec.kind,
        spec.num_params(),
        spec.params().len()
    )
}

/// Each framework's defaults (one row per framework, configurations of one framework sharing it)
/// as Markdown.
pub fn defaults_table(catalogue: &Catalogue) -> String {
    let mut text = String::from(
        "| framework | conv weight | conv bias | linear weight | linear bias | Adam | weight decay | seeded |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut seen: Vec<&str> = Vec::new();
    for f in &catalogue.frameworks {
        let d = &f.defaults;
        if seen.contains(&d.framework.as_str()) {
            continue;
        }
        seen.push(&d.framework);
        text.push_str(&format!("| {} |\n", d.cells().join(" | ")));
    }
    text
}
