//! burn's predictor, as its users serve a model: the module on the plain device (no autodiff, so
//! no gradient is tracked) with the shared weights loaded, the logits read back to the host.

use burn::tensor::{Device, Tensor, TensorData};
use common::harness::{DeviceKind, DeviceRequest};
use common::mnist::IMAGE_SIDE;
use common::serve::{image_count, Predictor};
use common::spec::ModelKind;
use common::weights::Weights;
use common::TrainError;

use crate::device::pick_device;
use crate::model::Net;
use crate::read_error;
use crate::weights::net_with;

/// A model on its device, ready to answer.
pub(crate) struct BurnPredictor {
    net: Net,
    device: Device,
    cuda: bool,
}

/// `model` with `weights` on the device `request` asks for (burn's CPU backend takes its threads
/// from rayon's pool).
pub(crate) fn predictor(
    model: ModelKind,
    weights: &Weights,
    request: DeviceRequest,
) -> Result<BurnPredictor, TrainError> {
    let (device, cuda) = pick_device(request)?;
    let net = net_with(model, weights, &device)?;
    Ok(BurnPredictor { net, device, cuda })
}

impl Predictor for BurnPredictor {
    fn logits(&mut self, images: &[f32]) -> Result<Vec<f32>, TrainError> {
        let n = image_count(images)?;
        let xs = Tensor::<4>::from_data(
            TensorData::new(images.to_vec(), [n, 1, IMAGE_SIDE, IMAGE_SIDE]),
            &self.device,
        );
        self.net
            .forward(xs)
            .flatten::<1>(0, 1)
            .try_into_data()
            .map_err(|e| read_error("reading the logits", e))?
            .try_to_vec::<f32>()
            .map_err(|e| read_error("reading the logits", e))
    }

    fn device(&self) -> DeviceKind {
        if self.cuda {
            DeviceKind::Cuda
        } else {
            DeviceKind::Cpu
        }
    }

    fn version(&self) -> String {
        crate::framework_version()
    }
}
