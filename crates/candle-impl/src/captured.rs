//! candle's tuned training step: the whole step of a full batch (gather, forward, loss, backward, a
//! device-side Adam and the epoch's sums), on CUDA recorded once as a CUDA graph through cudarc's
//! stream capture and replayed for every later full batch; a shorter last batch, and every step on
//! the CPU, runs the same step eagerly.
//!
//! candle has no capture API of its own; what the recording needs is in its CUDA device and in
//! cudarc under it:
//! - the step runs on a stream of its own (`Device::new_cuda_with_stream`): the legacy default
//!   stream cannot be captured;
//! - cudarc's per-buffer event tracking is off (`disable_event_tracking`, before any tensor is
//!   made): its events would tie the capture to work outside it;
//! - candle uploads a strided kernel's shapes from the host at each launch; with candle's host to
//!   device cache on (`enable_cuda_graph_htod_cache`) those uploads are kept from the warm-up steps
//!   and the recorded kernels read the kept copies;
//! - kernels are loaded in the warm-up steps: loading a module while capturing is not allowed;
//! - the step's temporaries are allocated with `cuMemAllocAsync`, which the graph records; it is
//!   instantiated to free them at each launch, as PyTorch's graphs are.
//!
//! A replay re-runs the recorded kernels against the buffers they touched, with the scalars they
//! were launched with: everything that changes from step to step (the batch's positions in the
//! epoch's order, Adam's step count and bias corrections, the step's slot for its loss) is a
//! device tensor that the step advances, and all state is written back into its own buffer with
//! `Var::set` (a device copy). candle-nn's AdamW computes its bias corrections on the host from a
//! host step count; [`DeviceAdam`] is its arithmetic with those on the device.

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use candle_nn::{Module, ParamsAdamW};

use crate::model::Net;
use common::harness::{first_nonfinite, Totals};

/// candle-nn's AdamW (here with weight decay 0: Adam) with its step count on the device: per
/// parameter `θ - lr·m̂/(√v̂ + ε)` with `m̂ = m/(1-β₁ᵗ)` and `v̂ = v/(1-β₂ᵗ)`, as candle-nn computes
/// it, but with `1/(1-βᵗ)` computed by tensor operations from a step count that is a device
/// variable. Moments and parameters are written back into their own buffers.
pub struct DeviceAdam {
    params: ParamsAdamW,
    /// Steps taken, an f64 scalar on the device: the corrections are computed in f64, as
    /// candle-nn computes them on the host (in f32, cancellation would put `1-β₂ᵗ` off by up to
    /// 6e-5 of itself in the first steps).
    time: Var,
    /// Each parameter with its first and second moments.
    vars: Vec<(Var, Var, Var)>,
}

impl DeviceAdam {
    /// Adam over `vars` with `params`; weight decay must be 0 (the recipe's plain Adam).
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> candle_core::Result<Self> {
        if params.weight_decay != 0.0 {
            candle_core::bail!("the device-side Adam has no weight decay");
        }
        let device = vars
            .first()
            .map_or(Device::Cpu, |v| v.as_tensor().device().clone());
        let vars = vars
            .into_iter()
            .filter(|var| var.dtype().is_float())
            .map(|var| {
                let zeros = || Var::zeros(var.shape(), var.dtype(), var.device());
                let (m, v) = (zeros()?, zeros()?);
                Ok((var, m, v))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            params,
            time: Var::zeros((), DType::F64, &device)?,
            vars,
        })
    }

    /// One step with `grads`, every parameter and moment written in place.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.time.set(&(self.time.as_tensor() + 1.0)?)?;
        let ParamsAdamW {
            lr,
            beta1,
            beta2,
            eps,
            ..
        } = self.params;
        // 1/(1-βᵗ) in f64, with βᵗ = exp(t·ln β) from the device's step count, then in f32 as
        // candle's kernels take the host's f64 scale.
        let scale = |beta: f64| -> candle_core::Result<Tensor> {
            (self.time.as_tensor() * beta.ln())?
                .exp()?
                .affine(-1.0, 1.0)?
                .recip()?
                .to_dtype(DType::F32)
        };
        let (scale_m, scale_v) = (scale(beta1)?, scale(beta2)?);
        for (theta, m, v) in &self.vars {
            let Some(g) = grads.get(theta) else {
                continue;
            };
            let next_m = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = next_m.broadcast_mul(&scale_m)?;
            let v_hat = next_v.broadcast_mul(&scale_v)?;
            let adjusted = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let next_theta = (theta.as_tensor() - (adjusted * lr)?)?;
            m.set(&next_m)?;
            v.set(&next_v)?;
            theta.set(&next_theta)?;
        }
        Ok(())
    }

    /// The steps taken, read back from the device.
    pub fn steps(&self) -> candle_core::Result<f32> {
        Ok(self.time.as_tensor().to_scalar::<f64>()? as f32)
    }
}

/// Everything a step reads and writes, each in a buffer that stays put from one step to the next.
pub struct StepState {
    net: Net,
    adam: DeviceAdam,
    images: Tensor,
    labels: Tensor,
    /// The epoch's order (u32), written in place at the start of each epoch.
    order: Option<Var>,
    /// The next full batch's positions in `order` (u32), advanced by a batch each step.
    positions: Var,
    /// A batch size in each position, to advance them by.
    stride: Tensor,
    /// The epoch's loss sum and correct count (f32 scalars), and each step's loss at its slot.
    loss_sum: Var,
    hits: Var,
    step_losses: Option<Var>,
    /// The current step's slot in `step_losses`, a u32 `[1]`, and a 1 to advance it by.
    slot: Var,
    one: Tensor,
    batch_size: usize,
}

impl StepState {
    pub fn new(
        net: Net,
        adam: DeviceAdam,
        images: Tensor,
        labels: Tensor,
        batch_size: usize,
    ) -> candle_core::Result<Self> {
        let device = images.device().clone();
        Ok(Self {
            net,
            adam,
            images,
            labels,
            order: None,
            positions: Var::from_tensor(&Tensor::arange(0u32, batch_size as u32, &device)?)?,
            stride: Tensor::full(batch_size as u32, batch_size, &device)?,
            loss_sum: Var::zeros((), DType::F32, &device)?,
            hits: Var::zeros((), DType::F32, &device)?,
            step_losses: None,
            slot: Var::zeros(1, DType::U32, &device)?,
            one: Tensor::ones(1, DType::U32, &device)?,
            batch_size,
        })
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Puts a new epoch's order in place and sets the positions, slot and sums back to the start.
    /// Returns whether the order kept its buffer (a graph recorded before may replay on it).
    fn start_epoch(&mut self, order: &[u32]) -> candle_core::Result<bool> {
        let device = self.images.device().clone();
        let n = order.len();
        let values = Tensor::from_slice(order, n, &device)?;
        let steps = n.div_ceil(self.batch_size);
        let zeros = Tensor::zeros(steps, DType::F32, &device)?;
        let kept = match (&self.order, &self.step_losses) {
            (Some(o), Some(l)) if o.dims1()? == n && l.dims1()? == steps => {
                o.set(&values)?;
                l.set(&zeros)?;
                true
            }
            _ => {
                self.order = Some(Var::from_tensor(&values)?);
                self.step_losses = Some(Var::from_tensor(&zeros)?);
                false
            }
        };
        self.positions
            .set(&Tensor::arange(0u32, self.batch_size as u32, &device)?)?;
        self.slot.set(&Tensor::zeros(1, DType::U32, &device)?)?;
        self.loss_sum
            .set(&Tensor::zeros((), DType::F32, &device)?)?;
        self.hits.set(&Tensor::zeros((), DType::F32, &device)?)?;
        Ok(kept)
    }

    /// One step over the next `len` positions (a full batch, or the shorter last one).
    fn step(&mut self, len: usize) -> candle_core::Result<()> {
        let (Some(order), Some(step_losses)) = (&self.order, &self.step_losses) else {
            candle_core::bail!("a step before its epoch's order");
        };
        let full = len == self.batch_size;
        let positions = if full {
            self.positions.as_tensor().clone()
        } else {
            self.positions.as_tensor().narrow(0, 0, len)?
        };
        let idx = order.as_tensor().index_select(&positions, 0)?;
        let xs = self.images.index_select(&idx, 0)?; // [len, 1, 28, 28]
        let ys = self.labels.index_select(&idx, 0)?; // [len]
        let logits = self.net.forward(&xs)?; // [len, 10]
        let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
        let grads = loss.backward()?;
        self.adam.step(&grads)?;
        let loss = loss.detach();
        self.loss_sum
            .set(&(self.loss_sum.as_tensor() + (&loss * len as f64)?)?)?;
        self.hits
            .set(&(self.hits.as_tensor() + crate::correct(&logits.detach(), &ys)?)?)?;
        step_losses.set(&step_losses.as_tensor().index_add(
            self.slot.as_tensor(),
            &loss.reshape(1)?,
            0,
        )?)?;
        self.slot.set(&(self.slot.as_tensor() + &self.one)?)?;
        if full {
            self.positions
                .set(&(self.positions.as_tensor() + &self.stride)?)?;
        }
        Ok(())
    }

    /// The epoch's totals, read back once, and a check that every step advanced the device's
    /// step count: a replay that ran on stale state would not have.
    fn totals(&self, n: usize, steps_before: f32, steps: usize) -> candle_core::Result<Totals> {
        let loss_sum = f64::from(self.loss_sum.as_tensor().to_scalar::<f32>()?);
        let after = self.adam.steps()?;
        if after != steps_before + steps as f32 {
            candle_core::bail!(
                "the captured step did not advance its state: Adam's step count went from \
                 {steps_before} to {after} over {steps} steps"
            );
        }
        let first_nonfinite = match &self.step_losses {
            Some(losses) if !loss_sum.is_finite() => {
                let all = losses.as_tensor().to_vec1::<f32>()?;
                first_nonfinite(&all[..steps.min(all.len())])
            }
            _ => None,
        };
        Ok(Totals {
            loss_sum,
            correct: self.hits.as_tensor().to_scalar::<f32>()? as u64,
            examples: n as u64,
            first_nonfinite,
        })
    }
}

/// How the full steps ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Not recorded yet (CUDA, and no epoch has had enough full batches yet).
    Pending,
    /// Recorded once and replayed.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Graph,
    /// Each step run eagerly: on the CPU, or on CUDA after a recording that failed (why).
    Eager(String),
}

/// Full steps run eagerly before the recording: they load every kernel, run cuBLAS's first
/// calls and fill candle's cache of uploaded shapes, so that the recorded step needs none of it.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub const WARMUP_STEPS: usize = 3;

/// The tuned step of a run: its state, and its graph once recorded.
pub struct Captured {
    state: StepState,
    #[cfg(feature = "cuda")]
    graph: Option<cuda::StepGraph>,
    /// Warm-up steps run so far.
    #[cfg(feature = "cuda")]
    warmed: usize,
    replay: Replay,
}

impl Captured {
    pub fn new(state: StepState) -> Self {
        let replay = if state.images.device().is_cuda() {
            Replay::Pending
        } else {
            Replay::Eager("the run is on the CPU: no CUDA graphs there".into())
        };
        Self {
            state,
            #[cfg(feature = "cuda")]
            graph: None,
            #[cfg(feature = "cuda")]
            warmed: 0,
            replay,
        }
    }

    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    pub fn state(&self) -> &StepState {
        &self.state
    }

    /// One epoch over `order`: full batches through the graph (recording it on the first epoch
    /// that has enough of them), the shorter last batch eagerly.
    pub fn epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> candle_core::Result<Totals> {
        let n = order.len();
        let batch = self.state.batch_size;
        let kept = self.state.start_epoch(order)?;
        #[cfg(feature = "cuda")]
        if !kept && self.graph.take().is_some() {
            // The order's buffer was replaced: the graph recorded on the old one is stale.
            self.replay = Replay::Pending;
            self.warmed = 0;
        }
        #[cfg(not(feature = "cuda"))]
        let _ = kept;
        let steps_before = self.state.adam.steps()?;
        let full = n / batch;
        for done in 1..=full {
            self.full_step()?;
            progress(done);
        }
        let steps = n.div_ceil(batch);
        if n % batch != 0 {
            self.state.step(n % batch)?;
            progress(steps);
        }
        self.state.totals(n, steps_before, steps)
    }

    /// A full step: replayed, recorded, or eager.
    #[cfg(feature = "cuda")]
    fn full_step(&mut self) -> candle_core::Result<()> {
        let batch = self.state.batch_size;
        if let Some(graph) = &self.graph {
            return graph.launch();
        }
        if self.replay != Replay::Pending {
            return self.state.step(batch);
        }
        // Warm-up steps with the shape cache on, then the recording; the recording launches
        // nothing, so its graph is launched once for that step.
        let device = self.state.images.device().as_cuda_device()?.clone();
        let _cache = device.enable_cuda_graph_htod_cache();
        if self.warmed < WARMUP_STEPS {
            self.warmed += 1;
            return self.state.step(batch);
        }
        match cuda::StepGraph::record(&device, || self.state.step(batch)) {
            Ok(graph) => {
                graph.launch()?;
                self.graph = Some(graph);
                self.replay = Replay::Graph;
                Ok(())
            }
            Err(why) => {
                self.replay = Replay::Eager(why);
                self.state.step(batch)
            }
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn full_step(&mut self) -> candle_core::Result<()> {
        self.state.step(self.state.batch_size)
    }
}

/// cudarc's stream capture of a step on candle's CUDA device.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::cuda_backend::cudarc::driver::{sys, CudaGraph};
    use candle_core::CudaDevice;

    /// A step recorded on the device's stream.
    pub struct StepGraph(CudaGraph);

    impl StepGraph {
        /// Records what `step` launches on `device`'s stream, and instantiates it to free the
        /// step's temporaries at each launch. The step's error, or the driver's, is the reason
        /// returned when it cannot be recorded; the stream is out of capture either way.
        pub fn record(
            device: &CudaDevice,
            step: impl FnOnce() -> candle_core::Result<()>,
        ) -> Result<Self, String> {
            let stream = device.cuda_stream();
            stream
                .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                .map_err(|e| format!("starting the capture: {e}"))?;
            let ran = step();
            let flags =
                sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH;
            let graph = stream.end_capture(flags);
            ran.map_err(|e| format!("the step under capture: {e}"))?;
            match graph {
                Ok(Some(graph)) => Ok(Self(graph)),
                Ok(None) => Err("the capture recorded nothing".into()),
                Err(e) => Err(format!("ending the capture: {e}")),
            }
        }

        pub fn launch(&self) -> candle_core::Result<()> {
            self.0
                .launch()
                .map_err(|e| candle_core::Error::Msg(format!("replaying the step: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::{AdamW, Optimizer};

    /// Fixed gradients, the same for both optimisers: a sine pattern per step at four magnitudes.
    fn gradient(step: usize, n: usize) -> Tensor {
        let values: Vec<f32> = (0..n)
            .map(|i| ((step * 31 + i * 7) as f32 * 0.37).sin() * 10f32.powi(-((i % 4) as i32)))
            .collect();
        Tensor::from_vec(values, n, &Device::Cpu).unwrap()
    }

    /// A tuned step over synthetic data: LeNet2 with the shared initial weights, `n` images of
    /// ten classes, batches of 32, on the CPU.
    fn tuned(n: usize) -> (Captured, candle_nn::VarMap) {
        let model = common::spec::ModelKind::LeNet2;
        let weights = common::weights::Weights::init(&model.spec(), 3);
        let (varmap, net) =
            crate::build(model, &weights, &Device::Cpu, crate::Pool::MaxPool2d).unwrap();
        let side = common::mnist::IMAGE_SIDE;
        let pixels: Vec<f32> = (0..n * side * side)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let labels: Vec<u32> = (0..n).map(|i| (i * 7 % 10) as u32).collect();
        let images = Tensor::from_vec(pixels, (n, 1, side, side), &Device::Cpu).unwrap();
        let labels = Tensor::from_vec(labels, n, &Device::Cpu).unwrap();
        let adam = DeviceAdam::new(varmap.all_vars(), crate::adam_params(1e-3)).unwrap();
        let state = StepState::new(net, adam, images, labels, 32).unwrap();
        (Captured::new(state), varmap)
    }

    /// Every step of an epoch, full or short, advances the device's step count by one and
    /// changes every parameter tensor: a step on stale scalars or stale buffers would leave one
    /// of them where it was. The epoch's sums count every example.
    #[test]
    fn every_step_advances_the_step_count_and_the_parameters() {
        let n = 32 * 10 + 5;
        let (mut captured, varmap) = tuned(n);
        let order: Vec<u32> = (0..n as u32).rev().collect();
        let mut last = crate::export(&varmap).unwrap();
        for epoch in 0..2 {
            let mut steps_seen = 0;
            let mut changed = Vec::new();
            let totals = captured
                .epoch(&order, &mut |done| {
                    let now = crate::export(&varmap).unwrap();
                    changed.push(now.tensors.iter().all(|(k, t)| t != &last.tensors[k]));
                    last = now;
                    steps_seen = done;
                })
                .unwrap();
            assert_eq!(steps_seen, 11);
            assert!(changed.iter().all(|&c| c), "epoch {epoch}: {changed:?}");
            assert_eq!(
                captured.state().adam.steps().unwrap(),
                11.0 * (epoch + 1) as f32
            );
            assert_eq!(totals.examples, n as u64);
            assert!(totals.loss_sum.is_finite() && totals.loss_sum > 0.0);
        }
        assert!(matches!(captured.replay(), Replay::Eager(_)));
    }

    /// DeviceAdam makes the updates candle-nn's AdamW (weight decay 0) makes, step for step over
    /// 200 steps of fixed gradients, within 1e-6 (on the CPU they agree to the bit); the step count
    /// is on the device.
    #[test]
    fn device_adam_follows_candles_adamw_on_fixed_gradients() {
        let n = 64;
        let params = ParamsAdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.1).cos()).collect();
        let start = Tensor::from_vec(start, n, &Device::Cpu).unwrap();
        let theirs = Var::from_tensor(&start).unwrap();
        let mine = Var::from_tensor(&start).unwrap();
        let mut candle_adam = AdamW::new(vec![theirs.clone()], params.clone()).unwrap();
        let mut ours = DeviceAdam::new(vec![mine.clone()], params).unwrap();
        for step in 0..200 {
            // The gradient of sum(x·g) is g: a backward pass per optimiser gives each its store.
            let g = gradient(step, n);
            let grads = |v: &Var| (v.as_tensor() * &g).unwrap().sum_all().unwrap().backward();
            candle_adam.step(&grads(&theirs).unwrap()).unwrap();
            ours.step(&grads(&mine).unwrap()).unwrap();
            let a = theirs.as_tensor().to_vec1::<f32>().unwrap();
            let b = mine.as_tensor().to_vec1::<f32>().unwrap();
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6,
                    "step {} element {i}: candle's AdamW {x}, device Adam {y}",
                    step + 1
                );
            }
        }
        assert_eq!(ours.steps().unwrap(), 200.0);
    }
}
