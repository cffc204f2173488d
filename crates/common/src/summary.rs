//! The comparison table, built from run reports alone (so it can be rebuilt from committed JSON).

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::report::RunReport;

/// The framework whose median epoch time the others are divided by, when it is in the table.
pub const BASELINE: &str = "pytorch";

#[derive(Tabled)]
struct Row {
    framework: String,
    model: String,
    device: String,
    parameters: String,
    #[tabled(rename = "epoch 1 (s)")]
    first: String,
    #[tabled(rename = "median epoch 2..N (s)")]
    median: String,
    #[tabled(rename = "vs PyTorch")]
    ratio: String,
    #[tabled(rename = "total (s)")]
    total: String,
    #[tabled(rename = "train acc")]
    train: String,
    #[tabled(rename = "test acc")]
    test: String,
    #[tabled(rename = "to 99% test (s)")]
    to99: String,
}

fn secs(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into())
}

fn pct(a: Option<f64>) -> String {
    a.map(|a| format!("{:.2}%", a * 100.0))
        .unwrap_or_else(|| "-".into())
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

/// Sorts reports for display: by model, device, then framework (the baseline first).
pub fn sort(reports: &mut [RunReport]) {
    reports.sort_by(|a, b| {
        (
            a.spec.model,
            a.device(),
            a.spec.framework != BASELINE,
            &a.spec.framework,
        )
            .cmp(&(
                b.spec.model,
                b.device(),
                b.spec.framework != BASELINE,
                &b.spec.framework,
            ))
    });
}

/// The comparison as a Markdown table.
pub fn table(reports: &[RunReport]) -> String {
    let rows: Vec<Row> = reports
        .iter()
        .map(|r| {
            let median = r.median_epoch_seconds();
            let baseline = reports
                .iter()
                .find(|b| {
                    b.spec.framework == BASELINE
                        && b.spec.model == r.spec.model
                        && b.device() == r.device()
                        && b.succeeded()
                })
                .and_then(RunReport::median_epoch_seconds);
            let ratio = match (median, baseline) {
                (Some(m), Some(b)) if b > 0.0 && r.succeeded() => format!("{:.2}x", m / b),
                _ => "-".into(),
            };
            let failed = r.failure.as_ref().map(|f| {
                let first = f.lines().next().unwrap_or("");
                format!("FAILED: {first}")
            });
            Row {
                framework: r.spec.framework.clone(),
                model: r.spec.model.to_string(),
                device: r.device(),
                parameters: thousands(r.parameters),
                first: secs(r.first_epoch_seconds()),
                median: secs(median),
                ratio,
                total: secs(Some(r.total_seconds()).filter(|_| !r.epochs.is_empty())),
                train: pct(r.final_train.as_ref().map(|e| e.accuracy)),
                test: failed.unwrap_or_else(|| pct(r.final_test.as_ref().map(|e| e.accuracy))),
                to99: if r.epochs.is_empty() {
                    "-".into()
                } else {
                    r.seconds_to_accuracy(0.99)
                        .map(|s| format!("{s:.1}"))
                        .unwrap_or_else(|| "not reached".into())
                },
            }
        })
        .collect();
    let mut t = Table::new(rows);
    t.with(Style::markdown());
    t.to_string()
}
