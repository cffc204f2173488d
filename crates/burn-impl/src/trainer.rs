//! A burn training run: the model, burn's Adam (or in the tuned profile the captured step of
//! `captured.rs`), the epoch's steps, evaluation and what the run reports about its backend.

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::harness::{BackendInfo, DeviceKind, Profile, RunSpec, Totals, Trainer, Tuning};
use common::mnist::{Mnist, SplitKind};
use common::weights::Weights;
use common::TrainError;

use crate::captured::{Captured, DeviceAdam, StepState};
use crate::device::{compiled_cpu, correct, pick_device, DeviceSplit};
use crate::model::Net;
use crate::tuned::{graph_tuning, tune};
use crate::weights::{export, net_with};
use common::framework::Framework;

use crate::{lost, read_error, scalar, BURN, FRAMEWORK};

/// A burn training run.
pub struct BurnTrainer {
    /// Taken for each epoch: burn's optimiser takes the model by value and returns the updated one.
    /// None in the tuned profile, whose step holds the model.
    net: Option<Net>,
    /// The tuned profile's captured step, with its own model and device-side Adam.
    captured: Option<Captured>,
    opt: ModuleOptimizer,
    loss: CrossEntropyLoss,
    learning_rate: f64,
    /// The autodiff device the training runs on, and the plain device under it.
    train_device: Device,
    device: Device,
    cuda: bool,
    /// On the CPU with the compiled backend instead of Flex.
    compiled: bool,
    batch_size: usize,
    train: DeviceSplit,
    test: DeviceSplit,
    /// The tuned profile's settings, as applied.
    tuning: Vec<Tuning>,
}

/// The recipe's Adam: betas 0.9/0.999 and eps 1e-8 (burn's default eps is 1e-5).
pub(crate) fn adam() -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .init()
}

impl BurnTrainer {
    /// Builds the model on the device that `spec` asks for, imports `init`, uploads both splits.
    pub fn new(spec: &RunSpec, data: &Mnist, init: &Weights) -> Result<Self, TrainError> {
        // With the `rayon` feature, Flex's kernels run on rayon's global pool, which
        // `spec.threads` sizes through RAYON_NUM_THREADS: the `lenet` binary sets it when it
        // starts, before any thread exists.
        let (device, cuda) = pick_device(spec.device)?;
        let tuning = match spec.profile {
            Profile::Idiomatic => Vec::new(),
            Profile::Tuned => tune(cuda),
        };
        // The tuned profile on the CPU: the compiled backend where this build has it.
        let compiled = !cuda && spec.profile == Profile::Tuned && compiled_cpu::device().is_some();
        let device = match compiled_cpu::device() {
            Some(cpu) if compiled => cpu,
            _ => device,
        };
        let train_device = device.clone().autodiff();
        let net = net_with(spec.model, init, &train_device)?;
        let opt = adam();
        let train = DeviceSplit::upload(&data.train, &train_device);
        let loss = CrossEntropyLossConfig::new().init(&train_device);
        let (net, captured) = match spec.profile {
            Profile::Idiomatic => (Some(net), None),
            Profile::Tuned => {
                let state = StepState::new(
                    net,
                    DeviceAdam::new(spec.learning_rate, &device),
                    loss.clone(),
                    train.images.clone(),
                    train.labels.clone(),
                    spec.batch_size,
                    &device,
                );
                // The self-check holds the first replay to burn's tolerance against tch.
                let tolerance = BURN
                    .description()
                    .parity
                    .step_tolerance(spec.model, 1)
                    .unwrap_or(1e-3);
                let captured = Captured::new(state, device.clone(), cuda, tolerance);
                (None, Some(captured))
            }
        };
        Ok(Self {
            net,
            captured,
            opt,
            loss,
            learning_rate: spec.learning_rate,
            train,
            test: DeviceSplit::upload(&data.test, &device),
            train_device,
            device,
            cuda,
            compiled,
            batch_size: spec.batch_size,
            tuning,
        })
    }

    fn epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        if let Some(captured) = &mut self.captured {
            return captured.epoch(order, progress);
        }
        let n = order.len();
        let order: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let order = Tensor::<1, Int>::from_data(TensorData::new(order, [n]), &self.train_device);
        let mut loss_sum = Tensor::<1>::zeros([1], &self.device);
        let mut hits = Tensor::<1>::zeros([1], &self.device);
        // Each step's loss stays on the device; read back only if the epoch's sum is not finite.
        let mut losses = Vec::with_capacity(n.div_ceil(self.batch_size));
        let mut net = self.net.take().ok_or_else(lost)?;
        let mut start = 0;
        let mut step = 0;
        while start < n {
            let len = self.batch_size.min(n - start);
            let idx = order.clone().narrow(0, start, len);
            let xs = self.train.images.clone().select(0, idx.clone()); // [batch, 1, 28, 28]
            let ys = self.train.labels.clone().select(0, idx); // [batch]
            let logits = net.forward(xs); // [batch, 10]
            let loss = self.loss.forward(logits.clone(), ys.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = self.opt.step(self.learning_rate, net, grads);
            let loss = loss.inner();
            losses.push(loss.clone());
            loss_sum = loss_sum + loss.mul_scalar(len as f64);
            hits = hits + correct(logits.inner(), ys.inner());
            start += len;
            step += 1;
            progress(step);
        }
        self.net = Some(net);
        let loss_sum = f64::from(scalar(loss_sum, "reading the epoch's loss")?);
        let first_nonfinite = if loss_sum.is_finite() {
            None
        } else {
            let what = "reading the epoch's step losses";
            let all = Tensor::cat(losses, 0)
                .try_into_data()
                .map_err(|e| read_error(what, e))?
                .try_to_vec::<f32>()
                .map_err(|e| read_error(what, e))?;
            common::harness::first_nonfinite(&all)
        };
        Ok(Totals {
            loss_sum,
            correct: scalar(hits, "reading the epoch's correct count")? as u64,
            examples: n as u64,
            first_nonfinite,
        })
    }

    /// The model without autodiff, wherever the profile keeps it.
    fn valid_net(&self) -> Result<Net, TrainError> {
        match &self.captured {
            Some(captured) => captured.with_state(|s| s.net().map(Module::valid)),
            None => self.net.as_ref().map(Module::valid).ok_or_else(lost),
        }
    }

    fn eval(&self, split: SplitKind) -> Result<Totals, TrainError> {
        let net = self.valid_net()?;
        let (images, labels) = match split {
            SplitKind::Train => (
                self.train.images.clone().inner(),
                self.train.labels.clone().inner(),
            ),
            SplitKind::Test => (self.test.images.clone(), self.test.labels.clone()),
        };
        let loss = CrossEntropyLossConfig::new().init(&self.device);
        let n = labels.dims()[0];
        let batch = common::harness::EVAL_BATCH_SIZE;
        let mut loss_sum = Tensor::<1>::zeros([1], &self.device);
        let mut hits = Tensor::<1>::zeros([1], &self.device);
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let xs = images.clone().narrow(0, start, len);
            let ys = labels.clone().narrow(0, start, len);
            let logits = net.forward(xs);
            loss_sum = loss_sum
                + loss
                    .forward(logits.clone(), ys.clone())
                    .mul_scalar(len as f64);
            hits = hits + correct(logits, ys);
            start += len;
        }
        Ok(Totals {
            loss_sum: f64::from(scalar(loss_sum, "reading the evaluation loss")?),
            correct: scalar(hits, "reading the evaluation's correct count")? as u64,
            examples: n as u64,
            first_nonfinite: None,
        })
    }
}

impl Trainer for BurnTrainer {
    fn train_epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        self.epoch(order, progress)
    }

    fn evaluate(&mut self, split: SplitKind) -> Result<Totals, TrainError> {
        self.eval(split)
    }

    fn weights(&self) -> Result<Weights, TrainError> {
        export(&self.valid_net()?)
    }

    fn synchronize(&self) -> Result<(), TrainError> {
        self.device
            .sync()
            .map_err(|e| read_error("waiting for the device", e))
    }

    fn backend(&self) -> BackendInfo {
        let mut features = Vec::new();
        for (on, name) in [
            (cfg!(feature = "simd"), "simd"),
            (cfg!(feature = "rayon"), "rayon"),
            (cfg!(feature = "cuda"), "cuda"),
            (cfg!(feature = "cpu"), "cpu"),
        ] {
            if on {
                features.push(name.to_string());
            }
        }
        let (device, device_name, threads) = if self.cuda {
            (DeviceKind::Cuda, "cuda:0".to_string(), 1)
        } else if self.compiled {
            // cubecl's CPU runtime runs a kernel on as many threads as the process may use.
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            (DeviceKind::Cpu, "cpu (cubecl CPU)".to_string(), threads)
        } else {
            let threads = if cfg!(feature = "rayon") {
                rayon::current_num_threads()
            } else {
                1
            };
            (DeviceKind::Cpu, "cpu (Flex)".to_string(), threads)
        };
        BackendInfo {
            framework: FRAMEWORK.into(),
            framework_version: crate::framework_version(),
            device,
            device_name,
            threads,
            features,
            notes: vec![
                if self.captured.is_some() {
                    "optimiser: burn-optim's Adam arithmetic with the step count on the device \
                     (epsilon 1e-8)"
                        .into()
                } else {
                    "optimiser: burn Adam with epsilon 1e-8 (burn's default is 1e-5)".into()
                },
                if self.cuda {
                    "backend: burn CUDA (cubecl)".into()
                } else if self.compiled {
                    "backend: burn's compiled CPU backend (cubecl CPU, LLVM)".into()
                } else {
                    "backend: burn Flex (CPU)".into()
                },
            ],
            tuning: {
                let mut tuning = self.tuning.clone();
                if let Some(captured) = &self.captured {
                    tuning.push(graph_tuning(self.cuda, captured.replay(), captured.check()));
                }
                tuning
            },
        }
    }
}
