//! A candle training run: the model, candle-nn's AdamW as Adam (or in the tuned profile the
//! captured step of `captured.rs`), the epoch's steps, evaluation and what the run reports about
//! its backend.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, Optimizer, VarMap};
use common::harness::{BackendInfo, DeviceKind, Profile, RunSpec, Totals, Trainer, Tuning};
use common::mnist::{Mnist, SplitKind};
use common::weights::Weights;
use common::TrainError;

use crate::captured::{adam_params, Captured, DeviceAdam, StepState};
use crate::device::{correct, pick_device, DeviceSplit};
use crate::model::{Net, Pool};
use crate::tuned::{device_adam_tuning, graph_tuning, tune};
use crate::weights::{build, export, named_vars};
use crate::{backend_error, CANDLE_FIRSTMAX};

/// A candle training run.
pub struct CandleTrainer {
    pool: Pool,
    /// The tuned profile's settings, as applied.
    tuning: Vec<Tuning>,
    varmap: VarMap,
    /// The idiomatic profile's model and optimiser; the tuned profile's are in its step.
    plain: Option<(Net, candle_nn::AdamW)>,
    captured: Option<Captured>,
    device: Device,
    batch_size: usize,
    train: DeviceSplit,
    test: DeviceSplit,
}

/// The recipe's Adam over the variables of `varmap`: candle offers AdamW only, so weight decay 0
/// makes it Adam (betas 0.9/0.999, eps 1e-8).
pub(crate) fn adam(varmap: &VarMap, learning_rate: f64) -> Result<candle_nn::AdamW, TrainError> {
    candle_nn::AdamW::new(varmap.all_vars(), adam_params(learning_rate)).map_err(backend_error)
}

impl CandleTrainer {
    /// Builds the model on the device that `spec` asks for, imports `init`, uploads both splits.
    pub fn new(
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
        pool: Pool,
    ) -> Result<Self, TrainError> {
        // `spec.threads` reaches candle's CPU kernels through RAYON_NUM_THREADS, which the `lenet`
        // binary sets when it starts, before any thread exists.
        let tuned = spec.profile == Profile::Tuned;
        let device = pick_device(spec.device, tuned)?;
        #[cfg(feature = "cuda")]
        if let (true, Device::Cuda(cuda)) = (tuned, &device) {
            // SAFETY: every tensor of this run is made after this call and used on the device's
            // one stream, so there is no other stream to synchronise with.
            unsafe { cuda.disable_event_tracking() };
        }
        let mut tuning = match spec.profile {
            Profile::Idiomatic => Vec::new(),
            Profile::Tuned => tune(&device),
        };
        let (varmap, net) = build(spec.model, init, &device, pool)?;
        let upload = |s| DeviceSplit::upload(s, &device).map_err(backend_error);
        let train = upload(&data.train)?;
        let (plain, captured) = if tuned {
            tuning.push(device_adam_tuning());
            let adam = DeviceAdam::named(named_vars(&varmap)?, adam_params(spec.learning_rate))
                .map_err(backend_error)?;
            let state = StepState::new(
                net,
                adam,
                train.images.clone(),
                train.labels.clone(),
                spec.batch_size,
            )
            .map_err(backend_error)?;
            // The self-check holds the first replay to candle's tolerance against tch (1e-3).
            let tolerance = CANDLE_FIRSTMAX
                .description
                .parity
                .step_tolerance(spec.model, 1)
                .unwrap_or(1e-3);
            (None, Some(Captured::new(state, tolerance)))
        } else {
            (Some((net, adam(&varmap, spec.learning_rate)?)), None)
        };
        Ok(Self {
            pool,
            tuning,
            train,
            test: upload(&data.test)?,
            varmap,
            plain,
            captured,
            batch_size: spec.batch_size,
            device,
        })
    }

    fn epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> candle_core::Result<Totals> {
        let (net, opt) = match (&mut self.captured, &mut self.plain) {
            (Some(captured), _) => return captured.epoch(order, progress),
            (None, Some((net, opt))) => (&*net, opt),
            (None, None) => candle_core::bail!("the trainer has no model"),
        };
        let n = order.len();
        let order = Tensor::from_slice(order, n, &self.device)?;
        let mut loss_sum = Tensor::zeros((), DType::F32, &self.device)?;
        let mut hits = Tensor::zeros((), DType::F32, &self.device)?;
        // Each step's loss stays on the device; read back only if the epoch's sum is not finite.
        let mut losses = Vec::with_capacity(n.div_ceil(self.batch_size));
        let mut start = 0;
        let mut step = 0;
        while start < n {
            let len = self.batch_size.min(n - start);
            let idx = order.narrow(0, start, len)?;
            let xs = self.train.images.index_select(&idx, 0)?; // [batch, 1, 28, 28]
            let ys = self.train.labels.index_select(&idx, 0)?; // [batch]
            let logits = net.forward(&xs)?; // [batch, 10]
            let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
            opt.backward_step(&loss)?;
            loss_sum = (loss_sum + (loss.detach() * len as f64)?)?;
            hits = (hits + correct(&logits.detach(), &ys)?)?;
            losses.push(loss.detach());
            start += len;
            step += 1;
            progress(step);
        }
        let loss_sum = loss_sum.to_scalar::<f32>()? as f64;
        let first_nonfinite = if loss_sum.is_finite() {
            None
        } else {
            common::harness::first_nonfinite(&Tensor::stack(&losses, 0)?.to_vec1::<f32>()?)
        };
        Ok(Totals {
            loss_sum,
            correct: hits.to_scalar::<f32>()? as u64,
            examples: n as u64,
            first_nonfinite,
        })
    }

    /// The model, wherever the profile keeps it.
    fn net(&self) -> candle_core::Result<&Net> {
        match (&self.captured, &self.plain) {
            (Some(captured), _) => Ok(captured.state().net()),
            (None, Some((net, _))) => Ok(net),
            (None, None) => candle_core::bail!("the trainer has no model"),
        }
    }

    fn eval(&self, split: SplitKind) -> candle_core::Result<Totals> {
        let net = self.net()?;
        let data = match split {
            SplitKind::Train => &self.train,
            SplitKind::Test => &self.test,
        };
        let n = data.len();
        let batch = common::harness::EVAL_BATCH_SIZE;
        let mut loss_sum = Tensor::zeros((), DType::F32, &self.device)?;
        let mut hits = Tensor::zeros((), DType::F32, &self.device)?;
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let xs = data.images.narrow(0, start, len)?;
            let ys = data.labels.narrow(0, start, len)?;
            let logits = net.forward(&xs)?.detach();
            let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
            loss_sum = (loss_sum + (loss * len as f64)?)?;
            hits = (hits + correct(&logits, &ys)?)?;
            start += len;
        }
        Ok(Totals {
            loss_sum: loss_sum.to_scalar::<f32>()? as f64,
            correct: hits.to_scalar::<f32>()? as u64,
            examples: n as u64,
            first_nonfinite: None,
        })
    }
}

impl Trainer for CandleTrainer {
    fn train_epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        self.epoch(order, progress).map_err(backend_error)
    }

    fn evaluate(&mut self, split: SplitKind) -> Result<Totals, TrainError> {
        self.eval(split).map_err(backend_error)
    }

    fn weights(&self) -> Result<Weights, TrainError> {
        export(&self.varmap)
    }

    fn synchronize(&self) -> Result<(), TrainError> {
        self.device.synchronize().map_err(backend_error)
    }

    fn backend(&self) -> BackendInfo {
        let (device, device_name) = match &self.device {
            Device::Cuda(_) => (DeviceKind::Cuda, "cuda:0".to_string()),
            _ => (DeviceKind::Cpu, "cpu".to_string()),
        };
        let mut features = Vec::new();
        if cfg!(feature = "cuda") {
            features.push("cuda".to_string());
        }
        if cfg!(feature = "cudnn") {
            features.push("cudnn".to_string());
        }
        BackendInfo {
            framework: self.pool.framework().into(),
            framework_version: crate::framework_version(),
            device,
            device_name,
            threads: candle_core::utils::get_num_threads(),
            features,
            notes: vec![
                if self.captured.is_some() {
                    "optimiser: candle-nn's AdamW arithmetic (weight_decay 0, eps 1e-8) with the \
                     step count on the device"
                        .into()
                } else {
                    "optimiser: candle-nn AdamW with weight_decay 0 (plain Adam), eps 1e-8".into()
                },
                match self.pool {
                    Pool::MaxPool2d => "max-pool: candle's max_pool2d".into(),
                    Pool::FirstMax => {
                        "max-pool: argmax + gather (the gradient goes to each window's first maximum)"
                            .into()
                    }
                },
                format!(
                    "cpu: avx {}, f16c {}",
                    candle_core::utils::with_avx(),
                    candle_core::utils::with_f16c()
                ),
            ],
            tuning: {
                let mut tuning = self.tuning.clone();
                if let Some(captured) = &self.captured {
                    tuning.push(graph_tuning(captured.replay(), captured.check()));
                }
                tuning
            },
        }
    }
}
