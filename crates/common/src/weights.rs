//! Parameters as plain data, in PyTorch's names and layouts, and the shared initialisation.

use std::collections::BTreeMap;

use crate::error::{Error, TrainError};
use crate::order::{unit_f32, weights_rng};
use crate::spec::ModelSpec;

/// One tensor: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A model's parameters by name (`conv1.weight`, `conv1.bias`, ...).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Weights {
    pub tensors: BTreeMap<String, ParamTensor>,
}

impl Weights {
    /// PyTorch's default initialisation for Conv2d and Linear (weights by `kaiming_uniform_` with
    /// `a = √5`, biases likewise), which both come to uniform in `±1/√fan_in`, drawn from `seed` in the
    /// spec's parameter order.
    pub fn init(spec: &ModelSpec, seed: u64) -> Self {
        let mut rng = weights_rng(seed);
        let tensors = spec
            .params()
            .into_iter()
            .map(|p| {
                let bound = 1.0 / (p.fan_in as f32).sqrt();
                let data = (0..p.numel())
                    .map(|_| (2.0 * unit_f32(&mut rng) - 1.0) * bound)
                    .collect();
                (
                    p.name,
                    ParamTensor {
                        shape: p.shape,
                        data,
                    },
                )
            })
            .collect();
        Self { tensors }
    }

    /// The tensor named `name`, checked against the shape the model expects.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&ParamTensor, TrainError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| TrainError::Weights(format!("no tensor named {name}")))?;
        if t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
            return Err(TrainError::Weights(format!(
                "{name} has shape {:?} ({} values), the model needs {shape:?}",
                t.shape,
                t.data.len()
            )));
        }
        Ok(t)
    }

    /// Checks that the names and shapes are exactly those of `spec`.
    pub fn check(&self, spec: &ModelSpec) -> Result<(), TrainError> {
        let params = spec.params();
        for p in &params {
            self.get(&p.name, &p.shape)?;
        }
        if let Some(extra) = self
            .tensors
            .keys()
            .find(|k| !params.iter().any(|p| &p.name == *k))
        {
            return Err(TrainError::Weights(format!(
                "unexpected tensor {extra} for {}",
                spec.kind
            )));
        }
        Ok(())
    }

    pub fn num_params(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }

    /// The first tensor (in name order) that holds a NaN or an infinity, said in words: its name,
    /// how many of its values are not finite, and the first of them. `None` when all are finite.
    pub fn non_finite(&self) -> Option<String> {
        self.tensors.iter().find_map(|(name, t)| {
            let first = t.data.iter().position(|v| !v.is_finite())?;
            let count = t.data.iter().filter(|v| !v.is_finite()).count();
            let value = t.data[first];
            let value = if value.is_nan() {
                "NaN"
            } else if value > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            Some(format!(
                "tensor {name} holds {count} value{} that {} not finite (the first, at index {first}, is {value})",
                if count == 1 { "" } else { "s" },
                if count == 1 { "is" } else { "are" },
            ))
        })
    }
}

/// Extra named integer tensors stored beside the weights in a file (each epoch's order, say).
pub type IndexTensors = Vec<(String, Vec<i64>)>;

impl Weights {
    /// Encodes the weights, and any index tensors, as safetensors (f32 and i64, little-endian).
    pub fn to_safetensors(
        &self,
        indices: &IndexTensors,
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Vec<u8>, Error> {
        use safetensors::tensor::{Dtype, TensorView};
        let mut bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, t) in &self.tensors {
            let raw = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            bytes.push((name.clone(), Dtype::F32, t.shape.clone(), raw));
        }
        for (name, v) in indices {
            let raw = v.iter().flat_map(|i| i.to_le_bytes()).collect();
            bytes.push((name.clone(), Dtype::I64, vec![v.len()], raw));
        }
        let views = bytes
            .iter()
            .map(|(name, dtype, shape, raw)| {
                TensorView::new(*dtype, shape.clone(), raw)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Invalid(format!("cannot encode {name}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize(views, metadata)
            .map_err(|e| Error::Invalid(format!("cannot encode the tensors: {e}")))
    }
}

/// A model file: the weights in the shared layout and what the file says about them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub model: crate::spec::ModelKind,
    pub weights: Weights,
    /// The safetensors metadata (framework, dataset, epochs, seed, test accuracy...).
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// The metadata key that marks a file as a lenet-compare model file.
pub const FORMAT_KEY: &str = "format";
pub const FORMAT: &str = "lenet-compare/weights-v1";

impl ModelFile {
    /// Encodes as safetensors with the metadata (and the format key) in the header.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut metadata: std::collections::HashMap<String, String> =
            self.metadata.clone().into_iter().collect();
        metadata.insert(FORMAT_KEY.into(), FORMAT.into());
        metadata.insert("model".into(), self.model.to_string());
        self.weights.to_safetensors(&Vec::new(), Some(metadata))
    }

    /// Decodes a safetensors file: every tensor must be f32 and finite, and the names and shapes
    /// must be exactly those of LeNet2 or of LeNet3 (which one is read from the tensors, not trusted from
    /// the metadata). The message says what is wrong, not where the bytes came from.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Self::decode(bytes).map_err(Error::Invalid)
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        use safetensors::tensor::Dtype;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| format!("not a safetensors file: {e}"))?;
        let metadata: std::collections::BTreeMap<String, String> = header
            .metadata()
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| format!("not a safetensors file: {e}"))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(format!(
                    "tensor {name} is {:?}, model weights are F32",
                    view.dtype()
                ));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.insert(
                name,
                ParamTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        let weights = Weights { tensors };
        // A broken file is named here, where it enters, and never reaches a framework: their ReLUs
        // do not agree on NaN (candle's maps it to 0), so it would look untrained in one column and
        // broken in another.
        if let Some(bad) = weights.non_finite() {
            return Err(format!("{bad}: a broken model, not loaded"));
        }
        let mut problems = Vec::new();
        for model in crate::spec::ModelKind::ALL {
            match weights.check(&model.spec()) {
                Ok(()) => {
                    return Ok(Self {
                        model,
                        weights,
                        metadata,
                    })
                }
                Err(e) => problems.push(format!("not {model} ({e})")),
            }
        }
        Err(format!(
            "its tensors fit neither model: {}",
            problems.join("; ")
        ))
    }

    pub fn read(path: &std::path::Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        Self::decode(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// Writes atomically.
    pub fn write(&self, path: &std::path::Path) -> Result<(), Error> {
        let bytes = self.to_bytes()?;
        crate::fsio::write_atomic(path, &bytes)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}
