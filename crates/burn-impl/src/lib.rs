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
mod bare;

use common::bare::BareLoop;
use common::framework::{Colour, CudaBuild, Framework, FrameworkDefaults};
use common::harness::{BackendInfo, DeviceKind, DeviceRequest, RunSpec, Totals, Trainer};
use common::mnist::{Mnist, Split, SplitKind, IMAGE_SIDE};
use common::spec::{Layer, ModelKind, ModelSpec};
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
fn native_weights(spec: &ModelSpec, seed: u64) -> Result<Weights, TrainError> {
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

/// The recipe's Adam: betas 0.9/0.999 and eps 1e-8 (burn's default eps is 1e-5).
fn adam() -> ModuleOptimizer {
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
        let train_device = device.clone().autodiff();
        let model = spec.model.spec();
        let net = Net::new(&model, init, &train_device)?;
        let opt = adam();
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

/// A forward pass without training on the CPU: logits `[n, 10]` as row-major f32, for checks.
fn logits(model: &ModelSpec, weights: &Weights, images: &[f32]) -> Result<Vec<f32>, TrainError> {
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

/// burn in the registry.
pub struct Burn;

/// The registry's value for burn.
pub static BURN: Burn = Burn;

impl Framework for Burn {
    fn name(&self) -> &'static str {
        FRAMEWORK
    }

    fn trainer(
        &self,
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
    ) -> Result<Box<dyn Trainer>, TrainError> {
        Ok(Box::new(BurnTrainer::new(spec, data, init)?))
    }

    fn native_weights(&self, model: &ModelSpec, seed: u64) -> Result<Weights, TrainError> {
        native_weights(model, seed)
    }

    fn logits(
        &self,
        model: &ModelSpec,
        weights: &Weights,
        images: &[f32],
    ) -> Result<Vec<f32>, TrainError> {
        logits(model, weights, images)
    }

    fn cuda_available(&self) -> bool {
        cuda_available()
    }

    fn defaults(&self) -> FrameworkDefaults {
        FrameworkDefaults::row([
            FRAMEWORK,
            "uniform ±1/√fan_in (Kaiming uniform, gain 1/√3)",
            "uniform ±1/√fan_in",
            "uniform ±1/√inputs (Kaiming uniform, gain 1/√3)",
            "uniform ±1/√inputs",
            "Adam, eps 1e-5",
            "none",
            "yes (Device::seed)",
        ])
    }

    fn colour(&self) -> Colour {
        [44, 160, 44]
    }

    /// burn's CUDA backend loads the CUDA libraries at run time, which candle's linking excludes
    /// from their binary, and compiles its kernels with LLVM.
    fn cuda_build(&self) -> CudaBuild {
        CudaBuild {
            features: vec!["burn-impl/cuda".into()],
            own_binary: true,
            llvm: true,
        }
    }

    fn bare(&self, model: ModelKind, data: &Mnist) -> Result<Box<dyn BareLoop>, TrainError> {
        Ok(Box::new(bare::Bare::new(model, data)?))
    }

    /// burn follows tch within 1e-3 for all 20 LeNet2 steps and the first 10 LeNet3 steps. After
    /// that LeNet3 drifts to about 3e-3: a few of its fc1 gradients are of the order of 1e-9, made
    /// of f32 rounding in conv3's output, and Adam (eps 1e-8) turns each into an update of a few
    /// percent of the learning rate whatever its exact value; burn's sums round differently from
    /// libtorch's, so those updates differ (README, "burn").
    fn step_tolerance(&self, model: ModelKind, step: usize) -> Option<f64> {
        Some(match model {
            ModelKind::LeNet3 if step > 10 => 5e-3,
            _ => 1e-3,
        })
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
