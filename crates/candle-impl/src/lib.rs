//! LeNet2 and LeNet3 on candle 0.11 (candle-core and candle-nn), on the CPU and, with the `cuda`
//! feature, on CUDA.
//!
//! The implementation is idiomatic candle, as a user would write it: the networks are structs of
//! candle-nn's `Conv2d` and `Linear` built through a `VarBuilder` over a `VarMap` (`model.rs`; the
//! variable names are the shared PyTorch names), candle's own autograd, and candle-nn's `AdamW`
//! with weight decay 0 — plain Adam, as the recipe says (candle's default decay is 0.01). Both
//! splits are uploaded once; a step gathers its batch with `index_select` on the device, and the
//! loss and correct counts are summed there and read once per epoch.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Module, Optimizer, ParamsAdamW, VarBuilder, VarMap};
mod bare;
mod captured;
pub mod model;

use captured::{Captured, DeviceAdam, Replay, StepState};

use model::Net;
pub use model::{first_max_pool, Pool};

use common::bare::BareLoop;
use common::framework::{Colour, CudaBuild, Framework, FrameworkDefaults};
use common::harness::{
    BackendInfo, DeviceKind, DeviceRequest, Profile, RunSpec, Totals, Trainer, Tuning,
};
use common::mnist::{Mnist, Split, SplitKind, IMAGE_SIDE};
use common::spec::ModelKind;
use common::weights::{ParamTensor, Weights};
use common::TrainError;

const FRAMEWORK: &str = "candle";
pub const VERSION: &str = "0.11.1";

fn backend_error(e: candle_core::Error) -> TrainError {
    TrainError::Backend {
        framework: FRAMEWORK,
        message: e.to_string(),
    }
}

/// Whether this build can use CUDA and a device is there.
pub fn cuda_available() -> bool {
    candle_core::utils::cuda_is_available() && Device::new_cuda(0).is_ok()
}

impl Pool {
    /// The name the comparison gives a candle run with this pooling.
    pub fn framework(self) -> &'static str {
        match self {
            Pool::MaxPool2d => FRAMEWORK,
            Pool::FirstMax => "candle-firstmax",
        }
    }
}

/// One split on the device: images `[n, 1, 28, 28]` f32, labels `[n]` u32.
struct DeviceSplit {
    images: Tensor,
    labels: Tensor,
}

impl DeviceSplit {
    fn upload(split: &Split, device: &Device) -> candle_core::Result<Self> {
        let n = split.len();
        let labels: Vec<u32> = split.labels.iter().map(|&l| l as u32).collect();
        Ok(Self {
            images: Tensor::from_vec(
                split.normalized_images(),
                (n, 1, IMAGE_SIDE, IMAGE_SIDE),
                device,
            )?,
            labels: Tensor::from_vec(labels, n, device)?,
        })
    }

    fn len(&self) -> usize {
        self.labels.dims1().unwrap_or(0)
    }
}

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

/// The device `request` asks for; on CUDA, with a stream of its own where `own_stream` (a CUDA
/// graph cannot be recorded on the legacy default stream).
fn pick_device(request: DeviceRequest, own_stream: bool) -> Result<Device, TrainError> {
    let cuda = || {
        if own_stream {
            Device::new_cuda_with_stream(0)
        } else {
            Device::new_cuda(0)
        }
    };
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Auto => Ok(cuda().unwrap_or(Device::Cpu)),
        DeviceRequest::Cuda if !candle_core::utils::cuda_is_available() => {
            Err(TrainError::DeviceUnavailable(
                "candle: CUDA was asked for, but this binary was built without candle's `cuda` feature"
                    .into(),
            ))
        }
        DeviceRequest::Cuda => cuda().map_err(|e| {
            TrainError::DeviceUnavailable(format!(
                "candle: CUDA was asked for, but no CUDA device can be opened: {e}"
            ))
        }),
    }
}

fn build(
    model: ModelKind,
    weights: &Weights,
    device: &Device,
    pool: Pool,
) -> Result<(VarMap, Net), TrainError> {
    weights.check(&model.spec())?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let net = Net::new(model, vb, pool).map_err(backend_error)?;
    load_weights(&varmap, weights, device)?;
    Ok((varmap, net))
}

/// The variables of `varmap` in PyTorch's names and layouts (which are candle's own).
/// The variables of `varmap` with their names, in the names' order.
fn named_vars(varmap: &VarMap) -> Result<Vec<(String, candle_core::Var)>, TrainError> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Weights("the variable map is poisoned".into()))?;
    let mut named: Vec<(String, candle_core::Var)> =
        vars.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

fn export(varmap: &VarMap) -> Result<Weights, TrainError> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Weights("the variable map is poisoned".into()))?;
    let mut out = Weights::default();
    for (name, var) in vars.iter() {
        let t = var.as_tensor();
        let data = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(backend_error)?;
        out.tensors.insert(
            name.clone(),
            ParamTensor {
                shape: t.dims().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// The initial weights candle-nn's own layers draw (`conv2d` and `linear` through a `VarBuilder`
/// over a `VarMap`). candle's CPU generator cannot be seeded (`Device::set_seed` refuses), so these
/// differ from call to call.
fn native_weights(model: ModelKind) -> Result<Weights, TrainError> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Net::new(model, vb, Pool::MaxPool2d).map_err(backend_error)?;
    export(&varmap)
}

fn load_weights(varmap: &VarMap, weights: &Weights, device: &Device) -> Result<(), TrainError> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Weights("the variable map is poisoned".into()))?;
    if vars.len() != weights.tensors.len() {
        return Err(TrainError::Weights(format!(
            "the candle model has {} tensors, the weights {}",
            vars.len(),
            weights.tensors.len()
        )));
    }
    for (name, var) in vars.iter() {
        let t = weights.get(name, var.dims())?;
        let value =
            Tensor::from_vec(t.data.clone(), t.shape.as_slice(), device).map_err(backend_error)?;
        var.set(&value).map_err(backend_error)?;
    }
    Ok(())
}

/// Correct predictions in a batch, as an f32 scalar on the device.
fn correct(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .sum_all()
}

/// The recipe's Adam over the variables of `varmap`: candle offers AdamW only, so weight decay 0
/// makes it Adam (betas 0.9/0.999, eps 1e-8).
fn adam(varmap: &VarMap, learning_rate: f64) -> Result<candle_nn::AdamW, TrainError> {
    candle_nn::AdamW::new(varmap.all_vars(), adam_params(learning_rate)).map_err(backend_error)
}

/// The recipe's Adam as candle's AdamW parameters.
fn adam_params(learning_rate: f64) -> ParamsAdamW {
    ParamsAdamW {
        lr: learning_rate,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    }
}

const DEVICE_ADAM: &str = "device-side Adam";
const CUDA_GRAPH: &str = "CUDA graph";
const CUDA_GRAPH_VALUE: &str = "whole step (cudarc stream capture)";

/// The device-side Adam's entry.
fn device_adam_tuning() -> Tuning {
    Tuning::applied(
        DEVICE_ADAM,
        "step count and bias corrections on the device",
        "candle-nn's AdamW arithmetic (weight decay 0, eps 1e-8) with its step count and \
         1/(1-β^t) computed by tensor operations on the device, moments and parameters written \
         back with Var::set: nothing in a step is a host value that changes from step to step",
    )
}

/// The CUDA graph's entry: how the tuned step's full batches ran.
fn graph_tuning(replay: &Replay, check: Option<&str>) -> Tuning {
    let checked = |note: &str| match check {
        Some(check) => format!("{note}; {check}"),
        None => note.to_string(),
    };
    match replay {
        Replay::Graph => Tuning::applied(
            CUDA_GRAPH,
            CUDA_GRAPH_VALUE,
            &checked(
                "gather, forward, loss, backward, device-side Adam and the epoch's sums of a full \
                 batch recorded once through cudarc's stream capture (after 3 warm-up steps, on a \
                 stream of its own, event tracking off, candle's shape uploads cached) and \
                 replayed; a shorter last batch runs eagerly",
            ),
        ),
        Replay::Eager(why) => Tuning::fell_back(CUDA_GRAPH, CUDA_GRAPH_VALUE, &checked(why)),
        Replay::FellBack(why) => Tuning::fell_back(CUDA_GRAPH, CUDA_GRAPH_VALUE, why),
        Replay::Pending => Tuning::fell_back(
            CUDA_GRAPH,
            CUDA_GRAPH_VALUE,
            "no run had more than 3 full batches (the warm-up) to record it with",
        ),
    }
}

/// glibc's mmap threshold and trim threshold in the tuned profile on the CPU: buffers up to 256 MiB
/// come from the heap and freed memory stays mapped up to 1 GiB, so that the megabyte buffers a
/// candle step allocates afresh for each op are reused instead of being unmapped and faulted back
/// in (docs/frameworks.md, "Where candle's time goes": a LeNet3 step from 76.5 to 63.7 ms on the 2-core machine).
pub const MMAP_THRESHOLD: usize = 256 << 20;
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Applies the tuned profile's settings for `device` (process-wide: a `lenet train` process runs
/// one trainer) and says what they were.
fn tune(device: &Device) -> Vec<Tuning> {
    const SETTING: &str = "glibc malloc mmap/trim thresholds";
    let value = format!(
        "{} MiB / {} MiB",
        MMAP_THRESHOLD >> 20,
        TRIM_THRESHOLD >> 20
    );
    if !matches!(device, Device::Cpu) {
        return vec![Tuning::fell_back(
            SETTING,
            &value,
            "the run is on CUDA, where candle's buffers are the device's",
        )];
    }
    match set_malloc_thresholds() {
        Ok(()) => vec![Tuning::applied(
            SETTING,
            &value,
            "mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD): freed buffers are reused, not unmapped",
        )],
        Err(why) => vec![Tuning::fell_back(SETTING, &value, &why)],
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_malloc_thresholds() -> Result<(), String> {
    // SAFETY: mallopt only changes the allocator's parameters; it is called with glibc's own
    // constants and in-range values.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    };
    if ok {
        Ok(())
    } else {
        Err("glibc's mallopt refused the values".into())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_malloc_thresholds() -> Result<(), String> {
    Err("not glibc: its allocator has no such setting here".into())
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
            framework_version: format!("candle-core {VERSION}, candle-nn {VERSION}"),
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

/// A forward pass without training on the CPU: logits `[n, 10]` as row-major f32, for checks.
fn logits(
    model: ModelKind,
    weights: &Weights,
    images: &[f32],
    pool: Pool,
) -> Result<Vec<f32>, TrainError> {
    let device = Device::Cpu;
    let (_varmap, net) = build(model, weights, &device, pool)?;
    let n = images.len() / (IMAGE_SIDE * IMAGE_SIDE);
    let xs = Tensor::from_slice(images, (n, 1, IMAGE_SIDE, IMAGE_SIDE), &device)
        .map_err(backend_error)?;
    net.forward(&xs)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(backend_error)
}

/// candle in the registry: one value per pooling.
pub struct Candle {
    pub pool: Pool,
}

/// candle as its users write it (`max_pool2d`).
pub static CANDLE: Candle = Candle {
    pool: Pool::MaxPool2d,
};

/// candle with a max-pool whose gradient is PyTorch's, held to step parity.
pub static CANDLE_FIRSTMAX: Candle = Candle {
    pool: Pool::FirstMax,
};

impl Framework for Candle {
    fn name(&self) -> &'static str {
        self.pool.framework()
    }

    fn trainer(
        &self,
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
    ) -> Result<Box<dyn Trainer>, TrainError> {
        Ok(Box::new(CandleTrainer::new(spec, data, init, self.pool)?))
    }

    /// candle's CPU generator cannot be seeded, so `seed` is not used.
    fn native_weights(&self, model: ModelKind, _seed: u64) -> Result<Weights, TrainError> {
        native_weights(model)
    }

    fn logits(
        &self,
        model: ModelKind,
        weights: &Weights,
        images: &[f32],
    ) -> Result<Vec<f32>, TrainError> {
        logits(model, weights, images, self.pool)
    }

    fn cuda_available(&self) -> bool {
        cuda_available()
    }

    fn defaults(&self) -> FrameworkDefaults {
        FrameworkDefaults::row([
            FRAMEWORK,
            "normal, sd √2/√fan_in (Kaiming normal, ReLU gain)",
            "uniform ±1/√in_channels",
            "normal, sd √2/√inputs (Kaiming normal, ReLU gain)",
            "uniform ±1/√inputs",
            "AdamW only, eps 1e-8",
            "0.01 (decoupled)",
            "no (the CPU generator refuses a seed)",
        ])
    }

    fn model_source(&self) -> &'static str {
        "crates/candle-impl/src/model.rs"
    }

    fn colour(&self) -> Colour {
        match self.pool {
            Pool::MaxPool2d => [31, 119, 180],
            Pool::FirstMax => [23, 190, 207],
        }
    }

    /// candle's CUDA kernels and cuDNN, in the main CUDA binary.
    fn cuda_build(&self) -> CudaBuild {
        CudaBuild {
            features: vec!["candle-impl/cudnn".into()],
            own_binary: false,
            llvm: false,
        }
    }

    /// The first-maximum pooling is a parity check, not what candle's users write.
    fn compared_by_default(&self) -> bool {
        self.pool == Pool::MaxPool2d
    }

    fn bare(&self, model: ModelKind, data: &Mnist) -> Result<Box<dyn BareLoop>, TrainError> {
        Ok(Box::new(bare::Bare::new(model, self.pool, data)?))
    }

    /// candle 0.11.1's `max_pool2d` backward pass does not route gradients as PyTorch's does (see
    /// `tests/pool.rs`), so idiomatic candle's steps drift from tch's and only its logits are held to
    /// parity; `candle-firstmax`, which differs from it only in the pooling, is held to the steps
    /// too, which checks everything else (convolutions, linear layers, loss, Adam, data order).
    fn step_tolerance(&self, _model: ModelKind, _step: usize) -> Option<f64> {
        match self.pool {
            Pool::MaxPool2d => None,
            Pool::FirstMax => Some(1e-3),
        }
    }
}
