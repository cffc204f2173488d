//! tch's predictor, as its users serve a model: the layers in a `VarStore` on the device, the
//! forward pass under `no_grad`, the logits copied back to the host.

use common::harness::{DeviceKind, DeviceRequest};
use common::mnist::IMAGE_SIDE;
use common::serve::{image_count, Predictor};
use common::spec::ModelKind;
use common::weights::Weights;
use common::TrainError;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use crate::device::pick_device;
use crate::weights::load_weights;
use crate::{backend_error, model};

/// A model on its device, ready to answer.
pub(crate) struct TchPredictor {
    net: Box<dyn Module>,
    // The variables the layers hold; kept alive with them.
    _vs: nn::VarStore,
    device: Device,
}

/// `model` with `weights` on the device `request` asks for; `threads` sizes libtorch's CPU pool.
pub(crate) fn predictor(
    model: ModelKind,
    weights: &Weights,
    request: DeviceRequest,
    threads: Option<usize>,
) -> Result<TchPredictor, TrainError> {
    weights.check(&model.spec())?;
    if let Some(threads) = threads {
        tch::set_num_threads(threads as i32);
    }
    let device = pick_device(request)?;
    let mut vs = nn::VarStore::new(device);
    let net = model::net(model, &vs.root());
    load_weights(&mut vs, weights)?;
    Ok(TchPredictor {
        net,
        _vs: vs,
        device,
    })
}

impl Predictor for TchPredictor {
    fn logits(&mut self, images: &[f32]) -> Result<Vec<f32>, TrainError> {
        let n = image_count(images)? as i64;
        let side = IMAGE_SIDE as i64;
        let xs = Tensor::from_slice(images)
            .reshape([n, 1, side, side])
            .to_device(self.device);
        let out = tch::no_grad(|| self.net.forward(&xs));
        Vec::<f32>::try_from(out.flatten(0, -1).to_device(Device::Cpu)).map_err(backend_error)
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
