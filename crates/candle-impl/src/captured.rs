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
//!
//! A replay is trusted only once it has proved itself: the first replay of a graph runs from a
//! saved copy of the whole state, the state is then put back (`Var::set`, into the same buffers)
//! and the same step runs eagerly, and `common::replay_check` compares the two. The state goes on
//! from the eager step either way; where the replay disagreed, the graph is dropped and the report
//! says by how much. On the CPU, where there are no graphs, the first step after the warm-up is
//! checked the same way (its "replay" is the step itself), which is how the check is tested.
//!
//! A recording that fails leaves the stream out of capture mode and cudarc's stored error taken
//! (`record`): otherwise cudarc hands the capture's error to the next call, once, and the eager
//! step that follows fails with it. The recording launched nothing, so the state is as the
//! warm-up steps left it.

use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use candle_nn::Module;

mod adam;

pub(crate) use adam::adam_params;
pub use adam::DeviceAdam;

use crate::model::Net;
use common::capture::{FirstReplay, Replay, WARMUP_STEPS};
use common::harness::{first_nonfinite, Totals};
use common::replay_check::StepOutcome;

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
    /// In a test: a fault the replayed steps make.
    #[cfg(test)]
    fault: Option<Fault>,
    /// In a test: whether the step now running is a replay.
    #[cfg(test)]
    replaying: bool,
}

/// A fault put into the replayed steps of a test, for the self-check to catch.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// The step leaves the parameters and moments where they were.
    SkipUpdate,
    /// The step's Adam uses the step count before this step's (stale bias corrections).
    StaleCount,
}

/// A copy, on the device, of every variable a step writes, and the slot the step starts at.
struct Saved {
    vars: Vec<(Var, Tensor)>,
    /// The parameters' values before the step, by name, on the host.
    params: Vec<(String, Vec<f32>)>,
    slot: usize,
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
            #[cfg(test)]
            fault: None,
            #[cfg(test)]
            replaying: false,
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
        #[cfg(test)]
        match self.fault.filter(|_| self.replaying) {
            Some(Fault::SkipUpdate) => {}
            Some(Fault::StaleCount) => {
                // The step count one behind for this step's corrections, then advanced as usual.
                let time = self.adam.time.as_tensor().clone();
                self.adam.time.set(&(&time - 1.0)?)?;
                self.adam.step(&grads)?;
                self.adam.time.set(&(&time + 1.0)?)?;
            }
            None => self.adam.step(&grads)?,
        }
        #[cfg(not(test))]
        self.adam.step(&grads)?;
        let loss = loss.detach();
        self.loss_sum
            .set(&(self.loss_sum.as_tensor() + (&loss * len as f64)?)?)?;
        self.hits
            .set(&(self.hits.as_tensor() + crate::device::correct(&logits.detach(), &ys)?)?)?;
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

    /// Every variable a step writes.
    fn vars(&self) -> Vec<&Var> {
        let mut vars = vec![
            &self.adam.time,
            &self.positions,
            &self.loss_sum,
            &self.hits,
            &self.slot,
        ];
        vars.extend(self.step_losses.as_ref());
        for (theta, m, v) in &self.adam.vars {
            vars.extend([theta, m, v]);
        }
        vars
    }

    /// A copy of the whole state on the device (and of the parameters on the host).
    fn save(&self) -> candle_core::Result<Saved> {
        let vars = self
            .vars()
            .into_iter()
            .map(|var| Ok((var.clone(), var.as_tensor().copy()?)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Saved {
            vars,
            params: self.params()?,
            slot: self
                .slot
                .as_tensor()
                .to_vec1::<u32>()?
                .first()
                .copied()
                .unwrap_or(0) as usize,
        })
    }

    /// Puts the saved state back, into the same buffers.
    fn restore(&self, saved: &Saved) -> candle_core::Result<()> {
        for (var, copy) in &saved.vars {
            var.set(copy)?;
        }
        Ok(())
    }

    /// Every parameter's values, by name, on the host.
    fn params(&self) -> candle_core::Result<Vec<(String, Vec<f32>)>> {
        self.adam
            .names
            .iter()
            .zip(&self.adam.vars)
            .map(|(name, (theta, _, _))| {
                Ok((name.clone(), theta.as_tensor().flatten_all()?.to_vec1()?))
            })
            .collect()
    }

    /// What the step that just ran from `saved` left: its loss and every parameter.
    fn outcome(&self, saved: &Saved) -> candle_core::Result<StepOutcome> {
        let Some(losses) = &self.step_losses else {
            candle_core::bail!("a step before its epoch's order");
        };
        let losses = losses.as_tensor().to_vec1::<f32>()?;
        let Some(&loss) = losses.get(saved.slot) else {
            candle_core::bail!("the step's slot {} is past the epoch's steps", saved.slot);
        };
        Ok(StepOutcome {
            loss: f64::from(loss),
            tensors: self.params()?,
        })
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

/// The tuned step of a run: its state, and its graph once recorded.
pub struct Captured {
    state: StepState,
    #[cfg(feature = "cuda")]
    graph: Option<cuda::StepGraph>,
    /// Warm-up steps run so far.
    warmed: usize,
    replay: Replay,
    /// The self-check of the first replay (on the CPU: of the first step after the warm-up).
    check: FirstReplay,
}

impl Captured {
    /// `tolerance`: how closely the first replay must agree with the eager step (relative, see
    /// `common::replay_check`).
    pub fn new(state: StepState, tolerance: f64) -> Self {
        let replay = if state.images.device().is_cuda() {
            Replay::Pending
        } else {
            Replay::Eager("the run is on the CPU: no CUDA graphs there".into())
        };
        Self {
            state,
            #[cfg(feature = "cuda")]
            graph: None,
            warmed: 0,
            replay,
            check: FirstReplay::new(tolerance),
        }
    }

    pub fn replay(&self) -> &Replay {
        &self.replay
    }

    /// What the self-check found: the report's words, once a first replay was checked.
    pub fn check(&self) -> Option<&str> {
        self.check.found()
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
            self.check.recorded();
        }
        #[cfg(not(feature = "cuda"))]
        let _ = kept;
        let steps_before = self.state.adam.steps()?;
        let full = n / batch;
        for done in 1..=full {
            self.full_step(done)?;
            progress(done);
        }
        let steps = n.div_ceil(batch);
        if n % batch != 0 {
            self.state.step(n % batch)?;
            progress(steps);
        }
        self.state.totals(n, steps_before, steps)
    }

    /// A full step (the epoch's `number`th): replayed, recorded, checked or eager.
    fn full_step(&mut self, number: usize) -> candle_core::Result<()> {
        #[cfg(feature = "cuda")]
        if self.state.images.device().is_cuda() {
            return self.cuda_step(number);
        }
        let batch = self.state.batch_size;
        if self.warmed < WARMUP_STEPS || !self.check.due() {
            self.warmed += 1;
            return self.state.step(batch);
        }
        // No graphs here: the step after the warm-up is checked as a first replay would be.
        self.checked(number, |state| state.step(batch)).map(|_| ())
    }

    #[cfg(feature = "cuda")]
    fn cuda_step(&mut self, number: usize) -> candle_core::Result<()> {
        let batch = self.state.batch_size;
        if self.graph.is_none() && self.replay == Replay::Pending {
            // Warm-up steps with the shape cache on, then the recording, which launches nothing.
            let device = self.state.images.device().as_cuda_device()?.clone();
            let _cache = device.enable_cuda_graph_htod_cache();
            if self.warmed < WARMUP_STEPS {
                self.warmed += 1;
                return self.state.step(batch);
            }
            match cuda::StepGraph::record(&device, || self.state.step(batch)) {
                Ok(graph) => {
                    self.graph = Some(graph);
                    self.replay = Replay::Graph;
                    self.check.recorded();
                }
                Err(why) => {
                    // The stream is out of capture and cudarc's stored error taken: this step
                    // runs eagerly, from the state the warm-up steps left.
                    self.replay = Replay::Eager(why);
                    return self.state.step(batch);
                }
            }
        }
        match self.graph.take() {
            Some(graph) if self.check.due() => {
                let agreed = self.checked(number, |_| graph.launch())?;
                if agreed {
                    self.graph = Some(graph);
                }
                Ok(())
            }
            Some(graph) => {
                let launched = graph.launch();
                self.graph = Some(graph);
                launched
            }
            None => self.state.step(batch),
        }
    }

    /// The checked first replay: from a saved copy of the state, `replay` runs the step; the
    /// state is put back and the step runs eagerly; the two outcomes are compared. The state goes
    /// on from the eager step. Returns whether they agreed (else the replay has fallen back).
    fn checked(
        &mut self,
        number: usize,
        replay: impl FnOnce(&mut StepState) -> candle_core::Result<()>,
    ) -> candle_core::Result<bool> {
        let start = Instant::now();
        let saved = self.state.save()?;
        #[cfg(test)]
        {
            self.state.replaying = true;
        }
        let ran = replay(&mut self.state);
        #[cfg(test)]
        {
            self.state.replaying = false;
        }
        ran?;
        let replayed = self.state.outcome(&saved)?;
        self.state.restore(&saved)?;
        self.state.step(self.state.batch_size)?;
        let eager = self.state.outcome(&saved)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(self.check.judge(
            &mut self.replay,
            &saved.params,
            &eager,
            &replayed,
            (number, seconds),
        ))
    }
}

/// cudarc's stream capture of a step on candle's CUDA device.
#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::Arc;

    use candle_core::cuda_backend::cudarc::driver::{result, sys, CudaGraph, CudaStream};
    use candle_core::CudaDevice;

    /// Takes `stream` out of capture mode where a failed recording left it there (the partial
    /// graph destroyed) and takes cudarc's stored errors, which cudarc would otherwise return
    /// from the next call; then waits for the stream, which reports a fault that no fallback
    /// survives. Returns what it found on the way.
    fn abandon(stream: &Arc<CudaStream>) -> Result<Vec<String>, String> {
        use sys::CUstreamCaptureStatus as Status;
        let mut notes = Vec::new();
        let take_error = |notes: &mut Vec<String>| {
            if let Err(e) = stream.context().check_err() {
                notes.push(format!("pending: {e}"));
            }
        };
        let capturing = || -> Result<bool, String> {
            let status = stream
                .capture_status()
                .map_err(|e| format!("reading the capture's status: {e}"))?;
            Ok(status != Status::CU_STREAM_CAPTURE_STATUS_NONE)
        };
        take_error(&mut notes);
        if capturing()? {
            // SAFETY: the stream is this device's, capturing on this thread; ending the capture
            // hands back the partial graph (or none, for an invalidated capture), which nothing
            // else holds and which is destroyed here.
            match unsafe { result::stream::end_capture(stream.cu_stream()) } {
                Ok(graph) if !graph.is_null() => {
                    if let Err(e) = unsafe { result::graph::destroy(graph) } {
                        notes.push(format!("destroying the partial graph: {e}"));
                    }
                }
                Ok(_) => {}
                Err(e) => notes.push(format!("ending the capture: {e}")),
            }
        }
        take_error(&mut notes);
        if capturing()? {
            return Err("the stream is still capturing".into());
        }
        stream
            .synchronize()
            .map_err(|e| format!("after the capture: {e}"))?;
        Ok(notes)
    }

    /// A step recorded on the device's stream.
    pub struct StepGraph(CudaGraph);

    impl StepGraph {
        /// Records what `step` launches on `device`'s stream, and instantiates it to free the
        /// step's temporaries at each launch. The step's error, or the driver's, is the reason
        /// returned when it cannot be recorded; the stream is then out of capture mode and
        /// cudarc's stored error taken (named in the reason), so that the eager step that
        /// follows starts clean.
        pub fn record(
            device: &CudaDevice,
            step: impl FnOnce() -> candle_core::Result<()>,
        ) -> Result<Self, String> {
            let stream = device.cuda_stream();
            // An error cudarc kept from before is not the capture's: say so, and start clean.
            stream
                .context()
                .check_err()
                .map_err(|e| format!("an earlier CUDA error was pending: {e}"))?;
            stream
                .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                .map_err(|e| format!("starting the capture: {e}"))?;
            let ran = step();
            let flags =
                sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH;
            let graph = match &ran {
                Ok(()) => stream.end_capture(flags),
                Err(_) => Ok(None),
            };
            let failure = match (ran, graph) {
                (Ok(()), Ok(Some(graph))) => return Ok(Self(graph)),
                (Err(e), _) => format!("the step under capture: {e}"),
                (Ok(()), Ok(None)) => "the capture recorded nothing".to_string(),
                (Ok(()), Err(e)) => format!("ending the capture: {e}"),
            };
            match abandon(&stream) {
                Ok(notes) if notes.is_empty() => Err(failure),
                Ok(notes) => Err(format!("{failure} ({})", notes.join("; "))),
                Err(e) => Err(format!(
                    "{failure}; and the stream could not be cleaned up: {e}"
                )),
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
mod tests;
