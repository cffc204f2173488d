//! LeNet2 and LeNet3 as candle's examples write a model: a struct of candle-nn layers built from
//! a `VarBuilder` (`vb.pp("conv1")` names the variables `conv1.weight`, `conv1.bias`, ...) and
//! `impl Module` with a `forward` that applies them in turn. The pooling is a field so that
//! `candle-firstmax` is the same model with another [`Pool`]. The regions between the `listing`
//! markers are copied into docs/models.md by `cargo xtask report`.

use candle_core::{Result, Tensor, D};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, Module, VarBuilder};
use common::spec::ModelKind;

// listing: lenet2
pub struct LeNet2 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    pool: Pool,
}

impl LeNet2 {
    pub fn new(vb: VarBuilder, pool: Pool) -> Result<Self> {
        let padded = Conv2dConfig {
            padding: 2,
            ..Default::default()
        };
        Ok(Self {
            conv1: conv2d(1, 6, 5, padded, vb.pp("conv1"))?,
            conv2: conv2d(6, 16, 5, Default::default(), vb.pp("conv2"))?,
            fc1: linear(400, 120, vb.pp("fc1"))?,
            fc2: linear(120, 84, vb.pp("fc2"))?,
            fc3: linear(84, 10, vb.pp("fc3"))?,
            pool,
        })
    }
}

impl Module for LeNet2 {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = xs.apply(&self.conv1)?.relu()?.apply(&self.pool)?; // [batch, 6, 14, 14]
        let xs = xs.apply(&self.conv2)?.relu()?.apply(&self.pool)?; // [batch, 16, 5, 5]
        let xs = xs.flatten_from(1)?; // [batch, 400]
        let xs = xs.apply(&self.fc1)?.relu()?;
        let xs = xs.apply(&self.fc2)?.relu()?;
        xs.apply(&self.fc3)
    }
}
// end listing

// listing: lenet3
pub struct LeNet3 {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    fc1: Linear,
    fc2: Linear,
    pool: Pool,
}

impl LeNet3 {
    pub fn new(vb: VarBuilder, pool: Pool) -> Result<Self> {
        let padded = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv1: conv2d(1, 32, 3, padded, vb.pp("conv1"))?,
            conv2: conv2d(32, 64, 3, Default::default(), vb.pp("conv2"))?,
            conv3: conv2d(64, 64, 3, Default::default(), vb.pp("conv3"))?,
            fc1: linear(1024, 64, vb.pp("fc1"))?,
            fc2: linear(64, 10, vb.pp("fc2"))?,
            pool,
        })
    }
}

impl Module for LeNet3 {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = xs.apply(&self.conv1)?.relu()?.apply(&self.pool)?; // [batch, 32, 14, 14]
        let xs = xs.apply(&self.conv2)?.relu()?.apply(&self.pool)?; // [batch, 64, 6, 6]
        let xs = xs.apply(&self.conv3)?.relu()?; // [batch, 64, 4, 4]
        let xs = xs.flatten_from(1)?; // [batch, 1024]
        let xs = xs.apply(&self.fc1)?.relu()?;
        xs.apply(&self.fc2)
    }
}
// end listing

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

impl Module for Pool {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Pool::MaxPool2d => xs.max_pool2d(2),
            Pool::FirstMax => first_max_pool(xs),
        }
    }
}

/// 2×2 max-pooling with stride 2 whose gradient goes to the first maximum of each window.
pub fn first_max_pool(xs: &Tensor) -> Result<Tensor> {
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

/// Either network, chosen at run time.
pub enum Net {
    LeNet2(LeNet2),
    LeNet3(LeNet3),
}

impl Net {
    /// The network `kind` with `pool`, its variables created through `vb`.
    pub fn new(kind: ModelKind, vb: VarBuilder, pool: Pool) -> Result<Self> {
        Ok(match kind {
            ModelKind::LeNet2 => Net::LeNet2(LeNet2::new(vb, pool)?),
            ModelKind::LeNet3 => Net::LeNet3(LeNet3::new(vb, pool)?),
        })
    }

    /// `forward` as a list of steps, for timing each layer alone.
    pub(crate) fn stages(&self) -> Vec<Stage<'_>> {
        match self {
            Net::LeNet2(net) => net.stages(),
            Net::LeNet3(net) => net.stages(),
        }
    }
}

impl Module for Net {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Net::LeNet2(net) => net.forward(xs),
            Net::LeNet3(net) => net.forward(xs),
        }
    }
}

/// One step of a forward pass, for timing each layer alone (see `bare.rs`).
pub(crate) enum Stage<'a> {
    Conv(&'static str, &'a Conv2d),
    Linear(&'static str, &'a Linear),
    Relu,
    Pool(Pool),
    Flatten,
}

impl Stage<'_> {
    pub(crate) fn name(&self) -> String {
        match self {
            Stage::Conv(name, _) => format!("{name} (Conv2d)"),
            Stage::Linear(name, _) => format!("{name} (Linear)"),
            Stage::Relu => "ReLU".into(),
            Stage::Pool(Pool::MaxPool2d) => "max_pool2d(2)".into(),
            Stage::Pool(Pool::FirstMax) => "first-max pool".into(),
            Stage::Flatten => "flatten".into(),
        }
    }
}

impl Module for Stage<'_> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Stage::Conv(_, conv) => xs.apply(*conv),
            Stage::Linear(_, linear) => xs.apply(*linear),
            Stage::Relu => xs.relu(),
            Stage::Pool(pool) => xs.apply(pool),
            Stage::Flatten => xs.flatten_from(1),
        }
    }
}

impl LeNet2 {
    /// `forward` as a list of steps (a test checks that they compose to it).
    fn stages(&self) -> Vec<Stage<'_>> {
        use Stage::{Conv, Flatten, Linear, Relu};
        vec![
            Conv("conv1", &self.conv1),
            Relu,
            Stage::Pool(self.pool),
            Conv("conv2", &self.conv2),
            Relu,
            Stage::Pool(self.pool),
            Flatten,
            Linear("fc1", &self.fc1),
            Relu,
            Linear("fc2", &self.fc2),
            Relu,
            Linear("fc3", &self.fc3),
        ]
    }
}

impl LeNet3 {
    /// `forward` as a list of steps (a test checks that they compose to it).
    fn stages(&self) -> Vec<Stage<'_>> {
        use Stage::{Conv, Flatten, Linear, Relu};
        vec![
            Conv("conv1", &self.conv1),
            Relu,
            Stage::Pool(self.pool),
            Conv("conv2", &self.conv2),
            Relu,
            Stage::Pool(self.pool),
            Conv("conv3", &self.conv3),
            Relu,
            Flatten,
            Linear("fc1", &self.fc1),
            Relu,
            Linear("fc2", &self.fc2),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// The per-layer steps that `bare.rs` times compose to the model's own `forward`.
    #[test]
    fn the_stages_compose_to_forward() -> Result<()> {
        for kind in ModelKind::ALL {
            for pool in [Pool::MaxPool2d, Pool::FirstMax] {
                let varmap = VarMap::new();
                let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
                let net = Net::new(kind, vb, pool)?;
                let xs = Tensor::randn(0f32, 1f32, (3, 1, 28, 28), &Device::Cpu)?;
                let want = net.forward(&xs)?;
                let got = net
                    .stages()
                    .iter()
                    .try_fold(xs.clone(), |xs, stage| xs.apply(stage))?;
                assert_eq!(got.dims(), [3, 10]);
                let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert_eq!(diff, 0.0, "{kind} {pool:?}");
            }
        }
        Ok(())
    }
}
