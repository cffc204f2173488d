//! The shared weights in and out of a tch model, and the weights tch's own layers draw.

use common::spec::ModelKind;
use common::weights::{ParamTensor, Weights};
use common::TrainError;
use tch::nn;
use tch::{Device, Tensor};

use crate::{backend_error, model};

fn to_tensor(t: &ParamTensor) -> Tensor {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&t.data).reshape(shape)
}

pub(crate) fn load_weights(vs: &mut nn::VarStore, weights: &Weights) -> Result<(), TrainError> {
    let vars = vs.variables();
    if vars.len() != weights.tensors.len() {
        return Err(TrainError::Weights(format!(
            "the tch model has {} tensors, the weights {}",
            vars.len(),
            weights.tensors.len()
        )));
    }
    tch::no_grad(|| {
        for (name, mut var) in vars {
            let t = weights.get(&name, &shape_of(&var))?;
            var.copy_(&to_tensor(t).to_device(var.device()));
        }
        Ok(())
    })
}

/// The variables of `vs` in PyTorch's names and layouts (which are tch's own).
pub(crate) fn export(vs: &nn::VarStore) -> Result<Weights, TrainError> {
    let mut out = Weights::default();
    for (name, var) in vs.variables() {
        let shape = shape_of(&var);
        let data = Vec::<f32>::try_from(var.detach().to_device(Device::Cpu).flatten(0, -1))
            .map_err(backend_error)?;
        out.tensors.insert(name, ParamTensor { shape, data });
    }
    Ok(out)
}

/// The initial weights tch's own layers draw (`nn::conv2d` and `nn::linear` with their default
/// configurations), from libtorch's generator seeded with `seed`.
pub(crate) fn native_weights(model: ModelKind, seed: u64) -> Result<Weights, TrainError> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = model::net(model, &vs.root());
    export(&vs)
}

fn shape_of(t: &Tensor) -> Vec<usize> {
    t.size().iter().map(|&d| d as usize).collect()
}
