//! Measurement, not comparison: a framework's plain training loop, as a user would write it without
//! the harness (no progress, no sums, no per-step loss kept), behind the small [`BareLoop`] trait,
//! and the drivers that time it. `examples/breakdown.rs` and `benches/harness.rs` in the root package
//! run them for every registered framework; a framework crate only implements the trait.

use std::time::{Duration, Instant};

use crate::error::TrainError;

/// A model, its optimiser and the training split on a device, as a bare loop holds them.
pub trait BareLoop {
    /// Queues one training step on the examples `idx`: gather, forward, loss, backward, optimiser.
    fn step(&mut self, idx: &[u32]) -> Result<(), TrainError>;

    /// One training step with the device synchronised between its parts: the time in the forward
    /// pass with the loss, in the backward pass, and in the optimiser step.
    fn timed_step(&mut self, idx: &[u32]) -> Result<[Duration; 3], TrainError>;

    /// Waits until the device has finished all queued work.
    fn synchronize(&self) -> Result<(), TrainError>;

    /// Each layer of a training step alone, on the activations that the batch `idx` gives it, over
    /// `reps` repetitions; empty where the framework has no such measurement.
    fn op_times(&self, _idx: &[u32], _reps: usize) -> Result<Vec<OpTime>, TrainError> {
        Ok(Vec::new())
    }
}

/// One layer's share of a training step (see [`BareLoop::op_times`]).
#[derive(Debug, Clone)]
pub struct OpTime {
    /// The layer, with its input and output shapes.
    pub name: String,
    pub forward: Duration,
    pub backward: Duration,
    /// Parts of the backward pass timed alone, where the framework measures them.
    pub parts: Vec<(&'static str, Duration)>,
}

/// The training steps of `order` in batches of `batch`, nothing else, until the device is done.
pub fn steps(bare: &mut dyn BareLoop, order: &[u32], batch: usize) -> Result<Duration, TrainError> {
    bare.synchronize()?;
    let start = Instant::now();
    for idx in order.chunks(batch.max(1)) {
        bare.step(idx)?;
    }
    bare.synchronize()?;
    Ok(start.elapsed())
}

/// Time in the forward pass (with the loss), the backward pass and the optimiser over the steps of
/// `order` in batches of `batch`.
pub fn breakdown(
    bare: &mut dyn BareLoop,
    order: &[u32],
    batch: usize,
) -> Result<[Duration; 3], TrainError> {
    let mut total = [Duration::ZERO; 3];
    for idx in order.chunks(batch.max(1)) {
        let t = bare.timed_step(idx)?;
        for (sum, part) in total.iter_mut().zip(t) {
            *sum += part;
        }
    }
    Ok(total)
}
