//! The two models as data: their layer tables, and the parameter names and shapes in PyTorch's
//! layout (`conv1.weight` is `[out, in, kh, kw]`, `fc1.weight` is `[out, in]`). Each framework
//! writes the models in its own way; this description is what they are all tested against (names,
//! shapes, parameter counts), and what the reference forward pass, the shared initial weights and
//! the model summaries read.

use serde::{Deserialize, Serialize};

use crate::mnist::IMAGE_SIDE;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    LeNet2,
    LeNet3,
}

impl ModelKind {
    pub const ALL: [ModelKind; 2] = [ModelKind::LeNet2, ModelKind::LeNet3];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::LeNet2 => "lenet2",
            ModelKind::LeNet3 => "lenet3",
        }
    }

    /// How people write it.
    pub fn title(self) -> &'static str {
        match self {
            ModelKind::LeNet2 => "LeNet2",
            ModelKind::LeNet3 => "LeNet3",
        }
    }

    pub fn spec(self) -> ModelSpec {
        let conv = |name, in_channels, out_channels, kernel, padding| Layer::Conv2d {
            name,
            in_channels,
            out_channels,
            kernel,
            padding,
        };
        let linear = |name, inputs, outputs| Layer::Linear {
            name,
            inputs,
            outputs,
        };
        use Layer::{Flatten, MaxPool2, Relu};
        let layers = match self {
            ModelKind::LeNet2 => vec![
                conv("conv1", 1, 6, 5, 2),
                Relu,
                MaxPool2,
                conv("conv2", 6, 16, 5, 0),
                Relu,
                MaxPool2,
                Flatten,
                linear("fc1", 400, 120),
                Relu,
                linear("fc2", 120, 84),
                Relu,
                linear("fc3", 84, 10),
            ],
            ModelKind::LeNet3 => vec![
                conv("conv1", 1, 32, 3, 1),
                Relu,
                MaxPool2,
                conv("conv2", 32, 64, 3, 0),
                Relu,
                MaxPool2,
                conv("conv3", 64, 64, 3, 0),
                Relu,
                Flatten,
                linear("fc1", 1024, 64),
                Relu,
                linear("fc2", 64, 10),
            ],
        };
        ModelSpec { kind: self, layers }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = crate::error::UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lenet2" => Ok(ModelKind::LeNet2),
            "lenet3" => Ok(ModelKind::LeNet3),
            _ => Err(crate::error::UnknownValue::new(
                "model",
                s,
                "lenet2 or lenet3",
            )),
        }
    }
}

/// One layer. Convolutions have stride 1; pooling is 2×2 max with stride 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Conv2d {
        name: &'static str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: usize,
    },
    Relu,
    MaxPool2,
    Flatten,
    Linear {
        name: &'static str,
        inputs: usize,
        outputs: usize,
    },
}

/// One learnable tensor, named and shaped as in PyTorch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    /// Inputs per output unit (`in * kh * kw` or `in`), which sets the initialisation bound.
    pub fan_in: usize,
}

impl ParamSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One row of a model summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub layer: String,
    /// Output shape per example (without the batch dimension).
    pub output: Vec<usize>,
    pub params: Vec<ParamSpec>,
}

/// A whole network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub kind: ModelKind,
    pub layers: Vec<Layer>,
}

impl Layer {
    /// Learnable tensors of this layer: weight, then bias.
    pub fn params(&self) -> Vec<ParamSpec> {
        match *self {
            Layer::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel,
                ..
            } => {
                let fan_in = in_channels * kernel * kernel;
                vec![
                    ParamSpec {
                        name: format!("{name}.weight"),
                        shape: vec![out_channels, in_channels, kernel, kernel],
                        fan_in,
                    },
                    ParamSpec {
                        name: format!("{name}.bias"),
                        shape: vec![out_channels],
                        fan_in,
                    },
                ]
            }
            Layer::Linear {
                name,
                inputs,
                outputs,
            } => vec![
                ParamSpec {
                    name: format!("{name}.weight"),
                    shape: vec![outputs, inputs],
                    fan_in: inputs,
                },
                ParamSpec {
                    name: format!("{name}.bias"),
                    shape: vec![outputs],
                    fan_in: inputs,
                },
            ],
            Layer::Relu | Layer::MaxPool2 | Layer::Flatten => Vec::new(),
        }
    }

    /// The layer as PyTorch would print it, with its name where it has parameters.
    pub fn describe(&self) -> String {
        match *self {
            Layer::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel,
                padding,
            } => format!(
                "{name}: Conv2d({in_channels}, {out_channels}, kernel {kernel}x{kernel}, padding {padding})"
            ),
            Layer::Relu => "ReLU".into(),
            Layer::MaxPool2 => "MaxPool2d(2x2, stride 2)".into(),
            Layer::Flatten => "Flatten".into(),
            Layer::Linear {
                name,
                inputs,
                outputs,
            } => format!("{name}: Linear({inputs}, {outputs})"),
        }
    }

    /// The output shape (without batch) for an input shape, or a description of the mismatch.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match (*self, input) {
            (
                Layer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    padding,
                    ..
                },
                &[c, h, w],
            ) if c == in_channels && h + 2 * padding >= kernel && w + 2 * padding >= kernel => {
                Ok(vec![
                    out_channels,
                    h + 2 * padding - kernel + 1,
                    w + 2 * padding - kernel + 1,
                ])
            }
            (Layer::Relu, s) => Ok(s.to_vec()),
            (Layer::MaxPool2, &[c, h, w]) if h >= 2 && w >= 2 => Ok(vec![c, h / 2, w / 2]),
            (Layer::Flatten, s) => Ok(vec![s.iter().product()]),
            (
                Layer::Linear {
                    inputs, outputs, ..
                },
                &[n],
            ) if n == inputs => Ok(vec![outputs]),
            (l, s) => Err(format!("{} cannot take input {s:?}", l.describe())),
        }
    }
}

impl ModelSpec {
    /// All learnable tensors in order.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.layers.iter().flat_map(Layer::params).collect()
    }

    pub fn num_params(&self) -> usize {
        self.params().iter().map(ParamSpec::numel).sum()
    }

    /// The layer table with each output shape, for a 1×28×28 input.
    pub fn summary(&self) -> Result<Vec<SummaryRow>, crate::error::Error> {
        let mut shape = vec![1, IMAGE_SIDE, IMAGE_SIDE];
        let mut rows = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            shape = layer
                .output_shape(&shape)
                .map_err(|e| crate::error::Error::Invalid(format!("{}: {e}", self.kind)))?;
            rows.push(SummaryRow {
                layer: layer.describe(),
                output: shape.clone(),
                params: layer.params(),
            });
        }
        Ok(rows)
    }
}
