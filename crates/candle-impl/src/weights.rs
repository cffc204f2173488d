//! The shared weights in and out of a candle model, and the weights candle-nn's own layers draw.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::spec::ModelKind;
use common::weights::{ParamTensor, Weights};
use common::TrainError;

use crate::backend_error;
use crate::model::{Net, Pool};

/// A model of `model` with `pool` on `device`, its variables in a `VarMap`, from `weights`.
pub(crate) fn build(
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

/// The variables of `varmap` with their names, in the names' order.
pub(crate) fn named_vars(varmap: &VarMap) -> Result<Vec<(String, candle_core::Var)>, TrainError> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::Weights("the variable map is poisoned".into()))?;
    let mut named: Vec<(String, candle_core::Var)> =
        vars.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

/// The variables of `varmap` in PyTorch's names and layouts (which are candle's own).
pub(crate) fn export(varmap: &VarMap) -> Result<Weights, TrainError> {
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
pub(crate) fn native_weights(model: ModelKind) -> Result<Weights, TrainError> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Net::new(model, vb, Pool::MaxPool2d).map_err(backend_error)?;
    export(&varmap)
}

pub(crate) fn load_weights(
    varmap: &VarMap,
    weights: &Weights,
    device: &Device,
) -> Result<(), TrainError> {
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
