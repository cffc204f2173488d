//! The tuned profile's pieces that tch does not bind, over the C++ in `src/shim/` (compiled by
//! `build.rs` against the same libtorch): libtorch's fused Adam, whose step counts live on the
//! parameters' device, and CUDA graphs captured on a side stream. Without the shim (no libtorch
//! headers at build time) they are absent and the tuned profile says so.

#[cfg(lenet_tch_shim)]
use std::ffi::{c_char, CStr};

use common::harness::Tuning;
use common::TrainError;
use tch::{nn, Device, Kind, Tensor};

use crate::FRAMEWORK;

/// Turns a message the shim returned into an error (and frees it).
#[cfg(lenet_tch_shim)]
fn check(error: *mut c_char) -> Result<(), TrainError> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, freed once, here.
    let message = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    unsafe { ffi::lc_free_error(error) };
    Err(TrainError::Backend {
        framework: FRAMEWORK,
        message,
    })
}

#[cfg(lenet_tch_shim)]
mod ffi {
    #[cfg(lenet_tch_graphs)]
    use std::ffi::c_void;
    use std::ffi::{c_char, c_int};

    use torch_sys::C_tensor;

    extern "C" {
        pub fn lc_free_error(error: *mut c_char);
        pub fn lc_fused_adam(
            params: *const *mut C_tensor,
            exp_avgs: *const *mut C_tensor,
            exp_avg_sqs: *const *mut C_tensor,
            steps: *const *mut C_tensor,
            n: c_int,
            lr: f64,
            beta1: f64,
            beta2: f64,
            weight_decay: f64,
            eps: f64,
        ) -> *mut c_char;
    }

    #[cfg(lenet_tch_graphs)]
    extern "C" {
        pub fn lc_capture_new(out: *mut *mut c_void) -> *mut c_char;
        pub fn lc_capture_free(capture: *mut c_void);
        pub fn lc_capture_enter(capture: *mut c_void) -> *mut c_char;
        pub fn lc_capture_exit(capture: *mut c_void) -> *mut c_char;
        pub fn lc_capture_begin(capture: *mut c_void) -> *mut c_char;
        pub fn lc_capture_end(capture: *mut c_void) -> *mut c_char;
        pub fn lc_capture_replay(capture: *mut c_void) -> *mut c_char;
    }
}

/// Whether this build has libtorch's fused Adam.
pub fn fused_adam_built() -> bool {
    cfg!(lenet_tch_shim)
}

/// Whether this build can capture CUDA graphs (a CUDA libtorch and its headers at build time).
pub fn graphs_built() -> bool {
    cfg!(lenet_tch_graphs)
}

/// The recipe's Adam (betas 0.9/0.999, eps 1e-8, no weight decay) as libtorch's fused kernel: one
/// call for every parameter, the moments and the step counts on the parameters' device. The
/// gradients are zeroed in place, never dropped, so that they keep their addresses (a captured step
/// writes into the same memory at every replay).
pub struct FusedAdam {
    params: Vec<Tensor>,
    exp_avgs: Vec<Tensor>,
    exp_avg_sqs: Vec<Tensor>,
    steps: Vec<Tensor>,
    learning_rate: f64,
}

impl FusedAdam {
    pub fn new(vs: &nn::VarStore, learning_rate: f64) -> Self {
        let params = vs.trainable_variables();
        let zeros = |p: &Tensor| p.zeros_like();
        Self {
            exp_avgs: params.iter().map(zeros).collect(),
            exp_avg_sqs: params.iter().map(zeros).collect(),
            steps: params
                .iter()
                .map(|p| Tensor::zeros([], (Kind::Float, p.device())))
                .collect(),
            params,
            learning_rate,
        }
    }

    /// Zeroes every gradient in place (a parameter without one yet is left as it is).
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One Adam step from the gradients `backward` left.
    #[cfg(lenet_tch_shim)]
    pub fn step(&mut self) -> Result<(), TrainError> {
        let ptrs = |ts: &[Tensor]| -> Vec<*mut torch_sys::C_tensor> {
            ts.iter().map(|t| t.as_ptr() as *mut _).collect()
        };
        let (p, m, v, s) = (
            ptrs(&self.params),
            ptrs(&self.exp_avgs),
            ptrs(&self.exp_avg_sqs),
            ptrs(&self.steps),
        );
        // SAFETY: four arrays of `n` live tensors (owned by `self`, which outlives the call); the
        // shim only reads the pointers.
        check(unsafe {
            ffi::lc_fused_adam(
                p.as_ptr(),
                m.as_ptr(),
                v.as_ptr(),
                s.as_ptr(),
                p.len() as std::ffi::c_int,
                self.learning_rate,
                0.9,
                0.999,
                0.0,
                1e-8,
            )
        })
    }

    /// Every tensor a step writes: the parameters, the moments and the step counts (shallow
    /// copies: the same storage).
    #[cfg(lenet_tch_graphs)]
    pub fn state(&self) -> Vec<Tensor> {
        [&self.params, &self.exp_avgs, &self.exp_avg_sqs, &self.steps]
            .into_iter()
            .flatten()
            .map(Tensor::shallow_clone)
            .collect()
    }

    #[cfg(not(lenet_tch_shim))]
    pub fn step(&mut self) -> Result<(), TrainError> {
        Err(TrainError::Backend {
            framework: FRAMEWORK,
            message: "this build has no fused Adam (libtorch's headers were missing at build time)"
                .into(),
        })
    }
}

/// A CUDA graph with its side stream (`src/shim/cuda_graph.cpp`).
#[cfg(lenet_tch_graphs)]
pub struct Capture {
    raw: *mut std::ffi::c_void,
}

#[cfg(lenet_tch_graphs)]
impl Capture {
    pub fn new() -> Result<Self, TrainError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: the shim writes a new object (or null with an error) into `raw`.
        check(unsafe { ffi::lc_capture_new(&mut raw) })?;
        Ok(Self { raw })
    }

    /// Runs `f` with the side stream current: its tch calls queue there.
    pub fn on_side_stream<T>(
        &self,
        f: impl FnOnce() -> Result<T, TrainError>,
    ) -> Result<T, TrainError> {
        // SAFETY: `raw` is this capture's live object.
        check(unsafe { ffi::lc_capture_enter(self.raw) })?;
        let out = f();
        let exited = check(unsafe { ffi::lc_capture_exit(self.raw) });
        let out = out?;
        exited?;
        Ok(out)
    }

    /// Records what `f` queues (on the side stream) as the graph, without running it.
    pub fn capture(&self, f: impl FnOnce() -> Result<(), TrainError>) -> Result<(), TrainError> {
        self.on_side_stream(|| {
            // SAFETY: as above.
            check(unsafe { ffi::lc_capture_begin(self.raw) })?;
            let recorded = f();
            let ended = check(unsafe { ffi::lc_capture_end(self.raw) });
            recorded?;
            ended
        })
    }

    /// Queues the graph once on the current stream.
    pub fn replay(&self) -> Result<(), TrainError> {
        // SAFETY: as above.
        check(unsafe { ffi::lc_capture_replay(self.raw) })
    }
}

#[cfg(lenet_tch_graphs)]
impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: freed once; nothing uses `raw` afterwards.
        unsafe { ffi::lc_capture_free(self.raw) }
    }
}

/// Full batches run eagerly before the capture, as PyTorch's CUDA-graph documentation does: they
/// warm up cuDNN (its benchmark included), cuBLAS, the allocator and the gradients on the side
/// stream, and they are the run's first real steps, so the math is the idiomatic run's.
#[cfg(lenet_tch_graphs)]
pub use common::capture::WARMUP_STEPS;

/// The environment variable that sets how many consecutive steps one graph holds.
pub const GRAPH_STEPS_VAR: &str = "LENET_TCH_GRAPH_STEPS";

/// Steps per graph unless [`GRAPH_STEPS_VAR`] says otherwise: one, as PyTorch's own recipe.
pub const DEFAULT_GRAPH_STEPS: i64 = 1;

/// The steps per graph that `value` (the variable's text, if set) asks for: a whole number from 1
/// to 1000.
pub fn graph_steps(value: Option<&str>) -> Result<i64, TrainError> {
    let Some(text) = value else {
        return Ok(DEFAULT_GRAPH_STEPS);
    };
    match text.trim().parse::<i64>() {
        Ok(k) if (1..=1000).contains(&k) => Ok(k),
        _ => Err(TrainError::Backend {
            framework: FRAMEWORK,
            message: format!(
                "{GRAPH_STEPS_VAR}='{text}': give the steps per CUDA graph as a whole number \
                 from 1 to 1000"
            ),
        }),
    }
}

/// The whole training step of a full batch as one CUDA graph, or `steps` consecutive ones: the
/// batches' indices are copied into a fixed buffer, and one replay, for each step, gathers its
/// batch from its part of that buffer, runs forward, loss, backward (gradients zeroed in place)
/// and the fused Adam, adds the loss and the correct count to fixed sums and keeps the step's loss
/// in a fixed slot. Full batches too few for a replay, and a batch of another size (the last,
/// short one), run eagerly.
#[cfg(lenet_tch_graphs)]
pub struct Graphed {
    pub capture: Capture,
    pub captured: bool,
    /// Warm-up steps run so far.
    pub warmed: usize,
    pub batch: i64,
    /// Steps per replay.
    pub steps: i64,
    /// `steps` batches of indices, one after the other.
    pub idx: Tensor,
    pub loss_sum: Tensor,
    pub hits: Tensor,
    /// The replayed steps' losses of this epoch, in slots `0..slot`.
    pub losses: Tensor,
    pub slot: Tensor,
    /// Per step of this epoch: replayed (true) or eager.
    pub replayed: Vec<bool>,
    /// Whether the first replay was checked against the eager steps from the same state.
    pub verified: bool,
    /// What that check found (the report's words), and whether the replay disagreed (no replay
    /// follows then: every step runs eagerly).
    pub check: Option<String>,
    pub fell_back: bool,
}

#[cfg(lenet_tch_graphs)]
impl Graphed {
    pub fn new(
        batch: i64,
        steps: i64,
        train_len: i64,
        device: tch::Device,
    ) -> Result<Self, TrainError> {
        Ok(Self {
            capture: Capture::new()?,
            captured: false,
            warmed: 0,
            batch,
            steps,
            idx: Tensor::zeros([steps * batch], (Kind::Int64, device)),
            loss_sum: Tensor::zeros([], (Kind::Float, device)),
            hits: Tensor::zeros([], (Kind::Int64, device)),
            losses: Tensor::zeros([train_len / batch + 1], (Kind::Float, device)),
            slot: Tensor::zeros([], (Kind::Int64, device)),
            replayed: Vec::new(),
            verified: false,
            check: None,
            fell_back: false,
        })
    }

    pub fn start_epoch(&mut self) {
        let _ = self.loss_sum.zero_();
        let _ = self.hits.zero_();
        let _ = self.slot.zero_();
        self.replayed.clear();
    }

    /// Whether the next steps, with `remaining` examples left in the epoch, are replayed: after
    /// the warm-up, when they hold `steps` full batches.
    pub fn replays(&self, remaining: i64) -> bool {
        !self.fell_back
            && remaining >= self.steps * self.batch
            && (self.captured || self.warmed >= WARMUP_STEPS)
    }

    /// Whether a step of `len` examples is a warm-up step (eager, on the side stream).
    pub fn warms_up(&self, len: i64) -> bool {
        len == self.batch && !self.captured
    }

    /// Every step's loss of this epoch in step order, the replays' from their slots (reads the
    /// device: only for a loss that was not finite).
    pub fn step_losses(&self, eager: Vec<Tensor>) -> Result<Vec<Tensor>, TrainError> {
        let count = i64::try_from(&self.slot).map_err(crate::backend_error)?;
        let mut replayed = self.losses.narrow(0, 0, count).unbind(0).into_iter();
        let mut eager = eager.into_iter();
        Ok(self
            .replayed
            .iter()
            .filter_map(|&r| if r { replayed.next() } else { eager.next() })
            .collect())
    }
}

pub(crate) const FUSED_ADAM: &str = "fused Adam";
pub(crate) const CUDNN_BENCHMARK: &str = "cudnn.benchmark";
pub(crate) use common::capture::CUDA_GRAPH;

/// Applies the tuned profile's settings for `device` and says what they were.
pub(crate) fn tune(device: Device, graph_steps: i64) -> Vec<Tuning> {
    let graph_value = if graph_steps == 1 {
        "whole step".to_string()
    } else {
        format!("{graph_steps} whole steps per graph")
    };
    let mut out = Vec::new();
    out.push(if fused_adam_built() {
        Tuning::applied(
            FUSED_ADAM,
            "at::_fused_adam_",
            "libtorch's fused kernel (PyTorch's Adam(fused=True)) through this crate's C++ shim, \
             step counts on the device, gradients zeroed in place",
        )
    } else {
        Tuning::fell_back(
            FUSED_ADAM,
            "at::_fused_adam_",
            "this build has no C++ shim (libtorch's headers were missing when it was built)",
        )
    });
    if !device.is_cuda() {
        out.push(Tuning::fell_back(
            CUDNN_BENCHMARK,
            "true",
            "the run is on the CPU: cuDNN is CUDA's",
        ));
        out.push(Tuning::fell_back(
            CUDA_GRAPH,
            &graph_value,
            "the run is on the CPU: no CUDA graphs there",
        ));
        return out;
    }
    tch::Cuda::cudnn_set_benchmark(true);
    out.push(Tuning::applied(
        CUDNN_BENCHMARK,
        "true",
        "cuDNN times its convolution algorithms once per shape and keeps the fastest",
    ));
    out.push(if !graphs_built() {
        Tuning::fell_back(
            CUDA_GRAPH,
            &graph_value,
            "this build has no CUDA graph shim (no CUDA libtorch or CUDA headers when it was built)",
        )
    } else if !fused_adam_built() {
        Tuning::fell_back(CUDA_GRAPH, &graph_value, "it needs the fused Adam")
    } else {
        Tuning::applied(
            CUDA_GRAPH,
            &graph_value,
            &format!(
                "gather, forward, loss, backward, fused Adam and the sums of {} captured once \
                 (after 3 eager steps on the capture's side stream) through libtorch's \
                 at::cuda::CUDAGraph and replayed, each replay's indices copied in at once; \
                 {} ({} sets the steps per graph)",
                if graph_steps == 1 {
                    "a full batch".to_string()
                } else {
                    format!("{graph_steps} consecutive full batches")
                },
                if graph_steps == 1 {
                    "a shorter last batch runs eagerly"
                } else {
                    "full batches too few for a replay and a shorter last batch run eagerly"
                },
                GRAPH_STEPS_VAR
            ),
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_per_graph_are_a_whole_number_from_1_to_1000() {
        assert_eq!(graph_steps(None).unwrap(), DEFAULT_GRAPH_STEPS);
        assert_eq!(graph_steps(Some("5")).unwrap(), 5);
        assert_eq!(graph_steps(Some(" 1000 ")).unwrap(), 1000);
        for bad in ["0", "-3", "1001", "five", "2.5", ""] {
            let e = graph_steps(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{GRAPH_STEPS_VAR}='{bad}'")) && e.contains("1 to 1000"),
                "{e}"
            );
        }
    }
}
