//! LeNet2 and LeNet3 as burn's examples write a model: a `#[derive(Module)]` struct with named
//! fields, a `#[derive(Config)]` struct whose `init` builds it on a device, and a `forward`. The
//! shared weights go in and out by field name with burn-store's safetensors store and its PyTorch
//! adapter (which turns PyTorch's `[out, in]` linear weights into burn's `[in, out]`), as burn's
//! book imports a PyTorch model. The regions between the `listing` markers are copied into the
//! docs/models.md by `cargo xtask report`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use common::spec::ModelKind;

// listing: lenet2
#[derive(Module, Debug)]
pub struct LeNet2 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    pool: MaxPool2d,
    activation: Relu,
}

#[derive(Config, Debug)]
pub struct LeNet2Config {
    #[config(default = 10)]
    num_classes: usize,
}

impl LeNet2Config {
    pub fn init(&self, device: &Device) -> LeNet2 {
        LeNet2 {
            conv1: Conv2dConfig::new([1, 6], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            fc1: LinearConfig::new(400, 120).init(device),
            fc2: LinearConfig::new(120, 84).init(device),
            fc3: LinearConfig::new(84, self.num_classes).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            activation: Relu::new(),
        }
    }
}

impl LeNet2 {
    /// [batch, 1, 28, 28] -> [batch, num_classes]
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.conv1.forward(images);
        let x = self.activation.forward(x);
        let x = self.pool.forward(x); // [batch, 6, 14, 14]
        let x = self.conv2.forward(x);
        let x = self.activation.forward(x);
        let x = self.pool.forward(x); // [batch, 16, 5, 5]
        let x = x.flatten(1, 3); // [batch, 400]
        let x = self.fc1.forward(x);
        let x = self.activation.forward(x);
        let x = self.fc2.forward(x);
        let x = self.activation.forward(x);
        self.fc3.forward(x)
    }
}
// end listing

// listing: lenet3
#[derive(Module, Debug)]
pub struct LeNet3 {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    fc1: Linear,
    fc2: Linear,
    pool: MaxPool2d,
    activation: Relu,
}

#[derive(Config, Debug)]
pub struct LeNet3Config {
    #[config(default = 10)]
    num_classes: usize,
}

impl LeNet3Config {
    pub fn init(&self, device: &Device) -> LeNet3 {
        LeNet3 {
            conv1: Conv2dConfig::new([1, 32], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            conv2: Conv2dConfig::new([32, 64], [3, 3]).init(device),
            conv3: Conv2dConfig::new([64, 64], [3, 3]).init(device),
            fc1: LinearConfig::new(1024, 64).init(device),
            fc2: LinearConfig::new(64, self.num_classes).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            activation: Relu::new(),
        }
    }
}

impl LeNet3 {
    /// [batch, 1, 28, 28] -> [batch, num_classes]
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.conv1.forward(images);
        let x = self.activation.forward(x);
        let x = self.pool.forward(x); // [batch, 32, 14, 14]
        let x = self.conv2.forward(x);
        let x = self.activation.forward(x);
        let x = self.pool.forward(x); // [batch, 64, 6, 6]
        let x = self.conv3.forward(x);
        let x = self.activation.forward(x); // [batch, 64, 4, 4]
        let x = x.flatten(1, 3); // [batch, 1024]
        let x = self.fc1.forward(x);
        let x = self.activation.forward(x);
        self.fc2.forward(x)
    }
}
// end listing

/// Either network, chosen at run time. (burn-store leaves the variant out of the names:
/// `conv1.weight`, not `LeNet2.conv1.weight`.)
#[derive(Module, Debug)]
pub enum Net {
    LeNet2(LeNet2),
    LeNet3(LeNet3),
}

impl Net {
    /// The network `kind` with burn-nn's default initialisers, drawn from `device`'s generator.
    pub fn init(kind: ModelKind, device: &Device) -> Self {
        match kind {
            ModelKind::LeNet2 => Net::LeNet2(LeNet2Config::new().init(device)),
            ModelKind::LeNet3 => Net::LeNet3(LeNet3Config::new().init(device)),
        }
    }

    /// [batch, 1, 28, 28] -> [batch, 10]
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Net::LeNet2(net) => net.forward(images),
            Net::LeNet3(net) => net.forward(images),
        }
    }

    /// `forward` as a list of steps, for timing each layer alone (see `bare.rs`).
    pub(crate) fn stages(&self) -> Stages<'_> {
        match self {
            Net::LeNet2(net) => net.stages(),
            Net::LeNet3(net) => net.stages(),
        }
    }
}

/// One step on 4-d activations `[batch, channels, height, width]`.
pub(crate) type Stage4<'a> = (String, Box<dyn Fn(Tensor<4>) -> Tensor<4> + 'a>);
/// One step on 2-d activations `[batch, features]`.
pub(crate) type Stage2<'a> = (String, Box<dyn Fn(Tensor<2>) -> Tensor<2> + 'a>);

/// A forward pass as the steps before the flatten and those after it.
pub(crate) struct Stages<'a> {
    pub features: Vec<Stage4<'a>>,
    pub classifier: Vec<Stage2<'a>>,
}

impl Stages<'_> {
    /// The steps one after the other, with the flatten between: the model's `forward`.
    #[cfg(test)]
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.features.iter().fold(images, |x, (_, f)| f(x));
        let x = x.flatten(1, 3);
        self.classifier.iter().fold(x, |x, (_, f)| f(x))
    }
}

fn conv<'a>(name: &str, conv: &'a Conv2d) -> Stage4<'a> {
    (
        format!("{name} (Conv2d)"),
        Box::new(move |x| conv.forward(x)),
    )
}

fn relu4(relu: &Relu) -> Stage4<'_> {
    ("ReLU".into(), Box::new(move |x| relu.forward(x)))
}

fn pool(pool: &MaxPool2d) -> Stage4<'_> {
    ("MaxPool2d".into(), Box::new(move |x| pool.forward(x)))
}

fn linear<'a>(name: &str, linear: &'a Linear) -> Stage2<'a> {
    (
        format!("{name} (Linear)"),
        Box::new(move |x| linear.forward(x)),
    )
}

fn relu2(relu: &Relu) -> Stage2<'_> {
    ("ReLU".into(), Box::new(move |x| relu.forward(x)))
}

impl LeNet2 {
    fn stages(&self) -> Stages<'_> {
        Stages {
            features: vec![
                conv("conv1", &self.conv1),
                relu4(&self.activation),
                pool(&self.pool),
                conv("conv2", &self.conv2),
                relu4(&self.activation),
                pool(&self.pool),
            ],
            classifier: vec![
                linear("fc1", &self.fc1),
                relu2(&self.activation),
                linear("fc2", &self.fc2),
                relu2(&self.activation),
                linear("fc3", &self.fc3),
            ],
        }
    }
}

impl LeNet3 {
    fn stages(&self) -> Stages<'_> {
        Stages {
            features: vec![
                conv("conv1", &self.conv1),
                relu4(&self.activation),
                pool(&self.pool),
                conv("conv2", &self.conv2),
                relu4(&self.activation),
                pool(&self.pool),
                conv("conv3", &self.conv3),
                relu4(&self.activation),
            ],
            classifier: vec![
                linear("fc1", &self.fc1),
                relu2(&self.activation),
                linear("fc2", &self.fc2),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The per-layer steps that `bare.rs` times compose to the model's own `forward`.
    #[test]
    fn the_stages_compose_to_forward() {
        let device = Device::flex();
        for kind in ModelKind::ALL {
            let net = Net::init(kind, &device);
            let images = Tensor::<4>::random([3, 1, 28, 28], Distribution::Default, &device);
            let want = net.forward(images.clone());
            let got = net.stages().forward(images);
            assert_eq!(got.dims(), [3, 10]);
            let diff = (got - want).abs().max().into_scalar::<f32>();
            assert_eq!(diff, 0.0, "{kind}");
        }
    }
}
