//! The shared weights in and out of a burn model (burn-store's safetensors store with its PyTorch
//! adapter), and the weights burn-nn's own layers draw.

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;
use common::spec::ModelKind;
use common::weights::{ModelFile, Weights};
use common::TrainError;

use crate::model::Net;
use crate::read_error;

/// The shared weights put into `net` by name, as a PyTorch safetensors file is loaded into a burn
/// model: burn-store's PyTorch adapter transposes each linear weight to burn's `[in, out]`.
pub(crate) fn load_weights(net: &mut Net, weights: &Weights) -> Result<(), TrainError> {
    let bytes = weights
        .to_safetensors(&Vec::new(), None)
        .map_err(|e| TrainError::Weights(format!("burn: {e}")))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .skip_enum_variants(true);
    let result = net
        .load_from(&mut store)
        .map_err(|e| TrainError::Weights(format!("burn: loading the weights: {e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(TrainError::Weights(format!(
            "burn: the weights do not fit the model: {result}"
        )));
    }
    Ok(())
}

/// `model` built by its config and given the shared weights, on `device`.
pub(crate) fn net_with(
    model: ModelKind,
    weights: &Weights,
    device: &Device,
) -> Result<Net, TrainError> {
    weights.check(&model.spec())?;
    let mut net = Net::init(model, device);
    load_weights(&mut net, weights)?;
    Ok(net)
}

/// The parameters of `net` in PyTorch's names and layouts, saved as burn saves a model for
/// PyTorch (burn-store's safetensors store with its PyTorch adapter).
pub(crate) fn export(net: &Net) -> Result<Weights, TrainError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    net.save_into(&mut store)
        .map_err(|e| read_error("reading the weights", e))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| read_error("reading the weights", e))?;
    ModelFile::from_bytes(&bytes)
        .map(|file| file.weights)
        .map_err(|e| TrainError::Weights(format!("burn: the saved weights: {e}")))
}

/// The initial weights burn-nn's own layers draw (`Conv2dConfig` and `LinearConfig` with their
/// default initialisers), on the Flex device seeded with `seed`.
pub(crate) fn native_weights(model: ModelKind, seed: u64) -> Result<Weights, TrainError> {
    let device = Device::flex();
    device.seed(seed);
    export(&Net::init(model, &device))
}
