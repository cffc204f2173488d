//! The columns of the comparison's tables, declared once: each column's header, the table it
//! belongs to, whether these reports show it and how a row's cell is written; and the rows, each a
//! configuration with its ratio to the baseline and its tuned speed-up.

use tabled::builder::Builder;
use tabled::settings::Style;

use common::harness::Profile;
use reports::report::{DeviceSteps, KernelPass, RunReport};
use reports::Catalogue;

use super::{groups, idiomatic, mean_sd, pct, point, stat, thousands, Group, TARGET_ACCURACY};

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
struct Column {
    header: &'static str,
    part: Part,
    /// Shown for these reports (a column that does not vary is left out, as are the GPU's counters
    /// without a GPU run).
    shown: bool,
    /// Left out where no row has its measurement (reports from before it existed, a framework that
    /// cannot tell), rather than shown as a column of dashes.
    optional: bool,
    cell: Box<dyn Fn(&Row) -> String>,
}

fn column(
    header: &'static str,
    part: Part,
    shown: bool,
    cell: impl Fn(&Row) -> String + 'static,
) -> Column {
    Column {
        header,
        part,
        shown,
        optional: false,
        cell: Box::new(cell),
    }
}

impl Column {
    /// The same column, left out where no row has its measurement.
    fn optional(self) -> Self {
        Self {
            optional: true,
            ..self
        }
    }
}

fn number(values: &[f64], digits: usize) -> String {
    stat(values, |s| format!("{s:.digits$}"))
}

fn share(s: f64) -> String {
    format!("{:.0}%", s * 100.0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What the columns shown depend on: the settings that vary between the reports, and what they
/// measured.
struct Shown {
    dataset: bool,
    batch: bool,
    threads: bool,
    profile: bool,
    /// Some configuration ran more than once.
    repeats: bool,
    /// Some run used CUDA: the GPU's counters.
    gpu: bool,
    /// Some run has a kernel pass joined to it.
    passes: bool,
}

impl Shown {
    fn of(reports: &[RunReport]) -> Self {
        let varies = |f: &dyn Fn(&RunReport) -> String| {
            reports
                .iter()
                .map(f)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        };
        Self {
            dataset: varies(&|r| r.spec.dataset.to_string()),
            batch: varies(&|r| r.spec.batch_size.to_string()),
            threads: varies(&|r| format!("{:?}", r.spec.threads)),
            profile: varies(&|r| r.spec.profile.to_string()),
            repeats: groups(reports).iter().any(|g| g.runs.len() > 1),
            gpu: reports.iter().any(RunReport::on_cuda),
            passes: reports.iter().any(|r| r.device_steps.is_some()),
        }
    }
}

/// Every column the tables can have, in order: the one list that both tables and every row are
/// made from.
fn columns(reports: &[RunReport]) -> Vec<Column> {
    let shown = Shown::of(reports);
    let mut all = key_columns(&shown);
    all.extend(speed_columns(&shown));
    all.extend(resource_columns(&shown));
    all.extend(device_columns(&shown));
    all
}

/// The columns that name a row.
fn key_columns(shown: &Shown) -> Vec<Column> {
    use Part::Key;
    vec![
        column("framework", Key, true, |r| {
            r.g.first().spec.framework.clone()
        }),
        column("model", Key, true, |r| r.g.first().spec.model.to_string()),
        column("dataset", Key, shown.dataset, |r| {
            r.g.first().spec.dataset.to_string()
        }),
        column("device", Key, true, |r| r.g.first().device()),
        column("batch", Key, shown.batch, |r| {
            r.g.first().spec.batch_size.to_string()
        }),
        column("threads", Key, shown.threads, |r| threads(r.g.first())),
        column("profile", Key, shown.profile, |r| {
            r.g.first().spec.profile.to_string()
        }),
        column("runs", Key, shown.repeats, |r| {
            if r.failures.is_empty() {
                r.g.runs.len().to_string()
            } else {
                format!("{} ({} failed)", r.g.runs.len(), r.failures.len())
            }
        }),
    ]
}

/// Time per epoch, throughput, accuracy.
fn speed_columns(shown: &Shown) -> Vec<Column> {
    use Part::Speed;
    vec![
        column("epoch 1 (s)", Speed, true, |r| {
            number(&r.g.values(RunReport::first_epoch_seconds), 2)
        }),
        column("median epoch 2..N (s)", Speed, true, |r| {
            number(&r.g.values(RunReport::median_epoch_seconds), 2)
        }),
        column("vs PyTorch", Speed, true, |r| r.ratio.clone()),
        column("tuned speed-up", Speed, shown.profile, |r| {
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
        column("test acc", Speed, true, test_accuracy),
    ]
}

/// Memory, energy, and how the host and the device shared the epoch.
fn resource_columns(shown: &Shown) -> Vec<Column> {
    use Part::Resources;
    let gpu = shown.gpu;
    vec![
        column("parameters", Resources, true, |r| {
            thousands(r.g.first().parameters)
        }),
        column("peak host (MiB)", Resources, true, |r| {
            number(&r.g.values(|r| r.peak_host_bytes.map(mib)), 0)
        })
        .optional(),
        column("peak device (MiB)", Resources, true, |r| {
            number(&r.g.values(|r| r.peak_device_bytes.map(mib)), 0)
        })
        .optional(),
        column("GPU memory (MiB)", Resources, gpu, |r| {
            number(&r.g.values(|r| r.gpu_process_bytes.map(mib)), 0)
        })
        .optional(),
        column("energy (J/epoch)", Resources, gpu, |r| {
            number(&r.g.values(RunReport::joules_per_epoch), 0)
        })
        .optional(),
        column("J per 1k images", Resources, gpu, |r| {
            number(&r.g.values(RunReport::joules_per_thousand_images), 1)
        })
        .optional(),
        column("device busy", Resources, gpu, |r| device_busy(r.g)).optional(),
        column("host share", Resources, gpu, |r| host_share(r.g)).optional(),
    ]
}

/// What the device did per step, from the kernel passes.
fn device_columns(shown: &Shown) -> Vec<Column> {
    use Part::Device;
    let passes = shown.passes;
    vec![
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
        column("device busy", Device, passes && shown.gpu, |r| {
            device_busy(r.g)
        })
        .optional(),
        column("pass epoch / timed", Device, passes, |r| {
            stat(&r.g.values(RunReport::counter_overhead), |x| {
                format!("{x:.2}x")
            })
        })
        .optional(),
    ]
}

/// The final test accuracy, or the first failure where no run of the row succeeded.
fn test_accuracy(r: &Row) -> String {
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
}

/// The share of the epoch the host spent queueing (see [`RunReport::host_share`]); "-" off CUDA
/// (on the CPU the host is the device, and every step ends before the next is queued).
fn host_share(g: &Group) -> String {
    if !g.first().on_cuda() {
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

/// The mean median epoch of the first group whose first run meets `found`.
fn mean_time_of(groups: &[Group], found: impl Fn(&RunReport) -> bool) -> Option<f64> {
    groups
        .iter()
        .find(|g| found(g.first()))
        .and_then(Group::mean_median_epoch)
}

/// `a` over `b` as a ratio ("1.25x"), "-" without both or with a zero `b`.
fn times(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// Each configuration's row context: its ratio to the baseline and its tuned speed-up.
fn rows<'g>(groups: &'g [Group<'g>], catalogue: &Catalogue) -> Vec<Row<'g>> {
    let baseline_name = catalogue.baseline();
    groups
        .iter()
        .map(|g| {
            let r = g.first();
            let baseline = mean_time_of(groups, |f| {
                Some(f.spec.framework.as_str()) == baseline_name && point(f) == point(r)
            });
            let speed_up = match r.spec.profile {
                Profile::Idiomatic => "-".into(),
                Profile::Tuned => {
                    let idiomatic_time = mean_time_of(groups, |f| {
                        f.spec.framework == r.spec.framework && point(f) == idiomatic(&point(r))
                    });
                    times(idiomatic_time, g.mean_median_epoch())
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
                ratio: times(g.mean_median_epoch(), baseline),
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
