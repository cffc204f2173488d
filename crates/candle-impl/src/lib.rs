//! LeNet2 and LeNet3 on candle 0.11 (candle-core and candle-nn), on the CPU and, with the `cuda`
//! feature, on CUDA.
//!
//! The implementation is idiomatic candle, as a user would write it: candle-nn's `Conv2d` and
//! `Linear` built through a `VarBuilder` over a `VarMap` (so the variable names are the shared
//! PyTorch names), candle's own autograd, and candle-nn's `AdamW` with weight decay 0 — plain Adam,
//! as the recipe says (candle's default decay is 0.01). Both splits are uploaded once; a step gathers
//! its batch with `index_select` on the device, and the loss and correct counts are summed there and
//! read once per epoch.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use common::harness::{
    BackendInfo, DeviceKind, DeviceRequest, RunSpec, SplitKind, Totals, Trainer,
};
use common::mnist::{Mnist, Split, IMAGE_SIDE};
use common::spec::{Layer, ModelSpec};
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

/// How 2×2 max-pooling is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// candle's `max_pool2d`, as a user writes it. Its backward pass (candle 0.11.1) scales the
    /// gradient of a window's single maximum by 1/4 and gives every tied maximum k/4 of it.
    MaxPool2d,
    /// The window's first maximum picked with `argmax` and taken with `gather`, whose backward pass
    /// routes the whole gradient to that one element, as PyTorch does.
    FirstMax,
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

enum Op {
    Conv(Conv2d),
    Linear(Linear),
    Relu,
    MaxPool2(Pool),
    Flatten,
}

/// 2×2 max-pooling with stride 2 whose gradient goes to the first maximum of each window.
pub fn first_max_pool(xs: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    let windows = xs
        .narrow(2, 0, 2 * oh)?
        .narrow(3, 0, 2 * ow)?
        .reshape((b, c, oh, 2, ow, 2))?
        .permute((0, 1, 2, 4, 3, 5))? // [b, c, oh, ow, 2, 2]
        .reshape((b, c, oh, ow, 4))?;
    let first = windows.argmax_keepdim(D::Minus1)?; // [b, c, oh, ow, 1]
    windows.gather(&first, D::Minus1)?.squeeze(D::Minus1)
}

/// The network as a list of operations, in the order of the spec's layer table.
struct Net {
    ops: Vec<Op>,
}

impl Net {
    fn new(vb: &VarBuilder, spec: &ModelSpec, pool: Pool) -> candle_core::Result<Self> {
        let ops = spec
            .layers
            .iter()
            .map(|layer| {
                Ok(match *layer {
                    Layer::Conv2d {
                        name,
                        in_channels,
                        out_channels,
                        kernel,
                        padding,
                    } => Op::Conv(candle_nn::conv2d(
                        in_channels,
                        out_channels,
                        kernel,
                        Conv2dConfig {
                            padding,
                            ..Default::default()
                        },
                        vb.pp(name),
                    )?),
                    Layer::Linear {
                        name,
                        inputs,
                        outputs,
                    } => Op::Linear(candle_nn::linear(inputs, outputs, vb.pp(name))?),
                    Layer::Relu => Op::Relu,
                    Layer::MaxPool2 => Op::MaxPool2(pool),
                    Layer::Flatten => Op::Flatten,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { ops })
    }
}

impl Module for Op {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Op::Conv(conv) => xs.apply(conv),
            Op::Linear(linear) => xs.apply(linear),
            Op::Relu => xs.relu(),
            Op::MaxPool2(Pool::MaxPool2d) => xs.max_pool2d(2),
            Op::MaxPool2(Pool::FirstMax) => first_max_pool(xs),
            Op::Flatten => xs.flatten_from(1),
        }
    }
}

impl Module for Net {
    // [batch, 1, 28, 28] -> [batch, 10]
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.ops.iter().try_fold(xs.clone(), |xs, op| xs.apply(op))
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
    varmap: VarMap,
    net: Net,
    opt: candle_nn::AdamW,
    device: Device,
    batch_size: usize,
    train: DeviceSplit,
    test: DeviceSplit,
}

fn pick_device(request: DeviceRequest) -> Result<Device, TrainError> {
    let cuda = || Device::new_cuda(0);
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
    model: &ModelSpec,
    weights: &Weights,
    device: &Device,
    pool: Pool,
) -> Result<(VarMap, Net), TrainError> {
    weights.check(model)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let net = Net::new(&vb, model, pool).map_err(backend_error)?;
    load_weights(&varmap, weights, device)?;
    Ok((varmap, net))
}

/// The variables of `varmap` in PyTorch's names and layouts (which are candle's own).
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
pub fn native_weights(spec: &ModelSpec) -> Result<Weights, TrainError> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Net::new(&vb, spec, Pool::MaxPool2d).map_err(backend_error)?;
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

impl CandleTrainer {
    /// Builds the model on the device that `spec` asks for, imports `init`, uploads both splits.
    pub fn new(
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
        pool: Pool,
    ) -> Result<Self, TrainError> {
        if let Some(threads) = spec.threads {
            // candle's CPU kernels size their rayon pool from this variable; each run is its own
            // process, so setting it before the first tensor operation is enough.
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
        let device = pick_device(spec.device)?;
        let (varmap, net) = build(&spec.model.spec(), init, &device, pool)?;
        let opt = candle_nn::AdamW::new(
            varmap.all_vars(),
            ParamsAdamW {
                lr: spec.learning_rate,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        )
        .map_err(backend_error)?;
        let upload = |s| DeviceSplit::upload(s, &device).map_err(backend_error);
        Ok(Self {
            pool,
            train: upload(&data.train)?,
            test: upload(&data.test)?,
            varmap,
            net,
            opt,
            batch_size: spec.batch_size,
            device,
        })
    }

    fn epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> candle_core::Result<Totals> {
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
            let logits = self.net.forward(&xs)?; // [batch, 10]
            let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
            self.opt.backward_step(&loss)?;
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

    fn eval(&self, split: SplitKind) -> candle_core::Result<Totals> {
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
            let logits = self.net.forward(&xs)?.detach();
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
                "optimiser: candle-nn AdamW with weight_decay 0 (plain Adam), eps 1e-8".into(),
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
        }
    }
}

/// Builds a candle trainer behind the framework-free trait.
pub fn trainer(
    spec: &RunSpec,
    data: &Mnist,
    init: &Weights,
    pool: Pool,
) -> Result<Box<dyn Trainer>, TrainError> {
    Ok(Box::new(CandleTrainer::new(spec, data, init, pool)?))
}

/// A forward pass without training on the CPU: logits `[n, 10]` as row-major f32, for checks.
pub fn logits(
    model: &ModelSpec,
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

/// Plain loops for measuring what the harness adds and where a step's time goes; not part of the
/// comparison itself.
#[doc(hidden)]
pub mod bench {
    use std::time::{Duration, Instant};

    use candle_core::{Device, Tensor, Var};
    use candle_nn::{Module, Optimizer, ParamsAdamW};
    use common::{Mnist, ModelKind, Weights};

    use super::{backend_error, build, DeviceSplit, Op, Pool};
    use common::TrainError;

    /// A model, its optimiser and the training split on the CPU, as a bare loop would hold them.
    pub struct Bare {
        model: ModelKind,
        net: super::Net,
        opt: candle_nn::AdamW,
        train: DeviceSplit,
    }

    impl Bare {
        pub fn new(model: ModelKind, pool: Pool, data: &Mnist) -> Result<Self, TrainError> {
            let device = Device::Cpu;
            let init = Weights::init(&model.spec(), 0);
            let (varmap, net) = build(&model.spec(), &init, &device, pool)?;
            let params = ParamsAdamW {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            };
            let opt = candle_nn::AdamW::new(varmap.all_vars(), params).map_err(backend_error)?;
            let train = DeviceSplit::upload(&data.train, &device).map_err(backend_error)?;
            Ok(Self {
                model,
                net,
                opt,
                train,
            })
        }

        fn batch(&self, idx: &[u32]) -> candle_core::Result<(Tensor, Tensor)> {
            let idx = Tensor::from_slice(idx, idx.len(), &Device::Cpu)?;
            Ok((
                self.train.images.index_select(&idx, 0)?,
                self.train.labels.index_select(&idx, 0)?,
            ))
        }

        fn step(&mut self, idx: &[u32]) -> candle_core::Result<()> {
            let (xs, ys) = self.batch(idx)?;
            let loss = candle_nn::loss::cross_entropy(&self.net.forward(&xs)?, &ys)?;
            self.opt.backward_step(&loss)
        }

        /// The training steps of `order` in batches of `batch`, nothing else: no progress, no sums.
        pub fn steps(&mut self, order: &[u32], batch: usize) -> Result<Duration, TrainError> {
            let start = Instant::now();
            for idx in order.chunks(batch) {
                self.step(idx).map_err(backend_error)?;
            }
            Ok(start.elapsed())
        }

        fn timed_step(&mut self, idx: &[u32], t: &mut [Duration; 3]) -> candle_core::Result<()> {
            let (xs, ys) = self.batch(idx)?;
            let a = Instant::now();
            let loss = candle_nn::loss::cross_entropy(&self.net.forward(&xs)?, &ys)?;
            let b = Instant::now();
            let grads = loss.backward()?;
            let c = Instant::now();
            self.opt.step(&grads)?;
            let d = Instant::now();
            t[0] += b - a;
            t[1] += c - b;
            t[2] += d - c;
            Ok(())
        }

        /// Time in the forward pass (with the loss), the backward pass and the optimiser step over
        /// the steps of `order`.
        pub fn breakdown(
            &mut self,
            order: &[u32],
            batch: usize,
        ) -> Result<[Duration; 3], TrainError> {
            let mut t = [Duration::ZERO; 3];
            for idx in order.chunks(batch) {
                self.timed_step(idx, &mut t).map_err(backend_error)?;
            }
            Ok(t)
        }

        /// Each layer of a training step on its own, on the activations a real batch gives it:
        /// the mean time of its forward pass and of its part of the backward pass over `reps`
        /// repetitions, then the same for the loss. For convolutions, `parts` times the two
        /// operations candle's backward pass calls for them, alone.
        pub fn op_times(&self, idx: &[u32], reps: usize) -> Result<Vec<OpTime>, TrainError> {
            self.op_times_inner(idx, reps.max(1)).map_err(backend_error)
        }

        fn op_times_inner(&self, idx: &[u32], reps: usize) -> candle_core::Result<Vec<OpTime>> {
            let mean = |f: &mut dyn FnMut() -> candle_core::Result<()>| {
                f()?; // warm-up
                let start = Instant::now();
                for _ in 0..reps {
                    f()?;
                }
                Ok::<_, candle_core::Error>(start.elapsed() / reps as u32)
            };
            // A layer's output `y` is turned into a scalar with a fixed random `g` as
            // `flatten(y) · g`, a matmul whose backward pass hands the layer a contiguous gradient
            // and costs little; that probe is timed on its own and taken off. (`(y * g).sum()`
            // would not do: candle's backward of a sum multiplies by a stride-0 broadcast, which
            // takes its slow strided path and costs more than most layers.)
            let probe = |y: &Tensor, g: &Tensor| y.flatten_all()?.unsqueeze(0)?.matmul(g);
            let probe_backward = |y: &Tensor, g: &Tensor| {
                let v = Var::from_tensor(&y.detach())?;
                let loss = probe(v.as_tensor(), g)?;
                mean(&mut || loss.backward().map(drop))
            };
            let (xs, ys) = self.batch(idx)?;
            let layers = self.model.spec().layers;
            let mut out = Vec::new();
            let mut x = xs;
            for (i, (op, layer)) in self.net.ops.iter().zip(layers).enumerate() {
                // The images need no gradient; every later activation does.
                let input = if i == 0 {
                    x.clone()
                } else {
                    Var::from_tensor(&x.detach())?.as_tensor().clone()
                };
                let forward = mean(&mut || input.apply(op).map(drop))?;
                let y = input.apply(op)?;
                let g = Tensor::randn(0f32, 1f32, (y.elem_count(), 1), y.device())?;
                let loss = probe(&y, &g)?;
                let with_probe = mean(&mut || loss.backward().map(drop))?;
                let backward = with_probe.saturating_sub(probe_backward(&y, &g)?);
                let mut parts = Vec::new();
                if let Op::Conv(conv) = op {
                    let g = g.reshape(y.shape())?;
                    let kernel = conv.weight();
                    let padding = conv.config().padding;
                    let k = kernel.dim(2)?;
                    let out_padding = input.dim(2)? - ((g.dim(2)? - 1) + (k - 1) + 1 - 2 * padding);
                    parts.push((
                        "conv_transpose2d (input gradient)",
                        mean(&mut || {
                            g.conv_transpose2d(kernel, padding, out_padding, 1, 1)
                                .map(drop)
                        })?,
                    ));
                    parts.push((
                        "conv2d (kernel gradient)",
                        mean(&mut || {
                            input
                                .transpose(0, 1)?
                                .conv2d(&g.transpose(0, 1)?, padding, 1, 1, 1)?
                                .transpose(0, 1)
                                .map(drop)
                        })?,
                    ));
                    parts.push((
                        "sum over batch and space (bias gradient)",
                        mean(&mut || g.sum_keepdim(&[0usize, 2, 3][..]).map(drop))?,
                    ));
                }
                out.push(OpTime {
                    name: format!("{} {:?} -> {:?}", layer.describe(), x.dims(), y.dims()),
                    forward,
                    backward,
                    parts,
                });
                x = y.detach();
            }
            let logits = Var::from_tensor(&x)?;
            let forward =
                mean(&mut || candle_nn::loss::cross_entropy(logits.as_tensor(), &ys).map(drop))?;
            let loss = candle_nn::loss::cross_entropy(logits.as_tensor(), &ys)?;
            let backward = mean(&mut || loss.backward().map(drop))?;
            out.push(OpTime {
                name: format!("cross_entropy {:?}", x.dims()),
                forward,
                backward,
                parts: Vec::new(),
            });
            Ok(out)
        }
    }

    /// One layer's share of a training step (see [`Bare::op_times`]).
    pub struct OpTime {
        pub name: String,
        pub forward: Duration,
        pub backward: Duration,
        pub parts: Vec<(&'static str, Duration)>,
    }
}
