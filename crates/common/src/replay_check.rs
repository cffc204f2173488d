//! The captured step's self-check, framework-free: before a run trusts its replayed step, one step
//! from the same saved state runs both ways, eagerly and replayed, and their outcomes are compared
//! here on the host. What is compared is what a wrong replay gets wrong: the step's loss (a replay
//! on stale inputs or frozen weights) and each tensor's update, after minus before (a replay that
//! skips the update, writes it into another buffer, or uses a stale step count and so the wrong
//! bias corrections). Updates rather than values, because a step moves a weight by about the
//! learning rate: compared as values, a skipped update would differ by a thousandth of the weight.

use std::fmt;

/// What one step left: its loss and the tensors it updates, by name, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub loss: f64,
    pub tensors: Vec<(String, Vec<f32>)>,
}

/// How closely a replay agreed with the eager step: the largest relative difference found, and
/// where.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub difference: f64,
    pub worst: String,
}

/// A replay that disagreed with the eager step, or could not be compared with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement(pub String);

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replay disagreed with the eager step: {}", self.0)
    }
}

/// Compares the replayed step with the eager one, both from `before`: the losses relative to the
/// eager loss, each tensor's update relative to the largest of the eager update's elements (so a
/// skipped update is off by 1). Within `tolerance` everywhere: the largest difference and where;
/// else the first place past it.
pub fn compare(
    before: &[(String, Vec<f32>)],
    eager: &StepOutcome,
    replayed: &StepOutcome,
    tolerance: f64,
) -> Result<Agreement, Disagreement> {
    let loss = relative(replayed.loss - eager.loss, eager.loss.abs());
    if !within(loss, tolerance) {
        return Err(Disagreement(format!(
            "the step's loss off by {} ({} replayed, {} eager; tolerance {tolerance:e})",
            short(loss),
            replayed.loss,
            eager.loss
        )));
    }
    let mut agreement = Agreement {
        difference: loss,
        worst: "the step's loss".into(),
    };
    for (name, start) in before {
        let (Some(e), Some(r)) = (values(eager, name), values(replayed, name)) else {
            return Err(Disagreement(format!(
                "{name} is missing from a step's outcome"
            )));
        };
        if e.len() != start.len() || r.len() != start.len() {
            return Err(Disagreement(format!(
                "{name} has {} values before the step, {} after the eager one and {} after the \
                 replay",
                start.len(),
                e.len(),
                r.len()
            )));
        }
        let scale = start
            .iter()
            .zip(e)
            .map(|(s, e)| f64::from(e - s).abs())
            .fold(0.0, f64::max);
        let off = start
            .iter()
            .zip(e.iter().zip(r))
            .map(|(s, (e, r))| f64::from((r - s) - (e - s)).abs())
            .fold(0.0, |a: f64, d| {
                if a.is_nan() || d.is_nan() {
                    f64::NAN
                } else {
                    a.max(d)
                }
            });
        let difference = relative(off, scale);
        if !within(difference, tolerance) {
            return Err(Disagreement(format!(
                "{name}'s update off by {} of its largest element (tolerance {tolerance:e})",
                short(difference)
            )));
        }
        if difference > agreement.difference {
            agreement = Agreement {
                difference,
                worst: format!("{name}'s update"),
            };
        }
    }
    Ok(agreement)
}

/// Whether `difference` is a number no greater than `tolerance` (NaN never is).
fn within(difference: f64, tolerance: f64) -> bool {
    difference
        .partial_cmp(&tolerance)
        .is_some_and(|o| o.is_le())
}

fn values<'a>(outcome: &'a StepOutcome, name: &str) -> Option<&'a Vec<f32>> {
    outcome
        .tensors
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// `off` relative to `scale`, or absolute where the scale is zero.
fn relative(off: f64, scale: f64) -> f64 {
    if scale > 0.0 {
        off.abs() / scale
    } else {
        off.abs()
    }
}

fn short(x: f64) -> String {
    format!("{x:.2e}")
}

/// The check of a replay from `before`, `step` being its step in the epoch and `seconds` what the
/// check took, as the report says it: `Ok` with the words for a replay that agreed (see
/// [`compare`]), `Err` with the words for one that did not, after which the run goes on eagerly.
pub fn judge(
    before: &[(String, Vec<f32>)],
    eager: &StepOutcome,
    replayed: &StepOutcome,
    tolerance: f64,
    step: usize,
    seconds: f64,
) -> Result<String, String> {
    match compare(before, eager, replayed, tolerance) {
        Ok(agreement) => Ok(passed_note(&agreement, tolerance, step, seconds)),
        Err(disagreement) => Err(failed_note(&disagreement, step, seconds)),
    }
}

/// The report's words for a check that passed: where, how close, and what it cost.
fn passed_note(agreement: &Agreement, tolerance: f64, step: usize, seconds: f64) -> String {
    format!(
        "its first replay (step {step}) was checked against the eager step from the same state: \
         agreed within {} ({}; tolerance {tolerance:e}); the check took {:.1} ms",
        short(agreement.difference),
        agreement.worst,
        seconds * 1e3
    )
}

/// The report's words for a check that failed and the run that went on eagerly.
fn failed_note(disagreement: &Disagreement, step: usize, seconds: f64) -> String {
    format!(
        "{disagreement} (at step {step}); the run went on eagerly from the eager step's state, \
         the graph dropped (the check took {:.1} ms)",
        seconds * 1e3
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(loss: f64, w: &[f32]) -> StepOutcome {
        StepOutcome {
            loss,
            tensors: vec![("fc1.weight".into(), w.to_vec())],
        }
    }

    #[test]
    fn a_replay_that_does_what_the_eager_step_does_agrees() {
        let before = vec![("fc1.weight".to_string(), vec![1.0, -2.0, 0.5])];
        let eager = outcome(2.3, &[0.999, -1.999, 0.501]);
        let same = compare(&before, &eager, &eager.clone(), 1e-3).unwrap();
        assert_eq!(same.difference, 0.0);
        // A rounding's difference in one update is within the tolerance, and named.
        let close = outcome(2.3, &[0.999, -1.999, 0.500_999_9]);
        let a = compare(&before, &eager, &close, 1e-3).unwrap();
        assert!(a.difference > 0.0 && a.difference < 1e-3, "{a:?}");
        assert_eq!(a.worst, "fc1.weight's update");
    }

    /// The report's words: where and how close for a pass, the difference and the fall-back for
    /// a failure, the step and the check's cost in both.
    #[test]
    fn the_report_says_what_the_check_found() {
        let before = vec![("fc1.weight".to_string(), vec![1.0, -2.0, 0.5])];
        let eager = outcome(2.3, &[0.999, -1.999, 0.501]);
        assert_eq!(
            judge(&before, &eager, &eager, 1e-3, 5, 0.0123),
            Ok(
                "its first replay (step 5) was checked against the eager step from the same \
                state: agreed within 0.00e0 (the step's loss; tolerance 1e-3); the check took \
                12.3 ms"
                    .to_string()
            )
        );
        let skipped = outcome(2.3, &[1.0, -2.0, 0.5]);
        assert_eq!(
            judge(&before, &eager, &skipped, 1e-3, 5, 0.0123),
            Err(
                "replay disagreed with the eager step: fc1.weight's update off by 1.00e0 of its \
                 largest element (tolerance 1e-3) (at step 5); the run went on eagerly from the \
                 eager step's state, the graph dropped (the check took 12.3 ms)"
                    .to_string()
            )
        );
    }

    #[test]
    fn a_skipped_update_a_stale_step_or_another_loss_disagrees() {
        let before = vec![("fc1.weight".to_string(), vec![1.0, -2.0, 0.5])];
        let eager = outcome(2.3, &[0.999, -1.999, 0.501]);
        // The weights where they were: off by the whole update.
        let skipped = compare(&before, &eager, &outcome(2.3, &[1.0, -2.0, 0.5]), 1e-3)
            .unwrap_err()
            .to_string();
        assert_eq!(
            skipped,
            "replay disagreed with the eager step: fc1.weight's update off by 1.00e0 of its \
             largest element (tolerance 1e-3)"
        );
        // The bias corrections of another step: every update 6% off.
        let stale = outcome(2.3, &[0.99906, -1.99906, 0.50094]);
        let e = compare(&before, &eager, &stale, 1e-3).unwrap_err().0;
        assert!(e.starts_with("fc1.weight's update off by 6"), "{e}");
        let loss = compare(
            &before,
            &eager,
            &outcome(2.4, &[0.999, -1.999, 0.501]),
            1e-3,
        )
        .unwrap_err()
        .0;
        assert!(loss.starts_with("the step's loss off by 4.35e-2"), "{loss}");
        let nan = compare(
            &before,
            &eager,
            &outcome(f64::NAN, &[0.999, -1.999, 0.501]),
            1e-3,
        );
        assert!(nan.is_err());
        let nan = compare(
            &before,
            &eager,
            &outcome(2.3, &[0.999, f32::NAN, 0.501]),
            1e-3,
        );
        assert!(nan.is_err());
        let missing = StepOutcome {
            loss: 2.3,
            tensors: vec![],
        };
        assert!(compare(&before, &eager, &missing, 1e-3).is_err());
    }
}
