//! A tch training run: the model, tch's Adam (or in the tuned profile libtorch's fused Adam), the
//! epoch's steps eager or through the CUDA graph (`graphs`), evaluation and what the run reports
//! about its backend.

#[cfg(lenet_tch_graphs)]
mod graphs;

use common::harness::{BackendInfo, DeviceKind, Profile, RunSpec, Totals, Trainer, Tuning};
use common::mnist::{Mnist, SplitKind};
use common::weights::Weights;
use common::TrainError;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::device::{cuda_built, pick_device, DeviceSplit};
use crate::tuned::{self, tune, FUSED_ADAM};
use crate::weights::{export, load_weights};
use crate::{backend_error, model, FRAMEWORK};

/// The optimiser of a run: tch's own (`nn::Adam`, libtorch's C++ Adam), or in the tuned profile
/// libtorch's fused Adam through the shim.
enum Optim {
    Idiomatic(nn::Optimizer),
    Fused(tuned::FusedAdam),
}

impl Optim {
    /// Zeroes the gradients, runs backward from `loss`, and steps.
    fn backward_step(&mut self, loss: &Tensor) -> Result<(), TrainError> {
        match self {
            Optim::Idiomatic(opt) => {
                opt.backward_step(loss);
                Ok(())
            }
            Optim::Fused(opt) => {
                opt.zero_grad();
                loss.backward();
                opt.step()
            }
        }
    }
}

/// A tch training run.
pub struct TchTrainer {
    vs: nn::VarStore,
    net: Box<dyn Module>,
    opt: Optim,
    /// The tuned profile's CUDA graph of a full step.
    #[cfg(lenet_tch_graphs)]
    graphed: Option<tuned::Graphed>,
    device: Device,
    batch_size: i64,
    train: DeviceSplit,
    test: DeviceSplit,
    /// The tuned profile's settings, as applied.
    tuning: Vec<Tuning>,
}

impl TchTrainer {
    /// Builds the model on the device that `spec` asks for, imports `init`, uploads both splits.
    pub fn new(spec: &RunSpec, data: &Mnist, init: &Weights) -> Result<Self, TrainError> {
        if let Some(threads) = spec.threads {
            tch::set_num_threads(threads as i32);
        }
        let device = pick_device(spec.device)?;
        let tuned = spec.profile == Profile::Tuned;
        let graph_steps = if tuned {
            let value = std::env::var(tuned::GRAPH_STEPS_VAR).ok();
            tuned::graph_steps(value.as_deref())?
        } else {
            tuned::DEFAULT_GRAPH_STEPS
        };
        let tuning = if tuned {
            tune(device, graph_steps)
        } else {
            Vec::new()
        };
        let applied = |setting: &str| tuning.iter().any(|t| t.setting == setting && t.applied);
        init.check(&spec.model.spec())?;
        let mut vs = nn::VarStore::new(device);
        let net = model::net(spec.model, &vs.root());
        load_weights(&mut vs, init)?;
        let opt = if applied(FUSED_ADAM) {
            Optim::Fused(tuned::FusedAdam::new(&vs, spec.learning_rate))
        } else {
            Optim::Idiomatic(adam(&vs, spec.learning_rate)?)
        };
        let train = DeviceSplit::upload(&data.train, device);
        #[cfg(lenet_tch_graphs)]
        let graphed = if applied(tuned::CUDA_GRAPH) {
            Some(tuned::Graphed::new(
                spec.batch_size as i64,
                graph_steps,
                train.len(),
                device,
            )?)
        } else {
            None
        };
        Ok(Self {
            net,
            opt,
            #[cfg(lenet_tch_graphs)]
            graphed,
            device,
            batch_size: spec.batch_size as i64,
            train,
            test: DeviceSplit::upload(&data.test, device),
            vs,
            tuning,
        })
    }

    fn split(&self, split: SplitKind) -> &DeviceSplit {
        match split {
            SplitKind::Train => &self.train,
            SplitKind::Test => &self.test,
        }
    }
}

/// The recipe's Adam (betas 0.9/0.999, eps 1e-8, no weight decay) over the variables of `vs`.
pub(crate) fn adam(vs: &nn::VarStore, learning_rate: f64) -> Result<nn::Optimizer, TrainError> {
    nn::Adam {
        beta1: 0.9,
        beta2: 0.999,
        wd: 0.0,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(vs, learning_rate)
    .map_err(backend_error)
}

/// The predicted class of each row compared with the labels, as a count (on the device).
fn correct(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.argmax(-1, false).eq_tensor(labels).sum(Kind::Int64)
}

fn read_totals(loss_sum: &Tensor, correct: &Tensor, examples: i64) -> Result<Totals, TrainError> {
    Ok(Totals {
        loss_sum: f64::try_from(loss_sum).map_err(backend_error)?,
        correct: i64::try_from(correct).map_err(backend_error)? as u64,
        examples: examples as u64,
        first_nonfinite: None,
    })
}

/// The training step of `idx`, eager or captured: gather, forward, loss, backward and the
/// optimiser; returns the (detached) mean loss and the correct count, on the device.
fn train_step(
    net: &dyn Module,
    opt: &mut Optim,
    train: &DeviceSplit,
    idx: &Tensor,
) -> Result<(Tensor, Tensor), TrainError> {
    let xs = train.images.index_select(0, idx); // [batch, 1, 28, 28]
    let ys = train.labels.index_select(0, idx); // [batch]
    let logits = net.forward(&xs); // [batch, 10]
    let loss = logits.cross_entropy_for_logits(&ys);
    opt.backward_step(&loss)?;
    let hits = tch::no_grad(|| correct(&logits, &ys));
    Ok((loss.detach(), hits))
}

/// One eager step of `idx` (`len` examples): the idiomatic loop's body.
#[allow(clippy::too_many_arguments)]
fn eager_step(
    net: &dyn Module,
    opt: &mut Optim,
    train: &DeviceSplit,
    idx: &Tensor,
    len: i64,
    loss_sum: &mut Tensor,
    hits: &mut Tensor,
    losses: &mut Vec<Tensor>,
) -> Result<(), TrainError> {
    let (loss, correct) = train_step(net, opt, train, idx)?;
    tch::no_grad(|| {
        *loss_sum += &loss * len as f64;
        *hits += correct;
    });
    losses.push(loss);
    Ok(())
}

impl TchTrainer {
    #[cfg(not(lenet_tch_graphs))]
    fn replay_steps(
        &mut self,
        _order: &Tensor,
        _start: i64,
        _remaining: i64,
    ) -> Result<i64, TrainError> {
        Ok(0)
    }

    /// An eager step, on the graph's side stream while it warms up.
    fn eager(
        &mut self,
        idx: &Tensor,
        len: i64,
        loss_sum: &mut Tensor,
        hits: &mut Tensor,
        losses: &mut Vec<Tensor>,
    ) -> Result<(), TrainError> {
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &mut self.graphed {
            g.replayed.push(false);
            if g.warms_up(len) {
                g.warmed += 1;
                let (net, opt, train) = (self.net.as_ref(), &mut self.opt, &self.train);
                return g.capture.on_side_stream(|| {
                    eager_step(net, opt, train, idx, len, loss_sum, hits, losses)
                });
            }
        }
        eager_step(
            self.net.as_ref(),
            &mut self.opt,
            &self.train,
            idx,
            len,
            loss_sum,
            hits,
            losses,
        )
    }
}

impl Trainer for TchTrainer {
    fn train_epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        let order: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let n = order.len() as i64;
        let order = Tensor::from_slice(&order).to_device(self.device);
        let mut loss_sum = Tensor::zeros([], (Kind::Float, self.device));
        let mut hits = Tensor::zeros([], (Kind::Int64, self.device));
        // Each step's loss stays on the device; read back only if the epoch's sum is not finite.
        let mut losses = Vec::with_capacity((n as usize).div_ceil(self.batch_size as usize));
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &mut self.graphed {
            g.start_epoch();
        }
        let mut start = 0;
        let mut step = 0;
        while start < n {
            let replayed = self.replay_steps(&order, start, n - start)?;
            if replayed > 0 {
                start += replayed * self.batch_size;
                for _ in 0..replayed {
                    step += 1;
                    progress(step);
                }
                continue;
            }
            let len = self.batch_size.min(n - start);
            let idx = order.narrow(0, start, len);
            self.eager(&idx, len, &mut loss_sum, &mut hits, &mut losses)?;
            start += len;
            step += 1;
            progress(step);
        }
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &self.graphed {
            // The replays' sums beside the eager steps'.
            loss_sum += &g.loss_sum;
            hits += &g.hits;
        }
        let mut totals = read_totals(&loss_sum, &hits, n)?;
        if !totals.loss_sum.is_finite() {
            #[cfg(lenet_tch_graphs)]
            if let Some(g) = &self.graphed {
                losses = g.step_losses(losses)?;
            }
            let all = Vec::<f32>::try_from(Tensor::stack(&losses, 0).to_kind(Kind::Float))
                .map_err(backend_error)?;
            totals.first_nonfinite = common::harness::first_nonfinite(&all);
        }
        Ok(totals)
    }

    fn evaluate(&mut self, split: SplitKind) -> Result<Totals, TrainError> {
        let data = self.split(split);
        let n = data.len();
        let batch = common::harness::EVAL_BATCH_SIZE as i64;
        tch::no_grad(|| {
            let mut loss_sum = Tensor::zeros([], (Kind::Float, self.device));
            let mut hits = Tensor::zeros([], (Kind::Int64, self.device));
            let mut start = 0;
            while start < n {
                let len = batch.min(n - start);
                let xs = data.images.narrow(0, start, len);
                let ys = data.labels.narrow(0, start, len);
                let logits = self.net.forward(&xs);
                loss_sum += logits.cross_entropy_for_logits(&ys) * len as f64;
                hits += correct(&logits, &ys);
                start += len;
            }
            read_totals(&loss_sum, &hits, n)
        })
    }

    fn weights(&self) -> Result<Weights, TrainError> {
        export(&self.vs)
    }

    fn synchronize(&self) -> Result<(), TrainError> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok(())
    }

    fn backend(&self) -> BackendInfo {
        let (device, device_name) = match self.device {
            Device::Cuda(i) => (DeviceKind::Cuda, format!("cuda:{i}")),
            _ => (DeviceKind::Cpu, "cpu".to_string()),
        };
        let mut notes = vec![format!(
            "cudnn: {}",
            if tch::Cuda::cudnn_is_available() {
                "available"
            } else {
                "not available"
            }
        )];
        if device == DeviceKind::Cuda && self.tuning.is_empty() {
            notes.push("cudnn.benchmark: false (libtorch default)".into());
        }
        BackendInfo {
            framework: FRAMEWORK.into(),
            framework_version: crate::framework_version(),
            device,
            device_name,
            threads: tch::get_num_threads().max(0) as usize,
            features: if cuda_built() {
                vec!["libtorch with CUDA".into()]
            } else {
                vec!["libtorch CPU only".into()]
            },
            notes,
            tuning: self.tuning_as_run(),
        }
    }
}

impl TchTrainer {
    /// The tuned settings, with what the CUDA graph's self-check found on its entry.
    fn tuning_as_run(&self) -> Vec<Tuning> {
        #[allow(unused_mut)]
        let mut tuning = self.tuning.clone();
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &self.graphed {
            for t in tuning.iter_mut().filter(|t| t.setting == tuned::CUDA_GRAPH) {
                match (&g.check, g.fell_back) {
                    (Some(check), true) => {
                        t.applied = false;
                        t.note = check.clone();
                    }
                    (Some(check), false) => t.note = format!("{}; {check}", t.note),
                    (None, _) => {}
                }
            }
        }
        tuning
    }
}
