//! tch's bare training loop on the CPU, for measurements (see `common::bare`).

use std::time::{Duration, Instant};

use common::bare::BareLoop;
use common::harness::LEARNING_RATE;
use common::mnist::Mnist;
use common::spec::ModelKind;
use common::weights::Weights;
use common::TrainError;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use crate::device::DeviceSplit;
use crate::model;
use crate::trainer::adam;
use crate::weights::load_weights;

/// A model, its Adam and the training split, as a plain loop holds them.
pub struct Bare {
    net: Box<dyn Module>,
    opt: nn::Optimizer,
    train: DeviceSplit,
    _vs: nn::VarStore,
}

impl Bare {
    pub fn new(model: ModelKind, data: &Mnist) -> Result<Self, TrainError> {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = model::net(model, &vs.root());
        load_weights(&mut vs, &Weights::init(&model.spec(), 0))?;
        let opt = adam(&vs, LEARNING_RATE)?;
        Ok(Self {
            net,
            opt,
            train: DeviceSplit::upload(&data.train, Device::Cpu),
            _vs: vs,
        })
    }

    /// The batch of `idx`, gathered from the uploaded split.
    fn batch(&self, idx: &[u32]) -> (Tensor, Tensor) {
        let idx: Vec<i64> = idx.iter().map(|&i| i64::from(i)).collect();
        let idx = Tensor::from_slice(&idx);
        (
            self.train.images.index_select(0, &idx),
            self.train.labels.index_select(0, &idx),
        )
    }
}

impl BareLoop for Bare {
    fn step(&mut self, idx: &[u32]) -> Result<(), TrainError> {
        let (xs, ys) = self.batch(idx);
        let loss = self.net.forward(&xs).cross_entropy_for_logits(&ys);
        self.opt.backward_step(&loss);
        Ok(())
    }

    fn timed_step(&mut self, idx: &[u32]) -> Result<[Duration; 3], TrainError> {
        let (xs, ys) = self.batch(idx);
        let a = Instant::now();
        let loss = self.net.forward(&xs).cross_entropy_for_logits(&ys);
        let b = Instant::now();
        self.opt.zero_grad();
        loss.backward();
        let c = Instant::now();
        self.opt.step();
        let d = Instant::now();
        Ok([b - a, c - b, d - c])
    }

    fn synchronize(&self) -> Result<(), TrainError> {
        Ok(())
    }
}
