//! LeNet2 and LeNet3 on burn 0.23 (burn-nn layers, burn's autodiff and its Adam), on the CPU with
//! the Flex backend and, with the `cuda` feature, on burn's CUDA backend.
//!
//! The network is built from the shared [`ModelSpec`]: a list of 4-d layers (convolutions, ReLU,
//! max-pooling) up to the flatten, then a list of 2-d layers (linear, ReLU). The shared initial
//! weights are copied in, with each linear weight transposed to burn's `[in, out]` layout (and back
//! on export). Both splits are uploaded once; a step gathers its batch on the device with `select`
//! on that epoch's order, and the loss and correct counts are summed on the device and read once per
//! epoch. The optimiser is burn's Adam with epsilon 1e-8 (burn's default is 1e-5).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::harness::{
    BackendInfo, DeviceKind, DeviceRequest, RunSpec, SplitKind, Totals, Trainer,
};
use common::mnist::{Mnist, Split, IMAGE_SIDE};
use common::spec::{Layer, ModelSpec};
use common::weights::{ParamTensor, Weights};
use common::TrainError;

const FRAMEWORK: &str = "burn";
pub const VERSION: &str = "0.23.0-pre.1";

fn backend_error(message: impl std::fmt::Display) -> TrainError {
    TrainError::Backend {
        framework: FRAMEWORK,
        message: message.to_string(),
    }
}

/// burn reports a failed kernel as a long chain ("... Caused by: ... Caused by: <root cause>"): the
/// root cause is what the report's one line needs.
fn read_error(what: &str, e: impl std::fmt::Debug) -> TrainError {
    let text = format!("{e:?}");
    let root = text
        .rsplit("Caused by:")
        .next()
        .unwrap_or(&text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no details");
    backend_error(format!("{what} failed: {root}"))
}

/// Reads a one-element tensor back to the host.
fn scalar(t: Tensor<1>, what: &str) -> Result<f32, TrainError> {
    t.try_into_scalar::<f32>().map_err(|e| read_error(what, e))
}

/// Whether this build can use CUDA and a device is there.
pub fn cuda_available() -> bool {
    cuda::available()
}

#[cfg(feature = "cuda")]
mod cuda {
    use burn::tensor::{Device, DeviceType};

    pub fn device() -> Option<Device> {
        Device::enumerate(DeviceType::Cuda)
            .into_vec()
            .into_iter()
            .next()
    }

    pub fn available() -> bool {
        device().is_some()
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use burn::tensor::Device;

    pub fn available() -> bool {
        false
    }

    pub fn device() -> Option<Device> {
        None
    }
}

/// A layer on 4-d activations `[batch, channels, height, width]`.
#[derive(Module, Debug)]
enum Feature {
    Conv(Conv2d),
    Relu(Relu),
    Pool(MaxPool2d),
}

/// A layer on 2-d activations `[batch, features]`.
#[derive(Module, Debug)]
enum Dense {
    Linear(Linear),
    Relu(Relu),
}

/// The network: the layers before the spec's flatten, then those after it.
#[derive(Module, Debug)]
struct Net {
    features: Vec<Feature>,
    classifier: Vec<Dense>,
}

impl Net {
    /// The layers of `spec` with the values of `weights`, on `device`.
    fn new(spec: &ModelSpec, weights: &Weights, device: &Device) -> Result<Self, TrainError> {
        weights.check(spec)?;
        Self::build(spec, Some(weights), device)
    }

    /// The layers of `spec` with the values of `weights`, or with burn-nn's default initialisers
    /// (from `device`'s generator) when there are none.
    fn build(
        spec: &ModelSpec,
        weights: Option<&Weights>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let mut features = Vec::new();
        let mut classifier = Vec::new();
        let mut flattened = false;
        for layer in &spec.layers {
            match (*layer, flattened) {
                (
                    Layer::Conv2d {
                        name,
                        in_channels,
                        out_channels,
                        kernel,
                        padding,
                    },
                    false,
                ) => {
                    let p = padding;
                    let config = Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
                        .with_padding(PaddingConfig2d::Explicit(p, p, p, p));
                    let Some(weights) = weights else {
                        features.push(Feature::Conv(config.init(device)));
                        continue;
                    };
                    let mut conv = config.with_initializer(Initializer::Zeros).init(device);
                    let [o, i, k] = [out_channels, in_channels, kernel];
                    conv.weight = param(weights, &format!("{name}.weight"), [o, i, k, k], device)?;
                    conv.bias = Some(param(weights, &format!("{name}.bias"), [o], device)?);
                    features.push(Feature::Conv(conv));
                }
                (Layer::Relu, false) => features.push(Feature::Relu(Relu::new())),
                (Layer::MaxPool2, false) => {
                    features.push(Feature::Pool(MaxPool2dConfig::new([2, 2]).init()))
                }
                (Layer::Flatten, false) => flattened = true,
                (
                    Layer::Linear {
                        name,
                        inputs,
                        outputs,
                    },
                    true,
                ) => {
                    let config = LinearConfig::new(inputs, outputs);
                    let Some(weights) = weights else {
                        classifier.push(Dense::Linear(config.init(device)));
                        continue;
                    };
                    let mut linear = config.with_initializer(Initializer::Zeros).init(device);
                    // PyTorch's [out, in] becomes burn's [in, out].
                    let w = weights.get(&format!("{name}.weight"), &[outputs, inputs])?;
                    linear.weight = Param::from_data(
                        TensorData::new(transpose(&w.data, outputs, inputs), [inputs, outputs]),
                        device,
                    );
                    linear.bias = Some(param(weights, &format!("{name}.bias"), [outputs], device)?);
                    classifier.push(Dense::Linear(linear));
                }
                (Layer::Relu, true) => classifier.push(Dense::Relu(Relu::new())),
                (layer, _) => {
                    return Err(TrainError::Weights(format!(
                        "burn: the model {} cannot have {} {} the flatten",
                        spec.kind,
                        layer.describe(),
                        if flattened { "after" } else { "before" }
                    )))
                }
            }
        }
        Ok(Self {
            features,
            classifier,
        })
    }

    // [batch, 1, 28, 28] -> [batch, 10]
    fn forward(&self, xs: Tensor<4>) -> Tensor<2> {
        let xs = self.features.iter().fold(xs, |xs, layer| match layer {
            Feature::Conv(conv) => conv.forward(xs),
            Feature::Relu(relu) => relu.forward(xs),
            Feature::Pool(pool) => pool.forward(xs),
        });
        let xs = xs.flatten(1, 3);
        self.classifier.iter().fold(xs, |xs, layer| match layer {
            Dense::Linear(linear) => linear.forward(xs),
            Dense::Relu(relu) => relu.forward(xs),
        })
    }

    /// The parameters in PyTorch's names and layouts, named after `spec`'s layers.
    fn weights(&self, spec: &ModelSpec) -> Result<Weights, TrainError> {
        let mut out = Weights::default();
        let mut convs = self.features.iter().filter_map(|l| match l {
            Feature::Conv(c) => Some(c),
            _ => None,
        });
        let mut linears = self.classifier.iter().filter_map(|l| match l {
            Dense::Linear(l) => Some(l),
            _ => None,
        });
        let read = |t: Tensor<1>| {
            t.try_into_data()
                .map_err(|e| read_error("reading the weights", e))?
                .try_to_vec::<f32>()
                .map_err(|e| read_error("reading the weights", e))
        };
        for layer in &spec.layers {
            let (name, weight, bias) = match *layer {
                Layer::Conv2d { name, .. } => {
                    let conv = convs.next().ok_or_else(|| missing(name))?;
                    let w = conv.weight.val();
                    let shape = w.dims().to_vec();
                    let bias = conv.bias.as_ref().ok_or_else(|| missing(name))?.val();
                    (
                        name,
                        ParamTensor {
                            data: read(w.flatten(0, 3))?,
                            shape,
                        },
                        bias,
                    )
                }
                Layer::Linear {
                    name,
                    inputs,
                    outputs,
                } => {
                    let linear = linears.next().ok_or_else(|| missing(name))?;
                    let data = read(linear.weight.val().flatten(0, 1))?;
                    let bias = linear.bias.as_ref().ok_or_else(|| missing(name))?.val();
                    let weight = ParamTensor {
                        data: transpose(&data, inputs, outputs),
                        shape: vec![outputs, inputs],
                    };
                    (name, weight, bias)
                }
                _ => continue,
            };
            let shape = bias.dims().to_vec();
            out.tensors.insert(format!("{name}.weight"), weight);
            out.tensors.insert(
                format!("{name}.bias"),
                ParamTensor {
                    data: read(bias)?,
                    shape,
                },
            );
        }
        Ok(out)
    }
}

/// The shared tensor `name` as a burn parameter of `shape`.
fn param<const D: usize>(
    weights: &Weights,
    name: &str,
    shape: [usize; D],
    device: &Device,
) -> Result<Param<Tensor<D>>, TrainError> {
    let t = weights.get(name, &shape)?;
    Ok(Param::from_data(
        TensorData::new(t.data.clone(), shape),
        device,
    ))
}

fn missing(name: &str) -> TrainError {
    TrainError::Weights(format!(
        "burn: the network has no parameters for layer {name}"
    ))
}

/// A row-major `[rows, cols]` matrix as `[cols, rows]`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// One split on a device: images `[n, 1, 28, 28]` f32, labels `[n]` int.
struct DeviceSplit {
    images: Tensor<4>,
    labels: Tensor<1, Int>,
}

impl DeviceSplit {
    fn upload(split: &Split, device: &Device) -> Self {
        let n = split.len();
        let labels: Vec<i64> = split.labels.iter().map(|&l| l as i64).collect();
        Self {
            images: Tensor::from_data(
                TensorData::new(split.normalized_images(), [n, 1, IMAGE_SIDE, IMAGE_SIDE]),
                device,
            ),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// Correct predictions in a batch, as a float scalar tensor on the device.
fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(labels)
        .int()
        .sum()
        .float()
}

/// A burn training run.
pub struct BurnTrainer {
    spec: ModelSpec,
    net: Net,
    opt: ModuleOptimizer,
    loss: CrossEntropyLoss,
    learning_rate: f64,
    /// The autodiff device the training runs on, and the plain device under it.
    train_device: Device,
    device: Device,
    cuda: bool,
    batch_size: usize,
    train: DeviceSplit,
    test: DeviceSplit,
}

/// The initial weights burn-nn's own layers draw (`Conv2dConfig` and `LinearConfig` with their
/// default initialisers), on the Flex device seeded with `seed`.
pub fn native_weights(spec: &ModelSpec, seed: u64) -> Result<Weights, TrainError> {
    let device = Device::flex();
    device.seed(seed);
    Net::build(spec, None, &device)?.weights(spec)
}

fn pick_device(request: DeviceRequest) -> Result<(Device, bool), TrainError> {
    match request {
        DeviceRequest::Cpu => Ok((Device::flex(), false)),
        DeviceRequest::Auto => Ok(match cuda::device() {
            Some(device) => (device, true),
            None => (Device::flex(), false),
        }),
        DeviceRequest::Cuda if !cfg!(feature = "cuda") => Err(TrainError::DeviceUnavailable(
            "burn: CUDA was asked for, but this binary was built without burn's `cuda` feature"
                .into(),
        )),
        DeviceRequest::Cuda => cuda::device().map(|d| (d, true)).ok_or_else(|| {
            TrainError::DeviceUnavailable(
                "burn: CUDA was asked for, but no CUDA device can be opened".into(),
            )
        }),
    }
}

impl BurnTrainer {
    /// Builds the model on the device that `spec` asks for, imports `init`, uploads both splits.
    pub fn new(spec: &RunSpec, data: &Mnist, init: &Weights) -> Result<Self, TrainError> {
        if let Some(threads) = spec.threads {
            // Flex's kernels run on rayon's global pool, which reads this variable when it is
            // first used; each run is its own process.
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        }
        let (device, cuda) = pick_device(spec.device)?;
        let train_device = device.clone().autodiff();
        let model = spec.model.spec();
        let net = Net::new(&model, init, &train_device)?;
        let opt = AdamConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .init();
        Ok(Self {
            spec: model,
            net,
            opt,
            loss: CrossEntropyLossConfig::new().init(&train_device),
            learning_rate: spec.learning_rate,
            train: DeviceSplit::upload(&data.train, &train_device),
            test: DeviceSplit::upload(&data.test, &device),
            train_device,
            device,
            cuda,
            batch_size: spec.batch_size,
        })
    }

    fn epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        let n = order.len();
        let order: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let order = Tensor::<1, Int>::from_data(TensorData::new(order, [n]), &self.train_device);
        let mut loss_sum = Tensor::<1>::zeros([1], &self.device);
        let mut hits = Tensor::<1>::zeros([1], &self.device);
        // Each step's loss stays on the device; read back only if the epoch's sum is not finite.
        let mut losses = Vec::with_capacity(n.div_ceil(self.batch_size));
        let mut start = 0;
        let mut step = 0;
        while start < n {
            let len = self.batch_size.min(n - start);
            let idx = order.clone().narrow(0, start, len);
            let xs = self.train.images.clone().select(0, idx.clone()); // [batch, 1, 28, 28]
            let ys = self.train.labels.clone().select(0, idx); // [batch]
            let logits = self.net.forward(xs); // [batch, 10]
            let loss = self.loss.forward(logits.clone(), ys.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &self.net);
            let net = std::mem::replace(&mut self.net, placeholder());
            self.net = self.opt.step(self.learning_rate, net, grads);
            let loss = loss.inner();
            losses.push(loss.clone());
            loss_sum = loss_sum + loss.mul_scalar(len as f64);
            hits = hits + correct(logits.inner(), ys.inner());
            start += len;
            step += 1;
            progress(step);
        }
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

    fn eval(&self, split: SplitKind) -> Result<Totals, TrainError> {
        let net = self.net.valid();
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

/// An empty network, held for the moment the optimiser owns the real one.
fn placeholder() -> Net {
    Net {
        features: Vec::new(),
        classifier: Vec::new(),
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
        self.net.valid().weights(&self.spec)
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
        ] {
            if on {
                features.push(name.to_string());
            }
        }
        let (device, device_name, threads) = if self.cuda {
            (DeviceKind::Cuda, "cuda:0".to_string(), 1)
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
            framework_version: format!("burn {VERSION}"),
            device,
            device_name,
            threads,
            features,
            notes: vec![
                "optimiser: burn Adam with epsilon 1e-8 (burn's default is 1e-5)".into(),
                if self.cuda {
                    "backend: burn CUDA (cubecl)".into()
                } else {
                    "backend: burn Flex (CPU)".into()
                },
            ],
        }
    }
}

/// Builds a burn trainer behind the framework-free trait.
pub fn trainer(
    spec: &RunSpec,
    data: &Mnist,
    init: &Weights,
) -> Result<Box<dyn Trainer>, TrainError> {
    Ok(Box::new(BurnTrainer::new(spec, data, init)?))
}

/// A forward pass without training on the CPU: logits `[n, 10]` as row-major f32, for checks.
pub fn logits(
    model: &ModelSpec,
    weights: &Weights,
    images: &[f32],
) -> Result<Vec<f32>, TrainError> {
    let device = Device::flex();
    let net = Net::new(model, weights, &device)?;
    let n = images.len() / (IMAGE_SIDE * IMAGE_SIDE);
    let xs = Tensor::<4>::from_data(
        TensorData::new(images.to_vec(), [n, 1, IMAGE_SIDE, IMAGE_SIDE]),
        &device,
    );
    net.forward(xs)
        .flatten::<1>(0, 1)
        .try_into_data()
        .map_err(|e| read_error("reading the logits", e))?
        .try_to_vec::<f32>()
        .map_err(|e| read_error("reading the logits", e))
}

/// Plain loops for measuring what the harness adds and where a step's time goes; not part of the
/// comparison itself.
#[doc(hidden)]
pub mod bench {
    use std::time::{Duration, Instant};

    use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
    use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
    use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
    use common::{Mnist, ModelKind, TrainError, Weights};

    use super::{backend_error, placeholder, DeviceSplit, Net};

    /// A model, its optimiser and the training split on the CPU, as a bare loop would hold them.
    pub struct Bare {
        net: Net,
        opt: ModuleOptimizer,
        loss: CrossEntropyLoss,
        device: Device,
        train: DeviceSplit,
    }

    impl Bare {
        pub fn new(model: ModelKind, data: &Mnist) -> Result<Self, TrainError> {
            let device = Device::flex().autodiff();
            let init = Weights::init(&model.spec(), 0);
            let net = Net::new(&model.spec(), &init, &device)?;
            let opt = AdamConfig::new().with_epsilon(1e-8).init();
            let train = DeviceSplit::upload(&data.train, &device);
            Ok(Self {
                net,
                opt,
                // Built once, as the trainer does.
                loss: CrossEntropyLossConfig::new().init(&device),
                device,
                train,
            })
        }

        fn batch(&self, idx: &[u32]) -> (Tensor<4>, Tensor<1, Int>) {
            let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
            let n = idx.len();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &self.device);
            (
                self.train.images.clone().select(0, idx.clone()),
                self.train.labels.clone().select(0, idx),
            )
        }

        fn loss(&self, xs: Tensor<4>, ys: Tensor<1, Int>) -> Tensor<1> {
            self.loss.forward(self.net.forward(xs), ys)
        }

        fn update(&mut self, grads: GradientsParams) {
            let net = std::mem::replace(&mut self.net, placeholder());
            self.net = self.opt.step(1e-3, net, grads);
        }

        fn sync(&self) -> Result<(), TrainError> {
            self.device
                .sync()
                .map_err(|e| backend_error(format!("{e:?}")))
        }

        /// The training steps of `order` in batches of `batch`, nothing else: no progress, no sums.
        pub fn steps(&mut self, order: &[u32], batch: usize) -> Result<Duration, TrainError> {
            let start = Instant::now();
            for idx in order.chunks(batch) {
                let (xs, ys) = self.batch(idx);
                let loss = self.loss(xs, ys);
                let grads = GradientsParams::from_grads(loss.backward(), &self.net);
                self.update(grads);
            }
            self.sync()?;
            Ok(start.elapsed())
        }

        /// Time in the forward pass (with the loss), the backward pass and the optimiser step over
        /// the steps of `order`, with the device synchronised between them.
        pub fn breakdown(
            &mut self,
            order: &[u32],
            batch: usize,
        ) -> Result<[Duration; 3], TrainError> {
            let mut t = [Duration::ZERO; 3];
            for idx in order.chunks(batch) {
                let (xs, ys) = self.batch(idx);
                self.sync()?;
                let a = Instant::now();
                let loss = self.loss(xs, ys);
                self.sync()?;
                let b = Instant::now();
                let grads = GradientsParams::from_grads(loss.backward(), &self.net);
                self.sync()?;
                let c = Instant::now();
                self.update(grads);
                self.sync()?;
                let d = Instant::now();
                t[0] += b - a;
                t[1] += c - b;
                t[2] += d - c;
            }
            Ok(t)
        }

        /// Each layer of a training step on its own, on the activations a real batch gives it:
        /// the mean time of its forward pass and of its part of the backward pass over `reps`
        /// repetitions, then the same for the loss. burn's backward pass consumes its graph, so
        /// the backward time is (forward, probe and backward) less the forward and less the
        /// probe's own backward, `(y * g).sum()` for a fixed random `g`, timed alone.
        pub fn op_times(&self, idx: &[u32], reps: usize) -> Result<Vec<OpTime>, TrainError> {
            let reps = reps.max(1) as u32;
            let (xs, ys) = self.batch(idx);
            let mut out = Vec::new();
            let mut x = xs.detach();
            let mut first = true;
            for layer in &self.net.features {
                let (time, y) = self.layer_time(&x, first, reps, |x| match layer {
                    super::Feature::Conv(conv) => conv.forward(x),
                    super::Feature::Relu(relu) => relu.forward(x),
                    super::Feature::Pool(pool) => pool.forward(x),
                })?;
                let name = match layer {
                    super::Feature::Conv(_) => "Conv2d",
                    super::Feature::Relu(_) => "ReLU",
                    super::Feature::Pool(_) => "MaxPool2d",
                };
                out.push(time.named(name, x.dims().as_slice(), y.dims().as_slice()));
                x = y;
                first = false;
            }
            let (time, mut h) = self.layer_time(&x, false, reps, |x| x.flatten::<2>(1, 3))?;
            out.push(time.named("Flatten", x.dims().as_slice(), h.dims().as_slice()));
            for layer in &self.net.classifier {
                let (time, y) = self.layer_time(&h, false, reps, |x| match layer {
                    super::Dense::Linear(linear) => linear.forward(x),
                    super::Dense::Relu(relu) => relu.forward(x),
                })?;
                let name = match layer {
                    super::Dense::Linear(_) => "Linear",
                    super::Dense::Relu(_) => "ReLU",
                };
                out.push(time.named(name, h.dims().as_slice(), y.dims().as_slice()));
                h = y;
            }
            let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(&self.device);
            let logits = h.require_grad();
            let forward = self.mean(reps, &mut || {
                let _ = loss.forward(logits.clone(), ys.clone());
            })?;
            let total = self.mean(reps, &mut || {
                let _ = loss.forward(logits.clone(), ys.clone()).backward();
            })?;
            out.push(OpTime {
                name: format!("cross_entropy {:?}", logits.dims()),
                forward,
                backward: total.saturating_sub(forward),
            });
            Ok(out)
        }

        fn mean(&self, reps: u32, f: &mut dyn FnMut()) -> Result<Duration, TrainError> {
            f(); // warm-up
            self.sync()?;
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            self.sync()?;
            Ok(start.elapsed() / reps)
        }

        /// Forward and backward time of `f` on `x` (which needs no gradient when `first`), and
        /// its output, detached.
        fn layer_time<const D: usize, const E: usize>(
            &self,
            x: &Tensor<D>,
            first: bool,
            reps: u32,
            f: impl Fn(Tensor<D>) -> Tensor<E>,
        ) -> Result<(LayerTime, Tensor<E>), TrainError> {
            let input = if first {
                x.clone().detach()
            } else {
                x.clone().detach().require_grad()
            };
            let forward = self.mean(reps, &mut || {
                let _ = f(input.clone());
            })?;
            let y = f(input.clone()).detach();
            let g = Tensor::<E>::random(y.shape(), Distribution::Normal(0.0, 1.0), &self.device);
            let total = self.mean(reps, &mut || {
                let _ = (f(input.clone()) * g.clone()).sum().backward();
            })?;
            let probe = self.mean(reps, &mut || {
                let v = y.clone().require_grad();
                let _ = (v * g.clone()).sum().backward();
            })?;
            let backward = total.saturating_sub(forward).saturating_sub(probe);
            Ok((LayerTime { forward, backward }, y))
        }
    }

    struct LayerTime {
        forward: Duration,
        backward: Duration,
    }

    impl LayerTime {
        fn named(self, layer: &str, input: &[usize], output: &[usize]) -> OpTime {
            OpTime {
                name: format!("{layer} {input:?} -> {output:?}"),
                forward: self.forward,
                backward: self.backward,
            }
        }
    }

    /// One layer's share of a training step (see [`Bare::op_times`]).
    pub struct OpTime {
        pub name: String,
        pub forward: Duration,
        pub backward: Duration,
    }
}

#[cfg(test)]
mod tests {
    struct Chain;

    impl std::fmt::Debug for Chain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "Execution(An error happened during execution\nCaused by:\n  A launch error \
                 happened\nCaused by:\n  compiling 'k' for sm_90: libdevice.10.bc was not found\n\
                 Backtrace:\nNo backtrace available)",
            )
        }
    }

    #[test]
    fn a_kernel_failure_is_reported_by_its_root_cause() {
        let e = super::read_error("reading the epoch's loss", Chain).to_string();
        assert_eq!(
            e,
            "burn: reading the epoch's loss failed: compiling 'k' for sm_90: libdevice.10.bc was not found"
        );
    }
}
