//! LeNet2 and LeNet3 as tch's examples write a model: a struct of `nn` layers created under an
//! `nn::Path`, so that each variable is named after its field (`conv1.weight`, `fc1.bias`, ...),
//! and `nn::Module`'s `forward` as one chain of calls. The regions between the `listing` markers
//! are copied into docs/models.md by `cargo xtask report`.

use common::spec::ModelKind;
use tch::nn::{self, Module, Path};
use tch::Tensor;

// listing: lenet2
#[derive(Debug)]
pub struct LeNet2 {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
    fc3: nn::Linear,
}

impl LeNet2 {
    pub fn new(vs: &Path) -> Self {
        let padded = nn::ConvConfig {
            padding: 2,
            ..Default::default()
        };
        Self {
            conv1: nn::conv2d(vs / "conv1", 1, 6, 5, padded),
            conv2: nn::conv2d(vs / "conv2", 6, 16, 5, Default::default()),
            fc1: nn::linear(vs / "fc1", 400, 120, Default::default()),
            fc2: nn::linear(vs / "fc2", 120, 84, Default::default()),
            fc3: nn::linear(vs / "fc3", 84, 10, Default::default()),
        }
    }
}

impl Module for LeNet2 {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.apply(&self.conv1)
            .relu()
            .max_pool2d_default(2) // [batch, 6, 14, 14]
            .apply(&self.conv2)
            .relu()
            .max_pool2d_default(2) // [batch, 16, 5, 5]
            .flatten(1, -1) // [batch, 400]
            .apply(&self.fc1)
            .relu()
            .apply(&self.fc2)
            .relu()
            .apply(&self.fc3)
    }
}
// end listing

// listing: lenet3
#[derive(Debug)]
pub struct LeNet3 {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    conv3: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl LeNet3 {
    pub fn new(vs: &Path) -> Self {
        let padded = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Self {
            conv1: nn::conv2d(vs / "conv1", 1, 32, 3, padded),
            conv2: nn::conv2d(vs / "conv2", 32, 64, 3, Default::default()),
            conv3: nn::conv2d(vs / "conv3", 64, 64, 3, Default::default()),
            fc1: nn::linear(vs / "fc1", 1024, 64, Default::default()),
            fc2: nn::linear(vs / "fc2", 64, 10, Default::default()),
        }
    }
}

impl Module for LeNet3 {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.apply(&self.conv1)
            .relu()
            .max_pool2d_default(2) // [batch, 32, 14, 14]
            .apply(&self.conv2)
            .relu()
            .max_pool2d_default(2) // [batch, 64, 6, 6]
            .apply(&self.conv3)
            .relu() // [batch, 64, 4, 4]
            .flatten(1, -1) // [batch, 1024]
            .apply(&self.fc1)
            .relu()
            .apply(&self.fc2)
    }
}
// end listing

/// The network `kind`, its variables created under `vs`.
pub fn net(kind: ModelKind, vs: &Path) -> Box<dyn Module> {
    match kind {
        ModelKind::LeNet2 => Box::new(LeNet2::new(vs)),
        ModelKind::LeNet3 => Box::new(LeNet3::new(vs)),
    }
}
