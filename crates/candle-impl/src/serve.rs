//! candle's predictor, as its users serve a model: the layers built by a `VarBuilder` over plain
//! tensors (as from a safetensors file: no `Var`s, so no gradient is tracked), the logits copied
//! back to the host.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, VarBuilder};
use common::harness::{DeviceKind, DeviceRequest};
use common::mnist::IMAGE_SIDE;
use common::serve::{image_count, Predictor};
use common::spec::ModelKind;
use common::weights::Weights;
use common::TrainError;

use crate::backend_error;
use crate::device::pick_device;
use crate::model::{Net, Pool};

/// A model on its device, ready to answer.
pub(crate) struct CandlePredictor {
    net: Net,
    device: Device,
}

/// `model` with `pool` and `weights` on the device `request` asks for (candle's CPU kernels take
/// their threads from rayon's pool).
pub(crate) fn predictor(
    model: ModelKind,
    weights: &Weights,
    request: DeviceRequest,
    pool: Pool,
) -> Result<CandlePredictor, TrainError> {
    weights.check(&model.spec())?;
    let device = pick_device(request, false)?;
    let tensors = weights
        .tensors
        .iter()
        .map(|(name, t)| {
            Tensor::from_vec(t.data.clone(), t.shape.as_slice(), &device)
                .map(|value| (name.clone(), value))
        })
        .collect::<candle_core::Result<HashMap<String, Tensor>>>()
        .map_err(backend_error)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
    let net = Net::new(model, vb, pool).map_err(backend_error)?;
    Ok(CandlePredictor { net, device })
}

impl Predictor for CandlePredictor {
    fn logits(&mut self, images: &[f32]) -> Result<Vec<f32>, TrainError> {
        let n = image_count(images)?;
        let xs = Tensor::from_slice(images, (n, 1, IMAGE_SIDE, IMAGE_SIDE), &self.device)
            .map_err(backend_error)?;
        self.net
            .forward(&xs)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(backend_error)
    }

    fn device(&self) -> DeviceKind {
        if self.device.is_cuda() {
            DeviceKind::Cuda
        } else {
            DeviceKind::Cpu
        }
    }

    fn version(&self) -> String {
        crate::framework_version()
    }
}
