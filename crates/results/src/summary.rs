//! The comparison table, built from run reports alone (so it can be rebuilt from committed JSON).
//!
//! Reports of the same (dataset, model, device, framework) are repeats of one configuration with
//! different seeds: they make one row, with mean ± standard deviation where there are several.

use tabled::builder::Builder;
use tabled::settings::Style;

use common::harness::{DeviceKind, InitKind, Profile};
use common::{Dataset, ModelKind};

use reports::report::{DeviceSteps, KernelPass, RunReport};
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

/// The share of the epoch the host spent queueing (see [`RunReport::host_share`]); "-" on the
/// CPU, where the host is the device and every step ends before the next is queued.
fn host_share(g: &Group) -> String {
    if g.first().device() != DeviceKind::Cuda.to_string() {
        return "-".into();
    }
    stat(&g.values(RunReport::host_share), share)
}

/// The share of the epoch a kernel was running (see [`RunReport::device_busy`]), marked
/// host-bound where the device sat idle most of the epoch; "-" where it was not measured.
fn device_busy(g: &Group) -> String {
    let busy = g.values(RunReport::device_busy);
    let bound: Vec<bool> = g
        .succeeded()
        .iter()
        .filter_map(|r| r.host_bound())
        .collect();
    match mean_sd(&busy) {
        None => "-".into(),
        Some(_) if !bound.is_empty() && bound.iter().all(|b| *b) => {
            format!("{} host-bound", stat(&busy, share))
        }
        Some(_) => stat(&busy, share),
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

/// Which of a folder's tables a column belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// What names a row: in both tables.
    Key,
    /// Time per epoch, throughput, accuracy.
    Speed,
    /// Memory, energy, how the host and device shared the epoch.
    Resources,
    /// What the device did per step, from the kernel pass: kernels, copies, busy time, the floor.
    Device,
}

/// One row's configuration and what depends on the other rows.
struct Row<'g> {
    g: &'g Group<'g>,
    /// Its time over the baseline's at the same point.
    ratio: String,
    /// For a tuned row, its idiomatic time over its own.
    speed_up: String,
    /// Each failed run's first line.
    failures: Vec<&'g str>,
}

/// A column of the tables: its header, its table, whether these reports show it, and its cell.
struct Column<'c> {
    header: &'static str,
    part: Part,
    /// Shown for these reports (a column that does not vary is left out, as are the GPU's counters
    /// without a GPU run).
    shown: bool,
    /// Left out where no row has its measurement (reports from before it existed, a framework that
    /// cannot tell), rather than shown as a column of dashes.
    optional: bool,
    cell: Box<dyn Fn(&Row) -> String + 'c>,
}

fn column<'c>(
    header: &'static str,
    part: Part,
    shown: bool,
    cell: impl Fn(&Row) -> String + 'c,
) -> Column<'c> {
    Column {
        header,
        part,
        shown,
        optional: false,
        cell: Box::new(cell),
    }
}

fn optional<'c>(
    header: &'static str,
    part: Part,
    shown: bool,
    cell: impl Fn(&Row) -> String + 'c,
) -> Column<'c> {
    Column {
        optional: true,
        ..column(header, part, shown, cell)
    }
}

fn number(values: &[f64], digits: usize) -> String {
    stat(values, |s| format!("{s:.digits$}"))
}

/// Every column the tables can have, in order: the one list that both tables and every row are
/// made from.
fn columns(reports: &[RunReport]) -> Vec<Column<'static>> {
    let varies = |f: &dyn Fn(&RunReport) -> String| {
        reports
            .iter()
            .map(f)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    };
    let show_dataset = varies(&|r| r.spec.dataset.to_string());
    let show_batch = varies(&|r| r.spec.batch_size.to_string());
    let show_threads = varies(&|r| format!("{:?}", r.spec.threads));
    let show_profile = varies(&|r| r.spec.profile.to_string());
    let repeats = groups(reports).iter().any(|g| g.runs.len() > 1);
    let gpu = reports
        .iter()
        .any(|r| r.device() == DeviceKind::Cuda.to_string());
    let passes = reports.iter().any(|r| r.device_steps.is_some());
    use Part::{Device, Key, Resources, Speed};
    vec![
        column("framework", Key, true, |r| {
            r.g.first().spec.framework.clone()
        }),
        column("model", Key, true, |r| r.g.first().spec.model.to_string()),
        column("dataset", Key, show_dataset, |r| {
            r.g.first().spec.dataset.to_string()
        }),
        column("device", Key, true, |r| r.g.first().device()),
        column("batch", Key, show_batch, |r| {
            r.g.first().spec.batch_size.to_string()
        }),
        column("threads", Key, show_threads, |r| threads(r.g.first())),
        column("profile", Key, show_profile, |r| {
            r.g.first().spec.profile.to_string()
        }),
        column("runs", Key, repeats, |r| {
            if r.failures.is_empty() {
                r.g.runs.len().to_string()
            } else {
                format!("{} ({} failed)", r.g.runs.len(), r.failures.len())
            }
        }),
        column("epoch 1 (s)", Speed, true, |r| {
            number(&r.g.values(RunReport::first_epoch_seconds), 2)
        }),
        column("median epoch 2..N (s)", Speed, true, |r| {
            number(&r.g.values(RunReport::median_epoch_seconds), 2)
        }),
        column("vs PyTorch", Speed, true, |r| r.ratio.clone()),
        column("tuned speed-up", Speed, show_profile, |r| {
            r.speed_up.clone()
        }),
        column("images/s", Speed, true, |r| {
            number(&r.g.values(RunReport::images_per_second), 0)
        }),
        column("total (s)", Speed, true, |r| {
            number(
                &r.g.values(|r| Some(r.total_seconds()).filter(|_| !r.epochs.is_empty())),
                1,
            )
        }),
        column("to 99% test (s)", Speed, true, to_99),
        column("train acc", Speed, true, |r| {
            stat(
                &r.g.values(|r| r.final_train.as_ref().map(|e| e.accuracy)),
                pct,
            )
        }),
        column("test acc", Speed, true, |r| {
            if r.g.succeeded().is_empty() {
                match r.failures.first() {
                    Some(f) => format!("FAILED: {f}"),
                    None => "-".into(),
                }
            } else {
                stat(
                    &r.g.values(|r| r.final_test.as_ref().map(|e| e.accuracy)),
                    pct,
                )
            }
        }),
        column("parameters", Resources, true, |r| {
            thousands(r.g.first().parameters)
        }),
        optional("peak host (MiB)", Resources, true, |r| {
            number(&r.g.values(|r| r.peak_host_bytes.map(mib)), 0)
        }),
        optional("peak device (MiB)", Resources, true, |r| {
            number(&r.g.values(|r| r.peak_device_bytes.map(mib)), 0)
        }),
        optional("GPU memory (MiB)", Resources, gpu, |r| {
            number(&r.g.values(|r| r.gpu_process_bytes.map(mib)), 0)
        }),
        optional("energy (J/epoch)", Resources, gpu, |r| {
            number(&r.g.values(RunReport::joules_per_epoch), 0)
        }),
        optional("J per 1k images", Resources, gpu, |r| {
            number(&r.g.values(RunReport::joules_per_thousand_images), 1)
        }),
        optional("device busy", Resources, gpu, |r| device_busy(r.g)),
        optional("host share", Resources, gpu, |r| host_share(r.g)),
        column("kernels/step", Device, passes, kernels_per_step),
        column("copies+sets/step", Device, passes, |r| {
            per_step(r.g, |s| s.measured().map(|m| m.copies)).map_or("-".into(), |v| number(&v, 1))
        }),
        column("busy/step (µs)", Device, passes, |r| {
            per_step(r.g, |s| s.measured().map(|m| m.busy_seconds * 1e6))
                .map_or("-".into(), |v| number(&v, 0))
        }),
        column("device floor (s)", Device, passes, |r| {
            number(&r.g.values(RunReport::device_floor_seconds), 2)
        }),
        column("epoch / floor", Device, passes, |r| {
            stat(&r.g.values(RunReport::times_floor), |x| format!("{x:.1}x"))
        }),
        optional("device busy", Device, passes && gpu, |r| device_busy(r.g)),
        optional("pass epoch / timed", Device, passes, |r| {
            stat(&r.g.values(RunReport::counter_overhead), |x| {
                format!("{x:.2}x")
            })
        }),
    ]
}

/// Each successful run's kernel-pass value, `None` where no run of the group has a measured pass.
fn per_step(g: &Group, f: impl Fn(&DeviceSteps) -> Option<f64>) -> Option<Vec<f64>> {
    let v = g.values(|r| r.device_steps.as_ref().and_then(&f));
    (!v.is_empty()).then_some(v)
}

/// Kernels launched per step (and how many of them a replayed graph launched), or "no device
/// activity measured" where the kernel pass measured nothing; "-" where the row has no pass.
fn kernels_per_step(r: &Row) -> String {
    let steps: Vec<&DeviceSteps> =
        r.g.succeeded()
            .into_iter()
            .filter_map(|r| r.device_steps.as_ref())
            .collect();
    let kernels = per_step(r.g, |s| s.measured().map(|m| m.kernels));
    match (kernels, steps.first()) {
        (Some(k), _) => {
            let graph = per_step(r.g, |s| s.measured().map(|m| m.graph_kernels))
                .and_then(|g| mean_sd(&g))
                .map_or(0.0, |(m, _)| m);
            if graph > 0.0 {
                format!("{} ({} in graphs)", number(&k, 1), number(&[graph], 1))
            } else {
                number(&k, 1)
            }
        }
        (None, Some(DeviceSteps::Nothing(_))) => KernelPass::NOTHING.into(),
        (None, _) => "-".into(),
    }
}

/// The training time until the test accuracy first reached [`TARGET_ACCURACY`].
fn to_99(r: &Row) -> String {
    let ok = r.g.succeeded();
    if ok.is_empty() {
        return "-".into();
    }
    let reached = r.g.values(|r| r.seconds_to_accuracy(TARGET_ACCURACY));
    if reached.is_empty() {
        "not reached".into()
    } else if reached.len() < ok.len() {
        format!(
            "{} ({} of {} runs)",
            number(&reached, 1),
            reached.len(),
            ok.len()
        )
    } else {
        number(&reached, 1)
    }
}

/// Each configuration's row context: its ratio to the baseline and its tuned speed-up.
fn rows<'g>(groups: &'g [Group<'g>], catalogue: &Catalogue) -> Vec<Row<'g>> {
    let baseline_name = catalogue.baseline();
    groups
        .iter()
        .map(|g| {
            let r = g.first();
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
            let failures = g
                .runs
                .iter()
                .filter_map(|r| r.failure.as_deref())
                .map(|f| f.lines().next().unwrap_or(""))
                .collect();
            Row {
                g,
                ratio,
                speed_up,
                failures,
            }
        })
        .collect()
}

/// The Markdown table of `part` (its key columns, then its own), one row per configuration.
pub fn part_table(reports: &[RunReport], catalogue: &Catalogue, part: Part) -> String {
    let groups = groups(reports);
    let rows = rows(&groups, catalogue);
    let columns: Vec<Column> = columns(reports)
        .into_iter()
        .filter(|c| c.shown && (c.part == Part::Key || c.part == part))
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| (c.cell)(row)).collect())
        .collect();
    let keep: Vec<bool> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| !c.optional || cells.iter().any(|row| row[i] != "-"))
        .collect();
    let pick = |row: Vec<String>| -> Vec<String> {
        row.into_iter()
            .zip(&keep)
            .filter_map(|(c, k)| k.then_some(c))
            .collect()
    };
    let mut builder = Builder::default();
    builder.push_record(pick(columns.iter().map(|c| c.header.to_string()).collect()));
    for row in cells {
        builder.push_record(pick(row));
    }
    let mut t = builder.build();
    t.with(Style::markdown());
    t.to_string()
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
