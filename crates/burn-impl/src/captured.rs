//! burn's tuned training step: the whole step of a full batch (gather, forward, loss, backward, a
//! device-side Adam and the epoch's sums) recorded once by `burn::tensor::capture` on the plain
//! device under autodiff and replayed for every later full batch; a shorter last batch runs the
//! same step eagerly.
//!
//! A replay re-runs the recorded kernels against the buffers they touched when recorded, with the
//! scalars they were launched with. So nothing that changes from step to step may be a host value:
//! the batch's positions in the epoch's order, the step count and Adam's bias corrections, and the
//! slot of the step's loss all live in device tensors that the step itself advances. And every
//! piece of state is updated in place (cubecl writes an operation's result into its left operand's
//! buffer when that handle is the only one), so that each replay reads what the previous one
//! wrote. burn's own Adam (burn-optim's `adam.rs`) computes its bias corrections on the host from a
//! host step count: captured, it would train every replay with the corrections of the step it was
//! recorded at. [`DeviceAdam`] is the same arithmetic with the corrections read on the device:
//! the host computes an epoch's corrections before it starts, exactly as burn-optim does, and
//! writes them in place into a table that each step reads at its own slot.
//!
//! Where the device has no graphs (the CPU backends), `capture` re-runs the step at each replay,
//! so the same code trains, step for step, on the CPU: that is how it is tested.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Graph, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::model::Net;
use crate::{correct, lost, read_error, scalar};
use common::harness::{first_nonfinite, Totals};
use common::TrainError;

/// The recipe's Adam with its step count and bias corrections on the device: per parameter the
/// update burn-optim's Adam makes (`m·c / (√v + ε·√(1-β₂ᵗ))` with `c = √(1-β₂ᵗ)/(1-β₁ᵗ)`, times
/// the learning rate), with `c` and `ε·√(1-β₂ᵗ)` read from tables on the device at the step's slot
/// in the epoch. [`DeviceAdam::plan`] fills the tables before each epoch with the host's values of
/// exactly burn-optim's expressions (`powi` in f32), so that on the CPU each update is burn's to
/// the bit. Computing `βᵗ` on the device instead (`exp(t·ln β)` in f32) loses digits in `1-β₂ᵗ`
/// (about 1e-4 of it at the first step), enough for LeNet3's losses to part from the idiomatic
/// run's by 1.2e-4 at its tenth step on one CPU. The moments start at zero (burn's first step,
/// which starts them from the gradient, gives the same values) and, like the parameters, are
/// updated in place.
pub struct DeviceAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    learning_rate: f64,
    /// Steps taken, as an f32 `[1]` on the device (exact up to 2²⁴ steps).
    time: Tensor<1>,
    /// Steps whose corrections [`DeviceAdam::plan`] has written.
    planned: usize,
    /// The planned steps' corrections, one entry per step of the epoch (none before the first).
    table: Option<Corrections>,
    /// Each parameter's first and second moments, flattened.
    moments: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
}

/// Bias corrections, shared by every parameter: one entry per step (a table), or one step's (`[1]`).
#[derive(Clone)]
struct Corrections {
    /// `√(1-β₂ᵗ) / (1-β₁ᵗ)`.
    factor: Tensor<1>,
    /// `ε·√(1-β₂ᵗ)`.
    epsilon: Tensor<1>,
}

impl DeviceAdam {
    /// The recipe's Adam (betas 0.9/0.999, eps 1e-8) at `learning_rate`, its state on `device`.
    pub fn new(learning_rate: f64, device: &Device) -> Self {
        Self::with(0.9, 0.999, 1e-8, learning_rate, device)
    }

    fn with(beta_1: f32, beta_2: f32, epsilon: f32, learning_rate: f64, device: &Device) -> Self {
        Self {
            beta_1,
            beta_2,
            epsilon,
            learning_rate,
            time: Tensor::zeros([1], device),
            planned: 0,
            table: None,
            moments: HashMap::new(),
        }
    }

    /// Step `t`'s (from 1) corrections, as burn-optim's Adam computes them on the host.
    fn corrections_at(&self, t: usize) -> (f32, f32) {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(t)).sqrt();
        let factor = bias_correction2_sqrt / (1.0 - self.beta_1.powi(t));
        (factor, self.epsilon * bias_correction2_sqrt)
    }

    /// Writes the corrections of the next `steps` steps into the tables, at slots 0 to `steps-1`:
    /// in place where the tables have that length, so that a step recorded on them replays on the
    /// new values (returns true), else into new tables (false).
    fn plan(&mut self, steps: usize, device: &Device) -> bool {
        let (factor, epsilon): (Vec<f32>, Vec<f32>) = (self.planned + 1..=self.planned + steps)
            .map(|t| self.corrections_at(t))
            .unzip();
        self.planned += steps;
        let factor = Tensor::<1>::from_data(TensorData::new(factor, [steps]), device);
        let epsilon = Tensor::<1>::from_data(TensorData::new(epsilon, [steps]), device);
        match &mut self.table {
            Some(t) if t.factor.dims()[0] == steps => {
                t.factor.inplace(|f| f.slice_assign(0..steps, factor));
                t.epsilon.inplace(|e| e.slice_assign(0..steps, epsilon));
                true
            }
            _ => {
                self.table = Some(Corrections { factor, epsilon });
                false
            }
        }
    }

    /// The corrections at `slot` (a `[1]` index into the planned steps), read on the device.
    fn at(&self, slot: &Tensor<1, Int>) -> Option<Corrections> {
        let table = self.table.as_ref()?;
        Some(Corrections {
            factor: table.factor.clone().select(0, slot.clone()),
            epsilon: table.epsilon.clone().select(0, slot.clone()),
        })
    }

    /// The parameter `param` (flattened, on the plain device) after one step with `grad`.
    fn update(
        &mut self,
        id: ParamId,
        param: Tensor<1>,
        grad: Tensor<1>,
        c: &Corrections,
    ) -> Tensor<1> {
        let (beta_1, beta_2) = (self.beta_1, self.beta_2);
        let (m, v) = self
            .moments
            .entry(id)
            .or_insert_with(|| (grad.zeros_like(), grad.zeros_like()));
        m.inplace(|m| {
            m.mul_scalar(beta_1)
                .add(grad.clone().mul_scalar(1.0 - beta_1))
        });
        v.inplace(|v| {
            v.mul_scalar(beta_2)
                .add(grad.square().mul_scalar(1.0 - beta_2))
        });
        let step = m
            .clone()
            .mul(c.factor.clone())
            .div(v.clone().sqrt().add(c.epsilon.clone()));
        param.sub(step.mul_scalar(self.learning_rate))
    }

    /// `net` after one step with the gradients of `grads` and the step's `corrections` (from
    /// [`DeviceAdam::at`]): each parameter updated in place, the step count advanced.
    fn step(&mut self, net: Net, grads: GradientsParams, corrections: Corrections) -> Net {
        self.time.inplace(|t| t.add_scalar(1.0));
        net.map(&mut Mapper {
            adam: self,
            grads,
            corrections,
        })
    }

    /// The steps taken, read back from the device.
    pub fn steps(&self) -> Result<f32, TrainError> {
        scalar(self.time.clone(), "reading Adam's step count")
    }
}

/// Applies [`DeviceAdam`] to each parameter of a module.
struct Mapper<'a> {
    adam: &'a mut DeviceAdam,
    grads: GradientsParams,
    corrections: Corrections,
}

impl ModuleMapper for Mapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let inner = tensor.inner();
        let shape = inner.shape();
        let n = shape.num_elements();
        let updated =
            self.adam
                .update(id, inner.reshape([n]), grad.reshape([n]), &self.corrections);
        let tensor = Tensor::from_inner(updated.reshape(shape)).require_grad();
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Everything a step reads and writes, each in a buffer that stays put from one step to the next.
pub struct StepState {
    net: Option<Net>,
    adam: DeviceAdam,
    loss: CrossEntropyLoss,
    /// Both training tensors on the autodiff device.
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    /// The epoch's order, written in place at the start of each epoch (none before the first).
    order: Option<Tensor<1, Int>>,
    /// The next full batch's positions in `order`, advanced by a batch each step.
    positions: Tensor<1, Int>,
    /// The epoch's loss sum and correct count, and each step's loss at its slot.
    loss_sum: Tensor<1>,
    hits: Tensor<1>,
    step_losses: Option<Tensor<1>>,
    /// The current step's slot in `step_losses`, as a `[1]` index.
    slot: Tensor<1, Int>,
    batch_size: usize,
}

impl StepState {
    pub fn new(
        net: Net,
        adam: DeviceAdam,
        loss: CrossEntropyLoss,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        batch_size: usize,
        device: &Device,
    ) -> Self {
        Self {
            net: Some(net),
            adam,
            loss,
            images,
            labels,
            order: None,
            positions: Tensor::arange(0..batch_size as i64, device),
            loss_sum: Tensor::zeros([1], device),
            hits: Tensor::zeros([1], device),
            step_losses: None,
            slot: Tensor::zeros([1], device),
            batch_size,
        }
    }

    pub fn net(&self) -> Result<&Net, TrainError> {
        self.net.as_ref().ok_or_else(lost)
    }

    /// Puts a new epoch's order and Adam's corrections for its steps in place and sets the
    /// positions, slot and sums back to the start. Returns whether every buffer was kept (a graph
    /// recorded before may replay on them).
    fn start_epoch(&mut self, order: &[u32], device: &Device) -> bool {
        let n = order.len();
        let values: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let values = Tensor::<1, Int>::from_data(TensorData::new(values, [n]), device);
        let steps = n.div_ceil(self.batch_size);
        let kept = match (&mut self.order, &mut self.step_losses) {
            (Some(o), Some(l)) if o.dims()[0] == n && l.dims()[0] == steps => {
                o.inplace(|o| o.slice_assign(0..n, values));
                l.inplace(|l| l.slice_assign(0..steps, Tensor::zeros([steps], device)));
                true
            }
            _ => {
                self.order = Some(values);
                self.step_losses = Some(Tensor::zeros([steps], device));
                false
            }
        };
        let kept = self.adam.plan(steps, device) && kept;
        let batch = self.batch_size;
        let start = Tensor::<1, Int>::arange(0..batch as i64, device);
        self.positions.inplace(|p| p.slice_assign(0..batch, start));
        self.slot
            .inplace(|s| s.slice_assign(0..1, Tensor::zeros([1], device)));
        self.loss_sum
            .inplace(|s| s.slice_assign(0..1, Tensor::zeros([1], device)));
        self.hits
            .inplace(|s| s.slice_assign(0..1, Tensor::zeros([1], device)));
        kept
    }

    /// One step over the next `len` positions (a full batch, or the shorter last one).
    fn step(&mut self, len: usize) {
        let positions = if len == self.batch_size {
            self.positions.clone()
        } else {
            self.positions.clone().narrow(0, 0, len)
        };
        let (Some(order), Some(step_losses), Some(corrections)) =
            (&self.order, &mut self.step_losses, self.adam.at(&self.slot))
        else {
            return;
        };
        let idx = order.clone().select(0, positions);
        let xs = self.images.clone().select(0, idx.clone()); // [len, 1, 28, 28]
        let ys = self.labels.clone().select(0, idx); // [len]
        let Some(net) = self.net.take() else {
            return;
        };
        let logits = net.forward(xs); // [len, 10]
        let loss = self.loss.forward(logits.clone(), ys.clone());
        let hits = correct(logits.inner(), ys.inner());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        self.net = Some(self.adam.step(net, grads, corrections));
        let loss = loss.inner();
        self.loss_sum
            .inplace(|s| s.add(loss.clone().mul_scalar(len as f64)));
        self.hits.inplace(|h| h.add(hits));
        let slot = self.slot.clone();
        step_losses.inplace(|l| l.select_assign(0, slot, loss, IndexingUpdateOp::Add));
        self.slot.inplace(|s| s.add_scalar(1));
        self.positions.inplace(|p| p.add_scalar(len as i64));
    }

    /// The epoch's totals, read back once, and a check that every step advanced the device's
    /// step count: a replay that ran on stale state would not have.
    fn totals(&self, n: usize, steps_before: f32, steps: usize) -> Result<Totals, TrainError> {
        let loss_sum = f64::from(scalar(self.loss_sum.clone(), "reading the epoch's loss")?);
        let after = self.adam.steps()?;
        if after != steps_before + steps as f32 {
            return Err(crate::backend_error(format!(
                "the captured step did not advance its state: Adam's step count went from \
                 {steps_before} to {after} over {steps} steps"
            )));
        }
        let first_nonfinite = if loss_sum.is_finite() {
            None
        } else {
            let what = "reading the epoch's step losses";
            let all = self
                .step_losses
                .clone()
                .ok_or_else(lost)?
                .try_into_data()
                .map_err(|e| read_error(what, e))?
                .try_to_vec::<f32>()
                .map_err(|e| read_error(what, e))?;
            first_nonfinite(&all[..steps.min(all.len())])
        };
        Ok(Totals {
            loss_sum,
            correct: scalar(self.hits.clone(), "reading the epoch's correct count")? as u64,
            examples: n as u64,
            first_nonfinite,
        })
    }
}

type StepGraph = Graph<(), Box<dyn FnMut()>>;

/// How a full step ran: recorded and replayed as a graph, or re-run eagerly because the device has
/// no graphs (with burn's reason).
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Not captured yet (no epoch has had enough full batches).
    Pending,
    Graph,
    Eager(String),
}

/// The tuned step of a run: its state, and its graph once recorded.
pub struct Captured {
    state: Rc<RefCell<StepState>>,
    graph: Option<StepGraph>,
    /// The plain device under autodiff, where the graph is recorded.
    device: Device,
    replay: Replay,
}

/// Full steps `capture` runs before its graph is there: three warm-up steps (autotuning, and the
/// buffers the recording reuses) and, on a device without graphs, the recording run itself, which
/// there is an ordinary step. On a device with graphs the recording run launches nothing.
const WARMUP_STEPS: usize = 3;

impl Captured {
    pub fn new(state: StepState, device: Device) -> Self {
        Self {
            state: Rc::new(RefCell::new(state)),
            graph: None,
            device,
            replay: Replay::Pending,
        }
    }

    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// A second handle on the state, to watch it between steps.
    #[cfg(test)]
    fn state(&self) -> Rc<RefCell<StepState>> {
        Rc::clone(&self.state)
    }

    /// Reads the state (the model, for evaluation and export).
    pub fn with_state<T>(&self, f: impl FnOnce(&StepState) -> T) -> T {
        f(&self.state.borrow())
    }

    /// One epoch over `order`: full batches through the graph (recording it on the first epoch
    /// that has enough of them), the shorter last batch eagerly.
    pub fn epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        let n = order.len();
        let (batch, steps_before) = {
            let mut state = self.state.borrow_mut();
            if !state.start_epoch(order, &self.device) {
                // A buffer was replaced: a graph recorded on the old one is stale.
                self.graph = None;
            }
            (state.batch_size, state.adam.steps()?)
        };
        let full = n / batch;
        let mut done = 0;
        while done < full {
            match &mut self.graph {
                Some(graph) => {
                    // burn's replay panics where the driver refuses it: that is this run's error.
                    let replayed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // SAFETY: every buffer the step touches is held by `self.state`, which
                        // the graph's closure owns a handle to and nothing replaces while the
                        // graph lives (a new order buffer drops the graph above); the replay is
                        // issued on the device's own stream, like every read and refresh of
                        // those buffers.
                        unsafe { graph.replay() };
                    }));
                    if let Err(panic) = replayed {
                        let why = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "no message".into());
                        return Err(crate::backend_error(format!(
                            "replaying the captured step failed: {why}"
                        )));
                    }
                    done += 1;
                    progress(done);
                }
                None if full - done > WARMUP_STEPS => {
                    let state = Rc::clone(&self.state);
                    let step: Box<dyn FnMut()> = Box::new(move || state.borrow_mut().step(batch));
                    let graph = burn::tensor::capture(&self.device, step);
                    let ran = if graph.is_hardware() {
                        self.replay = Replay::Graph;
                        WARMUP_STEPS
                    } else {
                        let why = graph
                            .capture_error()
                            .map_or_else(|| "no reason given".to_string(), |e| format!("{e}"));
                        self.replay = Replay::Eager(why);
                        WARMUP_STEPS + 1
                    };
                    self.graph = Some(graph);
                    for _ in 0..ran {
                        done += 1;
                        progress(done);
                    }
                }
                None => {
                    self.state.borrow_mut().step(batch);
                    done += 1;
                    progress(done);
                }
            }
        }
        let steps = n.div_ceil(batch);
        if n % batch != 0 {
            self.state.borrow_mut().step(n % batch);
            progress(steps);
        }
        self.state.borrow().totals(n, steps_before, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{AdamConfig, Optimizer};

    /// Fixed gradients, the same for both optimisers: a sine pattern per step.
    fn gradient(step: usize, n: usize, device: &Device) -> Tensor<1> {
        let values: Vec<f32> = (0..n)
            .map(|i| ((step * 31 + i * 7) as f32 * 0.37).sin() * 10f32.powi(-((i % 4) as i32)))
            .collect();
        Tensor::from_data(TensorData::new(values, [n]), device)
    }

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// A tuned step over synthetic data: LeNet2 with the shared initial weights, `n` random
    /// images of ten classes, batches of 32.
    fn tuned(n: usize) -> Captured {
        let device = Device::flex();
        let train_device = device.clone().autodiff();
        let model = common::spec::ModelKind::LeNet2;
        let weights = common::weights::Weights::init(&model.spec(), 3);
        let net = crate::net_with(model, &weights, &train_device).unwrap();
        let side = common::mnist::IMAGE_SIDE;
        let pixels: Vec<f32> = (0..n * side * side)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let labels: Vec<i64> = (0..n).map(|i| (i * 7 % 10) as i64).collect();
        let images =
            Tensor::<4>::from_data(TensorData::new(pixels, [n, 1, side, side]), &train_device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &train_device);
        let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(&train_device);
        let state = StepState::new(
            net,
            DeviceAdam::new(1e-3, &device),
            loss,
            images,
            labels,
            32,
            &device,
        );
        Captured::new(state, device)
    }

    fn weights(state: &StepState) -> common::weights::Weights {
        crate::export(&state.net().unwrap().valid()).unwrap()
    }

    /// Every step of an epoch, whether a warm-up, a replay or the short last batch, advances the
    /// device's step count by one and changes every parameter tensor: a replay on stale scalars
    /// or stale buffers would leave one of them where it was.
    #[test]
    fn every_replay_advances_the_step_count_and_the_parameters() {
        let n = 32 * 10 + 5;
        let mut captured = tuned(n);
        let state = captured.state();
        let mut last = (0.0, weights(&state.borrow()));
        let order: Vec<u32> = (0..n as u32).rev().collect();
        for epoch in 0..2 {
            let mut seen = 0;
            let totals = captured
                .epoch(&order, &mut |done| {
                    let state = state.borrow();
                    let steps = state.adam.steps().unwrap();
                    let now = weights(&state);
                    // capture() runs the first 4 steps here (3 warm-up steps and the recording
                    // run, which has no graph to record on the CPU) and reports them after.
                    let expected = if epoch == 0 && done <= 4 {
                        4
                    } else {
                        epoch * 11 + done
                    };
                    assert_eq!(steps, expected as f32, "epoch {epoch}, step {done}");
                    if done > 4 || epoch > 0 {
                        assert_eq!(steps, last.0 + 1.0, "epoch {epoch}, step {done}");
                        for (name, t) in &now.tensors {
                            assert_ne!(
                                t, &last.1.tensors[name],
                                "{name} did not change at epoch {epoch}, step {done}"
                            );
                        }
                    }
                    last = (steps, now);
                    seen = done;
                })
                .unwrap();
            assert_eq!(seen, 11);
            assert_eq!(totals.examples, n as u64);
            assert!(totals.loss_sum.is_finite() && totals.loss_sum > 0.0);
        }
        assert!(
            matches!(captured.replay(), Replay::Eager(_)),
            "{:?}",
            captured.replay()
        );
    }

    /// DeviceAdam makes the updates burn-optim's Adam makes, to the bit, step for step over 200
    /// steps of fixed gradients of four magnitudes, planned as two epochs of 100 (the second
    /// written into the first's tables in place): the same math with the bias corrections read
    /// on the device at each step's slot.
    #[test]
    fn device_adam_is_burns_adam_on_fixed_gradients() {
        let device = Device::flex();
        let n = 64;
        let lr = 1e-3;
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.1).cos()).collect();
        let start = Tensor::<1>::from_data(TensorData::new(start, [n]), &device);
        let burn_adam = AdamConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .build();
        let mut ours = DeviceAdam::new(lr, &device);
        let id = ParamId::new();
        let (mut theirs, mut state) = (start.clone(), None);
        let mut mine = start.clone();
        for step in 0..200 {
            let slot = step % 100;
            if slot == 0 {
                assert_eq!(ours.plan(100, &device), step > 0, "step {step}");
            }
            let g = gradient(step, n, &device);
            let (next, next_state) = burn_adam.step(lr, theirs, g.clone(), state);
            (theirs, state) = (next, next_state);
            let slot =
                Tensor::<1, Int>::from_data(TensorData::new(vec![slot as i64], [1]), &device);
            let c = ours.at(&slot).unwrap();
            ours.time.inplace(|t| t.add_scalar(1.0));
            mine = ours.update(id, mine, g, &c);
            assert_eq!(
                values(theirs.clone()),
                values(mine.clone()),
                "step {}: burn's Adam against the device Adam",
                step + 1
            );
        }
        assert_eq!(ours.steps().unwrap(), 200.0);
    }
}
