//! What a captured training step is, whatever its framework: how its full steps ran ([`Replay`]),
//! the warm-up before the recording, the state of the self-check of its first replay
//! ([`FirstReplay`], over [`crate::replay_check`]) and the report's "CUDA graph" entry
//! ([`graph_tuning`]). The frameworks' own recording and replay (burn's `capture`, cudarc's stream
//! capture) stay in their crates; this is the bookkeeping around them, written once.

use crate::harness::Tuning;
use crate::replay_check::{self, StepOutcome};

/// Full steps run eagerly before the recording: they load every kernel, run the libraries' first
/// calls and fill the frameworks' caches, so that the recorded step needs none of it.
pub const WARMUP_STEPS: usize = 3;

/// The tuning entry's setting.
pub const CUDA_GRAPH: &str = "CUDA graph";

/// How the full steps of a captured run ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Not recorded yet (no epoch has had enough full batches yet).
    Pending,
    /// Recorded once and replayed.
    Graph,
    /// Each step run eagerly: where there are no graphs, or after a recording that failed (why).
    Eager(String),
    /// The replay failed its self-check: what the report says.
    FellBack(String),
}

/// The self-check of a graph's first replay: its tolerance, whether it has run since the graph
/// was recorded, and what it found.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstReplay {
    tolerance: f64,
    checked: bool,
    found: Option<String>,
}

impl FirstReplay {
    /// `tolerance`: how closely the first replay must agree with the eager step (relative, see
    /// [`replay_check::compare`]).
    pub fn new(tolerance: f64) -> Self {
        Self {
            tolerance,
            checked: false,
            found: None,
        }
    }

    /// Whether the next replay is a first one, to be checked.
    pub fn due(&self) -> bool {
        !self.checked
    }

    /// A new graph: its first replay is checked again.
    pub fn recorded(&mut self) {
        self.checked = false;
    }

    /// What the check found: the report's words, once a first replay was checked.
    pub fn found(&self) -> Option<&str> {
        self.found.as_deref()
    }

    /// Judges a first replay against the eager step from the same state (`before`), `step` being
    /// its step in the epoch and `seconds` what the check took. Where they disagree, `replay`
    /// becomes [`Replay::FellBack`] and the caller goes on eagerly. Returns whether they agreed.
    pub fn judge(
        &mut self,
        replay: &mut Replay,
        before: &[(String, Vec<f32>)],
        eager: &StepOutcome,
        replayed: &StepOutcome,
        (step, seconds): (usize, f64),
    ) -> bool {
        self.checked = true;
        match replay_check::judge(before, eager, replayed, self.tolerance, step, seconds) {
            Ok(note) => {
                self.found = Some(note);
                true
            }
            Err(note) => {
                *replay = Replay::FellBack(note.clone());
                self.found = Some(note);
                false
            }
        }
    }
}

/// A framework's words for its "CUDA graph" entry.
#[derive(Debug, Clone, Copy)]
pub struct GraphWords {
    /// The entry's value: how the step is recorded.
    pub value: &'static str,
    /// The note of a step that was recorded and replayed.
    pub recorded: &'static str,
}

/// The "CUDA graph" entry: how the tuned step's full batches ran, and what the self-check of its
/// first replay found (`check`).
pub fn graph_tuning(words: &GraphWords, replay: &Replay, check: Option<&str>) -> Tuning {
    let checked = |note: &str| match check {
        Some(check) => format!("{note}; {check}"),
        None => note.to_string(),
    };
    match replay {
        Replay::Graph => Tuning::applied(CUDA_GRAPH, words.value, &checked(words.recorded)),
        Replay::Eager(why) => Tuning::fell_back(CUDA_GRAPH, words.value, &checked(why)),
        Replay::FellBack(why) => Tuning::fell_back(CUDA_GRAPH, words.value, why),
        Replay::Pending => Tuning::fell_back(
            CUDA_GRAPH,
            words.value,
            &format!(
                "no epoch had more than {WARMUP_STEPS} full batches (the warm-up) to record it with"
            ),
        ),
    }
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

    const WORDS: GraphWords = GraphWords {
        value: "whole step",
        recorded: "recorded once and replayed",
    };

    /// A first replay that agrees keeps the graph and says so in the entry; one that skips the
    /// update falls back, and the entry is a fall-back with the difference; a new recording is
    /// checked again.
    #[test]
    fn a_first_replay_is_judged_once_and_the_entry_says_what_was_found() {
        let before = vec![("fc1.weight".to_string(), vec![1.0, -2.0])];
        let eager = outcome(2.3, &[0.999, -1.999]);
        let mut check = FirstReplay::new(1e-3);
        let mut replay = Replay::Graph;
        assert!(check.due());
        assert!(check.judge(&mut replay, &before, &eager, &eager.clone(), (4, 0.01)));
        assert!(!check.due());
        assert_eq!(replay, Replay::Graph);
        let entry = graph_tuning(&WORDS, &replay, check.found());
        assert!(entry.applied, "{entry}");
        assert!(entry.note.contains("agreed within"), "{entry}");

        check.recorded();
        assert!(check.due());
        let skipped = outcome(2.3, &[1.0, -2.0]);
        assert!(!check.judge(&mut replay, &before, &eager, &skipped, (4, 0.01)));
        assert!(matches!(replay, Replay::FellBack(_)));
        let entry = graph_tuning(&WORDS, &replay, check.found());
        assert!(!entry.applied, "{entry}");
        assert!(entry.note.contains("off by"), "{entry}");
    }

    #[test]
    fn an_eager_or_pending_run_says_why_it_has_no_graph() {
        let eager = graph_tuning(&WORDS, &Replay::Eager("no graphs here".into()), None);
        assert!(!eager.applied && eager.note == "no graphs here", "{eager}");
        let pending = graph_tuning(&WORDS, &Replay::Pending, None);
        assert!(
            pending.note.contains("more than 3 full batches"),
            "{pending}"
        );
    }
}
