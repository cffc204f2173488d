//! The tuned profile's CUDA graph in a tch run: the steps captured once through the shim's
//! `at::cuda::CUDAGraph`, replayed, and the first replay checked against the same steps run
//! eagerly (`common::replay_check`).

use tch::{Device, Kind, Tensor};

use common::replay_check::{self, StepOutcome};
use common::TrainError;

use super::{eager_step, train_step, Optim, TchTrainer};
use crate::{backend_error, tuned, FRAMEWORK};

/// How closely the CUDA graph's first replay must agree with the same steps run eagerly (relative:
/// the same kernels on the same device; `common::replay_check`), as for candle and burn.
const REPLAY_TOLERANCE: f64 = 1e-3;

impl TchTrainer {
    /// The next steps from `start` in `order` (`remaining` examples left) through the CUDA graph,
    /// capturing it first if this is the first replay; the number of steps replayed, 0 when the
    /// next step is not for the graph (no graph, a warm-up step, too few full batches left).
    pub(super) fn replay_steps(
        &mut self,
        order: &Tensor,
        start: i64,
        remaining: i64,
    ) -> Result<i64, TrainError> {
        let device = self.device;
        let Self {
            graphed,
            net,
            opt,
            train,
            ..
        } = self;
        let Some(g) = graphed else {
            return Ok(0);
        };
        if !g.replays(remaining) {
            return Ok(0);
        }
        if !g.captured {
            if let Device::Cuda(i) = device {
                tch::Cuda::synchronize(i as i64);
            }
            let tuned::Graphed {
                capture,
                idx: static_idx,
                loss_sum,
                hits,
                losses,
                slot,
                batch,
                steps,
                ..
            } = g;
            let (batch, steps) = (*batch, *steps);
            capture.capture(|| {
                for k in 0..steps {
                    let idx = static_idx.narrow(0, k * batch, batch);
                    let (loss, correct) = train_step(net.as_ref(), opt, train, &idx)?;
                    tch::no_grad(|| -> Result<(), tch::TchError> {
                        let _ = loss_sum.f_add_(&(&loss * batch as f64))?;
                        let _ = hits.f_add_(&correct)?;
                        let _ = losses.f_index_copy_(0, &slot.view([1]), &loss.view([1]))?;
                        let _ = slot.f_add_scalar_(1)?;
                        Ok(())
                    })
                    .map_err(backend_error)?;
                }
                Ok(())
            })?;
            g.captured = true;
        }
        if !g.verified {
            return self.checked_replay(order, start);
        }
        let steps = g.steps;
        g.idx
            .f_copy_(&order.narrow(0, start, steps * g.batch))
            .map_err(backend_error)?;
        g.capture.replay()?;
        g.replayed.extend((0..steps).map(|_| true));
        Ok(steps)
    }

    /// The graph's first replay, checked: from a saved copy of everything its steps write, the
    /// graph replays them; the state is put back (copied into the same storage, which the graph
    /// reads) and the same steps run eagerly; `common::replay_check` compares the two (the mean
    /// of the steps' losses, and each parameter's update). The run goes on from the eager steps,
    /// counted as the graph's; where the replay disagreed, no replay follows. Returns the steps.
    fn checked_replay(&mut self, order: &Tensor, start: i64) -> Result<i64, TrainError> {
        let clock = std::time::Instant::now();
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let Optim::Fused(fused) = &self.opt else {
            return Err(TrainError::Backend {
                framework: FRAMEWORK,
                message: "the CUDA graph needs the fused Adam".into(),
            });
        };
        let mut written = fused.state();
        let Some(g) = self.graphed.as_mut() else {
            return Ok(0);
        };
        let (steps, batch) = (g.steps, g.batch);
        let idx = order.narrow(0, start, steps * batch);
        written.extend([&g.loss_sum, &g.hits, &g.losses, &g.slot].map(Tensor::shallow_clone));
        let saved: Vec<Tensor> = tch::no_grad(|| written.iter().map(Tensor::copy).collect());
        let before = host(&named)?;
        let slot = i64::try_from(&g.slot).map_err(backend_error)?;
        g.idx.f_copy_(&idx).map_err(backend_error)?;
        g.capture.replay()?;
        let replayed = StepOutcome {
            loss: mean(&floats(&g.losses.narrow(0, slot, steps))?),
            tensors: host(&named)?,
        };
        restore(&mut written, &saved)?;
        let (loss_sum, hits, losses) = self.eager_steps(&idx, steps, batch)?;
        let eager = StepOutcome {
            loss: mean(&floats(&losses)?),
            tensors: host(&named)?,
        };
        let Some(g) = self.graphed.as_mut() else {
            return Ok(0);
        };
        count_as_replayed(g, (&loss_sum, &hits, &losses), slot)?;
        g.verified = true;
        let seconds = clock.elapsed().as_secs_f64();
        let first = g.replayed.len() - steps as usize + 1;
        let judged =
            replay_check::judge(&before, &eager, &replayed, REPLAY_TOLERANCE, first, seconds);
        g.fell_back = judged.is_err();
        g.check = Some(judged.unwrap_or_else(|note| note));
        Ok(steps)
    }

    /// `steps` eager steps of `batch` over `idx`: their summed loss, hits and each step's loss.
    fn eager_steps(
        &mut self,
        idx: &Tensor,
        steps: i64,
        batch: i64,
    ) -> Result<(Tensor, Tensor, Tensor), TrainError> {
        let mut loss_sum = Tensor::zeros([], (Kind::Float, self.device));
        let mut hits = Tensor::zeros([], (Kind::Int64, self.device));
        let mut losses = Vec::new();
        for k in 0..steps {
            let idx = idx.narrow(0, k * batch, batch);
            let (net, opt, train) = (self.net.as_ref(), &mut self.opt, &self.train);
            eager_step(
                net,
                opt,
                train,
                &idx,
                batch,
                &mut loss_sum,
                &mut hits,
                &mut losses,
            )?;
        }
        let losses = Tensor::stack(&losses, 0).to_kind(Kind::Float);
        Ok((loss_sum, hits, losses))
    }
}

/// The named tensors on the host, flattened.
fn host(named: &[(String, Tensor)]) -> Result<Vec<(String, Vec<f32>)>, TrainError> {
    named
        .iter()
        .map(|(name, t)| {
            let values = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float))
                .map_err(backend_error)?;
            Ok((name.clone(), values))
        })
        .collect()
}

fn floats(t: &Tensor) -> Result<Vec<f32>, TrainError> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float)).map_err(backend_error)
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

/// Copies `saved` back into `written`, the same storage the graph reads.
fn restore(written: &mut [Tensor], saved: &[Tensor]) -> Result<(), TrainError> {
    tch::no_grad(|| -> Result<(), tch::TchError> {
        for (t, s) in written.iter_mut().zip(saved) {
            t.f_copy_(s)?;
        }
        Ok(())
    })
    .map_err(backend_error)
}

/// The eager steps' sums and losses, where the graph's replay would have put them.
fn count_as_replayed(
    g: &mut tuned::Graphed,
    (loss_sum, hits, losses): (&Tensor, &Tensor, &Tensor),
    slot: i64,
) -> Result<(), TrainError> {
    let steps = g.steps;
    tch::no_grad(|| -> Result<(), tch::TchError> {
        let _ = g.loss_sum.f_add_(loss_sum)?;
        let _ = g.hits.f_add_(hits)?;
        g.losses.narrow(0, slot, steps).f_copy_(losses)?;
        let _ = g.slot.f_add_scalar_(steps)?;
        Ok(())
    })
    .map_err(backend_error)?;
    g.replayed.extend((0..steps).map(|_| true));
    Ok(())
}
