//! burn's bare training loop on the CPU (Flex), for measurements (see `common::bare`), with each
//! layer's forward and backward time measured alone.

use std::time::{Duration, Instant};

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use common::bare::{BareLoop, OpTime};
use common::harness::LEARNING_RATE;
use common::{Mnist, ModelKind, TrainError, Weights};

use crate::device::DeviceSplit;
use crate::model::Net;
use crate::weights::net_with;
use crate::{backend_error, lost};

/// A model, its optimiser and the training split on the CPU, as a bare loop would hold them.
pub struct Bare {
    /// Taken by the optimiser for the moment of its step.
    net: Option<Net>,
    opt: ModuleOptimizer,
    loss: CrossEntropyLoss,
    device: Device,
    train: DeviceSplit,
}

impl Bare {
    pub fn new(model: ModelKind, data: &Mnist) -> Result<Self, TrainError> {
        let device = Device::flex().autodiff();
        let init = Weights::init(&model.spec(), 0);
        let net = net_with(model, &init, &device)?;
        let opt = crate::trainer::adam();
        let train = DeviceSplit::upload(&data.train, &device);
        Ok(Self {
            net: Some(net),
            opt,
            // Built once, as the trainer does.
            loss: CrossEntropyLossConfig::new().init(&device),
            device,
            train,
        })
    }

    fn batch(&self, idx: &[u32]) -> (Tensor<4>, Tensor<1, Int>) {
        let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let n = idx.len();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &self.device);
        (
            self.train.images.clone().select(0, idx.clone()),
            self.train.labels.clone().select(0, idx),
        )
    }

    fn net(&self) -> Result<&Net, TrainError> {
        self.net.as_ref().ok_or_else(lost)
    }

    fn loss(&self, xs: Tensor<4>, ys: Tensor<1, Int>) -> Result<Tensor<1>, TrainError> {
        Ok(self.loss.forward(self.net()?.forward(xs), ys))
    }

    fn grads(&self, loss: Tensor<1>) -> Result<GradientsParams, TrainError> {
        Ok(GradientsParams::from_grads(loss.backward(), self.net()?))
    }

    fn update(&mut self, grads: GradientsParams) -> Result<(), TrainError> {
        let net = self.net.take().ok_or_else(lost)?;
        self.net = Some(self.opt.step(LEARNING_RATE, net, grads));
        Ok(())
    }

    fn sync(&self) -> Result<(), TrainError> {
        self.device
            .sync()
            .map_err(|e| backend_error(format!("{e:?}")))
    }

    fn step_inner(&mut self, idx: &[u32]) -> Result<(), TrainError> {
        let (xs, ys) = self.batch(idx);
        let loss = self.loss(xs, ys)?;
        let grads = self.grads(loss)?;
        self.update(grads)
    }

    fn timed_step_inner(&mut self, idx: &[u32]) -> Result<[Duration; 3], TrainError> {
        let (xs, ys) = self.batch(idx);
        self.sync()?;
        let a = Instant::now();
        let loss = self.loss(xs, ys)?;
        self.sync()?;
        let b = Instant::now();
        let grads = self.grads(loss)?;
        self.sync()?;
        let c = Instant::now();
        self.update(grads)?;
        self.sync()?;
        let d = Instant::now();
        Ok([b - a, c - b, d - c])
    }

    /// Each layer of a training step on its own, on the activations a real batch gives it:
    /// the mean time of its forward pass and of its part of the backward pass over `reps`
    /// repetitions, then the same for the loss. burn's backward pass consumes its graph, so
    /// the backward time is (forward, probe and backward) less the forward and less the
    /// probe's own backward, `(y * g).sum()` for a fixed random `g`, timed alone.
    fn op_times_inner(&self, idx: &[u32], reps: usize) -> Result<Vec<OpTime>, TrainError> {
        let reps = reps.max(1) as u32;
        let (xs, ys) = self.batch(idx);
        let mut out = Vec::new();
        let mut x = xs.detach();
        let stages = self.net()?.stages();
        for (i, (name, f)) in stages.features.iter().enumerate() {
            let (time, y) = self.layer_time(&x, i == 0, reps, f)?;
            out.push(time.named(name, x.dims().as_slice(), y.dims().as_slice()));
            x = y;
        }
        let (time, mut h) = self.layer_time(&x, false, reps, |x| x.flatten::<2>(1, 3))?;
        out.push(time.named("flatten", x.dims().as_slice(), h.dims().as_slice()));
        for (name, f) in &stages.classifier {
            let (time, y) = self.layer_time(&h, false, reps, f)?;
            out.push(time.named(name, h.dims().as_slice(), y.dims().as_slice()));
            h = y;
        }
        let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(&self.device);
        let logits = h.require_grad();
        let forward = self.mean(reps, &mut || {
            let _ = loss.forward(logits.clone(), ys.clone());
        })?;
        let total = self.mean(reps, &mut || {
            let _ = loss.forward(logits.clone(), ys.clone()).backward();
        })?;
        out.push(OpTime {
            name: format!("cross_entropy {:?}", logits.dims()),
            forward,
            backward: total.saturating_sub(forward),
            parts: Vec::new(),
        });
        Ok(out)
    }

    fn mean(&self, reps: u32, f: &mut dyn FnMut()) -> Result<Duration, TrainError> {
        f(); // warm-up
        self.sync()?;
        let start = Instant::now();
        for _ in 0..reps {
            f();
        }
        self.sync()?;
        Ok(start.elapsed() / reps)
    }

    /// Forward and backward time of `f` on `x` (which needs no gradient when `first`), and
    /// its output, detached.
    fn layer_time<const D: usize, const E: usize>(
        &self,
        x: &Tensor<D>,
        first: bool,
        reps: u32,
        f: impl Fn(Tensor<D>) -> Tensor<E>,
    ) -> Result<(LayerTime, Tensor<E>), TrainError> {
        let input = if first {
            x.clone().detach()
        } else {
            x.clone().detach().require_grad()
        };
        let forward = self.mean(reps, &mut || {
            let _ = f(input.clone());
        })?;
        let y = f(input.clone()).detach();
        let g = Tensor::<E>::random(y.shape(), Distribution::Normal(0.0, 1.0), &self.device);
        let total = self.mean(reps, &mut || {
            let _ = (f(input.clone()) * g.clone()).sum().backward();
        })?;
        let probe = self.mean(reps, &mut || {
            let v = y.clone().require_grad();
            let _ = (v * g.clone()).sum().backward();
        })?;
        let backward = total.saturating_sub(forward).saturating_sub(probe);
        Ok((LayerTime { forward, backward }, y))
    }
}

struct LayerTime {
    forward: Duration,
    backward: Duration,
}

impl LayerTime {
    fn named(self, layer: &str, input: &[usize], output: &[usize]) -> OpTime {
        OpTime {
            name: format!("{layer} {input:?} -> {output:?}"),
            forward: self.forward,
            backward: self.backward,
            parts: Vec::new(),
        }
    }
}

impl BareLoop for Bare {
    fn step(&mut self, idx: &[u32]) -> Result<(), TrainError> {
        self.step_inner(idx)
    }

    fn timed_step(&mut self, idx: &[u32]) -> Result<[Duration; 3], TrainError> {
        self.timed_step_inner(idx)
    }

    fn synchronize(&self) -> Result<(), TrainError> {
        self.sync()
    }

    /// burn's backward pass consumes its graph, so a layer's backward time is (forward, probe and
    /// backward) less the forward and less the probe's own backward, `(y * g).sum()` for a fixed
    /// random `g`, timed alone.
    fn op_times(&self, idx: &[u32], reps: usize) -> Result<Vec<OpTime>, TrainError> {
        self.op_times_inner(idx, reps)
    }
}
