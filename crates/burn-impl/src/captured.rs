//! burn's tuned training step: the whole step of a full batch (gather, forward, loss, backward, a
//! device-side Adam and the epoch's sums) recorded once by `burn::tensor::capture` on the plain
//! device under autodiff and replayed for every later full batch; a shorter last batch runs the
//! same step eagerly.
//!
//! A replay re-runs the recorded kernels against the buffers they touched when recorded, with the
//! scalars they were launched with. So nothing that changes from step to step may be a host value:
//! the batch's positions in the epoch's order, the step count and Adam's bias corrections, and the
//! slot of the step's loss all live in device tensors that the step itself advances. And every
//! piece of state is written back into its own buffer: a new value is computed from clones of the
//! state (so that the state is only read by the computation) and then written over the state with
//! a whole-range `slice_assign` ([`write_back`]). What an operation's result lands in is otherwise
//! burn's choice: `Tensor::inplace` promises nothing about buffers (burn-tensor 0.23.0-pre.1,
//! `tensor/api/base.rs`, its doc), and under fusion (the CUDA build's `Fusion<CubeBackend>`) a
//! fused block's outputs take the buffers of its consumed inputs by position, not by name
//! (burn-cubecl-fusion 0.23.0-pre.1: inputs listed in the order first read,
//! `engine/trace/block.rs`; outputs sorted by shape and each given the first remaining input of its
//! shape, `engine/launch/output.rs`), so that Adam's new second moment could land in the
//! gradient's buffer and the new weights in the second moment's. `slice_assign` is never fused
//! (burn-cubecl-fusion's `engine/fuser.rs` fuses no assignment) and burn-cubecl writes it into the
//! destination's own buffer when that handle is the only one (`kernel/index/slice_assign.rs`),
//! which the clones make it. burn-optim's own Adam (`adam.rs`) computes its bias corrections on the
//! host from a host step count: captured, it would train every replay with the corrections of the
//! step it was recorded at. [`DeviceAdam`] is the same arithmetic with the corrections read on the
//! device: the host computes an epoch's corrections before it starts, exactly as burn-optim does,
//! and writes them into a table that each step reads at its own slot.
//!
//! A replay is trusted only once it has proved itself: the first replay of a run is compared with
//! an eager step from the same state (a twin of the state, in fresh buffers, stepped eagerly), by
//! `common::replay_check`; where they disagree the run goes on eagerly from the twin, the graph
//! dropped, and the report says by how much. A recording that fails on a device with graphs (whose
//! buffers cubecl then marks as failed) leaves the run eager from the state saved on the host
//! before the recording, with no step counted that did not run.
//!
//! Where the device has no graphs (the CPU backends), `capture` re-runs the step at each replay,
//! so the same code trains, step for step, on the CPU: that is how it is tested.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::GradientsParams;
use burn::tensor::kind::Basic;
use burn::tensor::{Device, Graph, IndexingUpdateOp, Int, Tensor, TensorData};
// `capture` runs WARMUP_STEPS warm-up steps before its graph is there (autotuning, and the buffers
// the recording reuses) and, on a device without graphs, the recording run itself, which there is an
// ordinary step; on a device with graphs the recording run launches nothing.
use common::capture::{FirstReplay, Replay, WARMUP_STEPS};
use common::replay_check::StepOutcome;

mod adam;

pub use adam::DeviceAdam;

use crate::device::correct;
use crate::model::Net;
use crate::{lost, read_error, scalar};
use common::harness::{first_nonfinite, Totals};
use common::TrainError;

/// Writes `value` over `dst`, into `dst`'s own buffer: a whole-range `slice_assign`, which burn's
/// fusion never fuses and burn-cubecl runs in place on a destination that is the only handle on its
/// buffer (see the module documentation). `value` must not be computed in place of `dst`: compute
/// it from `dst.clone()`.
fn write_back<const D: usize, K: Basic>(dst: &mut Tensor<D, K>, value: Tensor<D, K>) {
    let old = std::mem::replace(dst, value.clone());
    *dst = old.slice_assign(.., value);
}

/// A fault put into the replayed steps of a test, for the self-check to catch.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// The step leaves the parameters where they were.
    SkipUpdate,
    /// The step reads the bias corrections of the step before (a stale step count).
    StaleCount,
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
    /// In a test: a fault the replayed steps make.
    #[cfg(test)]
    fault: Option<Fault>,
    /// In a test: whether the step now running is a replay.
    #[cfg(test)]
    replaying: bool,
}

/// A step's whole mutable state on the host: the parameters by id (with their names), Adam's
/// moments and step count, the positions, the slot and the epoch's sums.
struct Saved {
    params: Vec<(ParamId, String, TensorData)>,
    moments: Vec<(ParamId, TensorData, TensorData)>,
    time: TensorData,
    positions: TensorData,
    slot: TensorData,
    loss_sum: TensorData,
    hits: TensorData,
    step_losses: Option<TensorData>,
}

fn host<const D: usize, K: Basic>(t: &Tensor<D, K>) -> Result<TensorData, TrainError> {
    t.clone()
        .try_into_data()
        .map_err(|e| read_error("saving the captured step's state", e))
}

fn floats(data: &TensorData) -> Result<Vec<f32>, TrainError> {
    data.try_to_vec_as::<f32>()
        .map_err(|e| read_error("saving the captured step's state", e))
}

/// Reads every parameter of a module with its id and its path (`conv1.weight`).
#[derive(Default)]
struct Reader {
    path: Vec<String>,
    found: Vec<(ParamId, String, Result<TensorData, TrainError>)>,
}

impl ModuleVisitor for Reader {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = host(&param.val().inner());
        self.found.push((param.id, self.path.join("."), value));
    }
}

/// Puts saved values into every parameter of a module, each in a new buffer, keeping its id.
struct Restorer<'a> {
    saved: &'a HashMap<ParamId, TensorData>,
    device: &'a Device,
}

impl ModuleMapper for Restorer<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(data) = self.saved.get(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let fresh = Tensor::<D>::from_data(data.clone(), self.device);
        Param::from_mapped_value(id, Tensor::from_inner(fresh).require_grad(), mapper)
    }
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
            #[cfg(test)]
            fault: None,
            #[cfg(test)]
            replaying: false,
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
                write_back(o, values);
                write_back(l, Tensor::zeros([steps], device));
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
        write_back(
            &mut self.positions,
            Tensor::<1, Int>::arange(0..batch as i64, device),
        );
        write_back(&mut self.slot, Tensor::zeros([1], device));
        write_back(&mut self.loss_sum, Tensor::zeros([1], device));
        write_back(&mut self.hits, Tensor::zeros([1], device));
        kept
    }

    /// One step over the next `len` positions (a full batch, or the shorter last one).
    fn step(&mut self, len: usize) {
        #[cfg(test)]
        let fault = self.fault.filter(|_| self.replaying);
        let positions = if len == self.batch_size {
            self.positions.clone()
        } else {
            self.positions.clone().narrow(0, 0, len)
        };
        #[cfg(test)]
        let corrections = match fault {
            Some(Fault::StaleCount) => self.adam.at(&self.slot.clone().sub_scalar(1)),
            _ => self.adam.at(&self.slot),
        };
        #[cfg(not(test))]
        let corrections = self.adam.at(&self.slot);
        let (Some(order), Some(step_losses), Some(corrections)) =
            (&self.order, &mut self.step_losses, corrections)
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
        #[cfg(test)]
        let net = if fault == Some(Fault::SkipUpdate) {
            net
        } else {
            self.adam.step(net, grads, corrections)
        };
        #[cfg(not(test))]
        let net = self.adam.step(net, grads, corrections);
        self.net = Some(net);
        let loss = loss.inner();
        let sum = self
            .loss_sum
            .clone()
            .add(loss.clone().mul_scalar(len as f64));
        write_back(&mut self.loss_sum, sum);
        let total = self.hits.clone().add(hits);
        write_back(&mut self.hits, total);
        // select_assign is not fused either, and writes into the step losses' own buffer.
        let slot = self.slot.clone();
        let losses = std::mem::replace(step_losses, loss.clone());
        *step_losses = losses.select_assign(0, slot, loss, IndexingUpdateOp::Add);
        let next = self.slot.clone().add_scalar(1);
        write_back(&mut self.slot, next);
        let next = self.positions.clone().add_scalar(len as i64);
        write_back(&mut self.positions, next);
    }

    /// Every parameter with its id and its path, read back to the host.
    fn params(&self) -> Result<Vec<(ParamId, String, TensorData)>, TrainError> {
        let mut reader = Reader::default();
        self.net()?.visit(&mut reader);
        reader
            .found
            .into_iter()
            .map(|(id, name, value)| Ok((id, name, value?)))
            .collect()
    }

    /// The whole mutable state, read back to the host.
    fn save(&self) -> Result<Saved, TrainError> {
        let params = self.params()?;
        let moments = self
            .adam
            .moments
            .iter()
            .map(|(id, (m, v))| Ok((*id, host(m)?, host(v)?)))
            .collect::<Result<Vec<_>, TrainError>>()?;
        Ok(Saved {
            params,
            moments,
            time: host(&self.adam.time)?,
            positions: host(&self.positions)?,
            slot: host(&self.slot)?,
            loss_sum: host(&self.loss_sum)?,
            hits: host(&self.hits)?,
            step_losses: self.step_losses.as_ref().map(host).transpose()?,
        })
    }

    /// A state with `saved`'s values, each in a new buffer on `device`, sharing with this one only
    /// what a step never writes (the data, the epoch's order, Adam's corrections).
    fn twin(&self, saved: &Saved, device: &Device) -> Result<StepState, TrainError> {
        let values: HashMap<ParamId, TensorData> = saved
            .params
            .iter()
            .map(|(id, _, data)| (*id, data.clone()))
            .collect();
        let net = self.net()?.clone().map(&mut Restorer {
            saved: &values,
            device,
        });
        let mut adam = DeviceAdam::with(
            self.adam.beta_1,
            self.adam.beta_2,
            self.adam.epsilon,
            self.adam.learning_rate,
            device,
        );
        adam.time = Tensor::from_data(saved.time.clone(), device);
        adam.planned = self.adam.planned;
        adam.table = self.adam.table.clone();
        adam.moments = saved
            .moments
            .iter()
            .map(|(id, m, v)| {
                let m = Tensor::from_data(m.clone(), device);
                let v = Tensor::from_data(v.clone(), device);
                (*id, (m, v))
            })
            .collect();
        Ok(StepState {
            net: Some(net),
            adam,
            loss: self.loss.clone(),
            images: self.images.clone(),
            labels: self.labels.clone(),
            order: self.order.clone(),
            positions: Tensor::from_data(saved.positions.clone(), device),
            loss_sum: Tensor::from_data(saved.loss_sum.clone(), device),
            hits: Tensor::from_data(saved.hits.clone(), device),
            step_losses: saved
                .step_losses
                .as_ref()
                .map(|l| Tensor::from_data(l.clone(), device)),
            slot: Tensor::from_data(saved.slot.clone(), device),
            batch_size: self.batch_size,
            #[cfg(test)]
            fault: None,
            #[cfg(test)]
            replaying: false,
        })
    }

    /// What the step that just ran from `before` left: its loss (at `before`'s slot) and every
    /// parameter.
    fn outcome(&self, before: &Saved) -> Result<StepOutcome, TrainError> {
        let slot = before
            .slot
            .try_to_vec_as::<i64>()
            .map_err(|e| read_error("reading the step's slot", e))?
            .first()
            .copied()
            .unwrap_or(0);
        let losses = self.step_losses.as_ref().ok_or_else(lost)?;
        let loss = floats(&host(losses)?)?
            .get(usize::try_from(slot).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| crate::backend_error("the step's slot is past the epoch's steps"))?;
        let tensors = self
            .params()?
            .iter()
            .map(|(_, name, data)| Ok((name.clone(), floats(data)?)))
            .collect::<Result<Vec<_>, TrainError>>()?;
        Ok(StepOutcome {
            loss: f64::from(loss),
            tensors,
        })
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

/// The tuned step of a run: its state, and its graph once recorded.
pub struct Captured {
    state: Rc<RefCell<StepState>>,
    graph: Option<StepGraph>,
    /// The plain device under autodiff, where the graph is recorded.
    device: Device,
    /// Whether the device records graphs (CUDA): a recording that fails there leaves buffers
    /// marked as failed.
    graphs: bool,
    replay: Replay,
    /// The self-check of the graph's first replay against the eager step.
    check: FirstReplay,
}

impl Captured {
    /// `graphs`: whether `device` records graphs (CUDA); `tolerance`: how closely the first
    /// replay must agree with the eager step (relative, see `common::replay_check`).
    pub fn new(state: StepState, device: Device, graphs: bool, tolerance: f64) -> Self {
        Self {
            state: Rc::new(RefCell::new(state)),
            graph: None,
            device,
            graphs,
            replay: Replay::Pending,
            check: FirstReplay::new(tolerance),
        }
    }

    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// What the self-check found: the report's words, once the first replay was checked.
    pub fn check(&self) -> Option<&str> {
        self.check.found()
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

    /// One replay of the graph; burn's replay panics where the driver refuses it: that is this
    /// run's error.
    fn replay_once(&mut self) -> Result<(), TrainError> {
        let Some(graph) = &mut self.graph else {
            return Err(lost());
        };
        #[cfg(test)]
        {
            self.state.borrow_mut().replaying = true;
        }
        let replayed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: every buffer the step touches is held by `self.state`, which the graph's
            // closure owns a handle to and nothing replaces while the graph lives (a new order
            // buffer, a fallen-back check or a failed recording drops the graph); the replay is
            // issued on the device's own stream, like every read and refresh of those buffers.
            unsafe { graph.replay() };
        }));
        #[cfg(test)]
        {
            self.state.borrow_mut().replaying = false;
        }
        replayed.map_err(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "no message".into());
            crate::backend_error(format!("replaying the captured step failed: {why}"))
        })
    }

    /// The first replay, checked: from the state as it is, a twin in fresh buffers takes the step
    /// eagerly and the graph replays it; where the two disagree, the twin becomes the state and
    /// the graph is dropped. `step` is the step's number in the epoch (from 1), for the report.
    fn checked_replay(&mut self, batch: usize, step: usize) -> Result<(), TrainError> {
        let start = Instant::now();
        let (before, mut twin) = {
            let state = self.state.borrow();
            let before = state.save()?;
            let twin = state.twin(&before, &self.device)?;
            (before, twin)
        };
        twin.step(batch);
        let eager = twin.outcome(&before)?;
        self.replay_once()?;
        let replayed = self.state.borrow().outcome(&before)?;
        let names: Vec<(String, Vec<f32>)> = before
            .params
            .iter()
            .map(|(_, name, data)| Ok((name.clone(), floats(data)?)))
            .collect::<Result<_, TrainError>>()?;
        let seconds = start.elapsed().as_secs_f64();
        let agreed = self
            .check
            .judge(&mut self.replay, &names, &eager, &replayed, (step, seconds));
        if !agreed {
            *self.state.borrow_mut() = twin;
            self.graph = None;
        }
        Ok(())
    }

    /// Records the step (`capture` runs its warm-up steps first) and returns the full steps that
    /// ran. A recording that fails on a device with graphs leaves buffers marked as failed: the
    /// state comes back from the host copy saved before, and no step counts.
    fn record(&mut self, batch: usize) -> Result<usize, TrainError> {
        let saved = if self.graphs {
            Some(self.state.borrow().save()?)
        } else {
            None
        };
        let state = Rc::clone(&self.state);
        let step: Box<dyn FnMut()> = Box::new(move || state.borrow_mut().step(batch));
        let graph = burn::tensor::capture(&self.device, step);
        self.check.recorded();
        if graph.is_hardware() {
            self.replay = Replay::Graph;
            self.graph = Some(graph);
            return Ok(WARMUP_STEPS);
        }
        let why = graph
            .capture_error()
            .map_or_else(|| "no reason given".to_string(), |e| format!("{e}"));
        match saved {
            None => {
                // No graphs here: the recording run was an ordinary step, and each replay re-runs
                // the step.
                self.replay = Replay::Eager(why);
                self.graph = Some(graph);
                Ok(WARMUP_STEPS + 1)
            }
            Some(saved) => {
                drop(graph);
                let fresh = self.state.borrow().twin(&saved, &self.device)?;
                *self.state.borrow_mut() = fresh;
                self.replay = Replay::Eager(format!(
                    "{why}; the run went on eagerly from the state saved before the recording"
                ));
                Ok(0)
            }
        }
    }

    /// One epoch over `order`: full batches through the graph (recording it on the first epoch
    /// that has enough of them, and checking its first replay), the shorter last batch eagerly.
    pub fn epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        let n = order.len();
        let (batch, steps_before) = {
            let mut state = self.state.borrow_mut();
            if !state.start_epoch(order, &self.device) {
                // A buffer was replaced: a graph recorded before is stale.
                self.graph = None;
            }
            (state.batch_size, state.adam.steps()?)
        };
        let full = n / batch;
        let mut done = 0;
        while done < full {
            let eager_only = matches!(self.replay, Replay::FellBack(_))
                || (self.graphs && matches!(self.replay, Replay::Eager(_)));
            if self.graph.is_some() && self.check.due() {
                self.checked_replay(batch, done + 1)?;
                done += 1;
                progress(done);
            } else if self.graph.is_some() {
                self.replay_once()?;
                done += 1;
                progress(done);
            } else if !eager_only && full - done > WARMUP_STEPS {
                for _ in 0..self.record(batch)? {
                    done += 1;
                    progress(done);
                }
            } else {
                self.state.borrow_mut().step(batch);
                done += 1;
                progress(done);
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
mod tests;
