//! The epoch loop every framework runs under ([`train`]), the hooks that the progress display and
//! the meters observe it through ([`Observer`]), and the records it fills ([`record`]: the report's
//! schema below the run).
//!
//! The loop owns the clock, the batch order and the records; a [`Trainer`] only runs steps on its
//! device and returns sums. Epoch time runs from a synchronised device at the first step to a
//! device synchronisation after the last, and evaluation is timed apart. The framework crates do
//! not depend on this crate: a new field of a record rebuilds the meters, the reports and the
//! binaries, not the frameworks.

pub mod record;

use std::time::Instant;

use common::harness::{RunSpec, Trainer};
use common::mnist::SplitKind;
use common::order::epoch_order;
use common::TrainError;

pub use record::{DeviceActivity, EpochRecord, EvalRecord, KernelPass, KernelTime};

/// Hooks of the epoch loop, for the progress display and the meters; all optional.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: u32, _steps: usize) {}
    fn step(&mut self, _steps_done: usize) {}
    /// The epoch's training has finished on the device (its evaluation comes next).
    fn epoch_trained(&mut self, _epoch: u32) {}
    /// The epoch's record, before it is kept: a meter writes its own fields into it.
    fn epoch_finished(&mut self, _record: &mut EpochRecord) {}
    fn evaluating(&mut self, _what: &str) {}
}

/// An observer that shows nothing.
pub struct Silent;

impl Observer for Silent {}

/// What the loop produced; `failure` says why it stopped early, if it did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub epochs: Vec<EpochRecord>,
    pub final_train: Option<EvalRecord>,
    pub final_test: Option<EvalRecord>,
    pub failure: Option<String>,
}

fn timed_eval(trainer: &mut dyn Trainer, split: SplitKind) -> Result<EvalRecord, TrainError> {
    trainer.synchronize()?;
    let start = Instant::now();
    let totals = trainer.evaluate(split)?;
    trainer.synchronize()?;
    Ok(EvalRecord::new(&totals, start.elapsed().as_secs_f64()))
}

/// Runs `spec.epochs` epochs over `train_len` examples, then evaluates on both splits.
pub fn train(
    trainer: &mut dyn Trainer,
    spec: &RunSpec,
    train_len: usize,
    observer: &mut dyn Observer,
) -> Outcome {
    let mut outcome = Outcome::default();
    if let Err(e) = train_into(trainer, spec, train_len, observer, &mut outcome) {
        outcome.failure = Some(e.to_string());
    }
    outcome
}

fn train_into(
    trainer: &mut dyn Trainer,
    spec: &RunSpec,
    train_len: usize,
    observer: &mut dyn Observer,
    outcome: &mut Outcome,
) -> Result<(), TrainError> {
    let steps = train_len.div_ceil(spec.batch_size);
    for epoch in 1..=spec.epochs {
        let order = epoch_order(spec.seed, epoch, train_len);
        observer.epoch_started(epoch, steps);
        trainer.synchronize()?;
        let start = Instant::now();
        let mut queued = None;
        let totals = trainer.train_epoch(&order, &mut |done| {
            queued = Some(start.elapsed().as_secs_f64());
            observer.step(done);
        })?;
        trainer.synchronize()?;
        let train_seconds = start.elapsed().as_secs_f64();
        observer.epoch_trained(epoch);
        if !totals.loss_sum.is_finite() {
            let at = match totals.first_nonfinite {
                Some((step, loss)) => format!(", first at step {step} of {steps} (loss {loss})"),
                None => String::new(),
            };
            return Err(TrainError::NonFinite(format!(
                "the training loss became NaN or infinite in epoch {epoch}{at}; the run stopped at the end of that epoch"
            )));
        }
        observer.evaluating("test");
        let test = timed_eval(trainer, SplitKind::Test)?;
        let mut record = EpochRecord {
            epoch,
            train_loss: totals.mean_loss(),
            train_accuracy: totals.accuracy(),
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            train_seconds,
            eval_seconds: test.seconds,
            queued_seconds: queued,
            // The meters' fields: each meter writes its own (`Observer::epoch_finished`).
            ..EpochRecord::default()
        };
        observer.epoch_finished(&mut record);
        outcome.epochs.push(record);
        if epoch == spec.epochs {
            outcome.final_test = Some(test);
        }
    }
    observer.evaluating("train");
    outcome.final_train = Some(timed_eval(trainer, SplitKind::Train)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::harness::{BackendInfo, DeviceKind, Totals, BATCH_SIZE};
    use common::weights::Weights;
    use std::time::Duration;

    /// A trainer whose steps the host queues in `queue` each, and whose device needs `drain` after
    /// the last one: what a GPU framework looks like from the harness.
    struct Queued {
        queue: Duration,
        drain: Duration,
        pending: std::cell::Cell<bool>,
    }

    impl Trainer for Queued {
        fn train_epoch(
            &mut self,
            order: &[u32],
            progress: &mut dyn FnMut(usize),
        ) -> Result<Totals, TrainError> {
            for step in 1..=order.len().div_ceil(BATCH_SIZE) {
                std::thread::sleep(self.queue);
                progress(step);
            }
            self.pending.set(true);
            Ok(Totals {
                loss_sum: 0.0,
                correct: 0,
                examples: order.len() as u64,
                first_nonfinite: None,
            })
        }

        fn evaluate(&mut self, _split: SplitKind) -> Result<Totals, TrainError> {
            Ok(Totals {
                loss_sum: 0.0,
                correct: 1,
                examples: 1,
                first_nonfinite: None,
            })
        }

        fn weights(&self) -> Result<Weights, TrainError> {
            Ok(Weights::default())
        }

        fn synchronize(&self) -> Result<(), TrainError> {
            if self.pending.replace(false) {
                std::thread::sleep(self.drain);
            }
            Ok(())
        }

        fn backend(&self) -> BackendInfo {
            BackendInfo {
                framework: "queued".into(),
                framework_version: String::new(),
                device: DeviceKind::Cuda,
                device_name: "fake".into(),
                threads: 1,
                features: Vec::new(),
                notes: Vec::new(),
                tuning: Vec::new(),
            }
        }
    }

    /// The harness records when the last step was queued: 4 steps of 20 ms, then 120 ms for the
    /// device, so the host is done at about 80 of 200 ms.
    #[test]
    fn the_queueing_time_of_an_epoch_is_recorded() {
        let mut trainer = Queued {
            queue: Duration::from_millis(20),
            drain: Duration::from_millis(120),
            pending: std::cell::Cell::new(false),
        };
        let spec = RunSpec {
            epochs: 2,
            ..RunSpec::recipe("queued", common::ModelKind::LeNet2)
        };
        let outcome = train(&mut trainer, &spec, 4 * BATCH_SIZE, &mut Silent);
        assert_eq!(outcome.failure, None);
        assert_eq!(outcome.epochs.len(), 2);
        for e in &outcome.epochs {
            let queued = e.queued_seconds.expect("recorded");
            assert!((0.08..0.15).contains(&queued), "queued {queued}");
            assert!(e.train_seconds >= queued + 0.12, "{e:?}");
            assert!(queued / e.train_seconds < 0.6, "{e:?}");
        }
    }
}
