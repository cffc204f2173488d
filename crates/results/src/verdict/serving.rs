//! The serving needs of the front page, from a serving folder (`cargo xtask serve`): the lowest
//! latency of one image, the quickest cold start and the highest throughput, each per model on the
//! CPU, the best Rust row against the fastest row of all and against the baseline (PyTorch eager).
//! The folder read is the one with the most Rust rows on the CPU (the most recent on a tie), so
//! that every ratio is between runs of one machine.

use common::harness::DeviceKind;
use common::ModelKind;
use reports::serve::ServeReport;

use super::text::{seconds, times_over};
use super::{Evidence, Verdict};
use crate::summary::thousands;

/// One serving folder: its path relative to the repository and its reports.
pub type ServeFolder = (String, Vec<ServeReport>);

/// How a need ranks a report: its figure (`None` where it was not measured) and whether a smaller
/// figure is better.
struct Ranking {
    need: &'static str,
    /// What the figure is, after the machine ("batch-1 p50, 1 thread").
    what: &'static str,
    /// The reports it reads, of the folder's CPU reports.
    keep: fn(&ServeReport, usize) -> bool,
    figure: fn(&ServeReport) -> Option<f64>,
    smaller_is_better: bool,
    /// The figure as the page writes it.
    write: fn(f64) -> String,
}

fn milliseconds(s: f64) -> String {
    let ms = s * 1e3;
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        seconds(s)
    }
}

/// `a` over `b` (at least 1): "3.5x", "367x".
fn times(a: f64, b: f64) -> String {
    if a / b < 10.0 {
        times_over(a, b)
    } else {
        format!("{:.0}x", a / b)
    }
}

/// `a` against `b` as the larger over the smaller: "3.5x above" or "2.0x below".
fn apart(a: f64, b: f64) -> String {
    if a >= b {
        format!("{} above", times(a, b))
    } else {
        format!("{} below", times(b, a))
    }
}

fn images_per_second(x: f64) -> String {
    format!("{} images/s", thousands(x.round() as usize))
}

/// The report's best throughput over its batch sizes.
fn best_throughput(r: &ServeReport) -> Option<f64> {
    r.throughput
        .iter()
        .map(|t| t.images_per_second)
        .max_by(f64::total_cmp)
}

const LATENCY: Ranking = Ranking {
    need: "Lowest latency at batch 1 on a CPU",
    what: "one image's p50, 1 thread",
    keep: |r, _| r.threads == Some(1),
    figure: |r| Some(r.batch1.p50),
    smaller_is_better: true,
    write: milliseconds,
};

const COLD_START: Ranking = Ranking {
    need: "Quickest cold start (process start to first answer)",
    what: "median cold start, model loaded from safetensors, 1 thread",
    keep: |r, _| r.threads == Some(1),
    figure: ServeReport::median_cold_start,
    smaller_is_better: true,
    write: milliseconds,
};

const THROUGHPUT: Ranking = Ranking {
    need: "Highest serving throughput on a CPU",
    what: "images/s at the best large batch, all cores",
    keep: |r, cores| r.threads.is_none_or(|t| t == cores),
    figure: best_throughput,
    smaller_is_better: false,
    write: images_per_second,
};

impl Evidence<'_> {
    /// The serving needs, in the front page's order.
    pub(super) fn serving_verdicts(&self) -> Vec<Verdict> {
        [LATENCY, COLD_START, THROUGHPUT]
            .iter()
            .map(|r| self.serving(r))
            .collect()
    }

    /// The CPU reports of the serving folder with the most Rust rows (the newest on a tie).
    fn serving_folder(&self) -> Option<(&str, Vec<&ServeReport>)> {
        self.serving
            .iter()
            .map(|(dir, reports)| {
                let cpu: Vec<&ServeReport> = reports
                    .iter()
                    .filter(|r| r.device == DeviceKind::Cpu)
                    .collect();
                let mut rust: Vec<&str> = cpu
                    .iter()
                    .filter(|r| self.is_rust(&r.framework))
                    .map(|r| r.framework.as_str())
                    .collect();
                rust.sort_unstable();
                rust.dedup();
                let newest = cpu.iter().map(|r| r.environment.started_unix).max();
                (rust.len(), newest, dir.as_str(), cpu)
            })
            .filter(|(rust, ..)| *rust > 0)
            .max_by_key(|(rust, newest, ..)| (*rust, *newest))
            .map(|(_, _, dir, cpu)| (dir, cpu))
    }

    fn serving(&self, ranking: &Ranking) -> Verdict {
        let need = ranking.need;
        let Some((dir, reports)) = self.serving_folder() else {
            return Self::cannot(
                need,
                "no serving results committed yet (`cargo xtask serve`)",
            );
        };
        let cores = reports
            .iter()
            .map(|r| r.environment.logical_cpus)
            .max()
            .unwrap_or(1);
        let write = ranking.write;
        let mut parts = Vec::new();
        let mut winner = None;
        for model in ModelKind::ALL {
            let mut rows: Vec<(&str, f64)> = reports
                .iter()
                .filter(|r| r.model == model && (ranking.keep)(r, cores))
                .filter_map(|r| Some((r.framework.as_str(), (ranking.figure)(r)?)))
                .collect();
            rows.sort_by(|a, b| {
                let order = a.1.total_cmp(&b.1);
                if ranking.smaller_is_better {
                    order
                } else {
                    order.reverse()
                }
            });
            let Some(&(best, figure)) = rows.iter().find(|(f, _)| self.is_rust(f)) else {
                continue;
            };
            winner.get_or_insert_with(|| best.to_string());
            let mut text = format!("{} {best} {}", model.title(), write(figure));
            let (first, first_figure) = rows[0];
            if first != best {
                text.push_str(&format!(
                    ", {} {first}'s {} (the best row)",
                    apart(figure, first_figure),
                    write(first_figure)
                ));
            }
            if let Some(&(base, b)) = rows.iter().find(|(f, _)| *f == self.baseline()) {
                text.push_str(&format!(", {} {base}'s {}", apart(figure, b), write(b)));
            }
            let next = rows.iter().find(|(f, _)| *f != best && self.is_rust(f));
            if let Some(&(next, n)) = next {
                // The next row ranks after the best: the larger figure over the smaller.
                let apart = times(figure.max(n), figure.min(n));
                text.push_str(&format!(
                    "; next Rust row {next} {} ({apart} apart)",
                    write(n)
                ));
            }
            parts.push(text);
        }
        if winner.is_none() {
            return Self::cannot(need, &format!("{dir} has no Rust row measured for this"));
        }
        let machine = reports.first().map_or_else(String::new, |r| {
            format!(
                "{} ({} cores)",
                r.environment.cpu_model, r.environment.logical_cpus
            )
        });
        Verdict {
            need,
            winner,
            says: format!("{} on {machine}: {}", ranking.what, parts.join("; ")),
            source: Some(dir.to_string()),
        }
    }
}
