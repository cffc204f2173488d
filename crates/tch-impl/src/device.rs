//! Where a tch run trains: the device asked for, whether libtorch has CUDA, and the splits
//! uploaded to it once.

use common::harness::DeviceRequest;
use common::mnist::{Split, IMAGE_SIDE};
use common::TrainError;
use tch::{Device, Tensor};

/// Whether libtorch's CUDA part (libtorch_cuda) is loaded in this process. (`tch::utils::has_cuda`
/// cannot tell: it is false on a machine without a GPU even when the library is there.)
pub fn cuda_built() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| maps.contains("libtorch_cuda.so"))
        .unwrap_or_else(|_| tch::utils::has_cuda())
}

/// Whether a CUDA device can be used.
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// One split on the device: images `[n, 1, 28, 28]` f32, labels `[n]` i64.
pub(crate) struct DeviceSplit {
    pub images: Tensor,
    pub labels: Tensor,
}

impl DeviceSplit {
    pub fn upload(split: &Split, device: Device) -> Self {
        let n = split.len() as i64;
        let side = IMAGE_SIDE as i64;
        Self {
            images: Tensor::from_slice(&split.normalized_images())
                .reshape([n, 1, side, side])
                .to_device(device),
            labels: Tensor::from_slice(&split.labels_i64()).to_device(device),
        }
    }

    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }
}

pub(crate) fn pick_device(request: DeviceRequest) -> Result<Device, TrainError> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Auto => Ok(Device::cuda_if_available()),
        DeviceRequest::Cuda if cuda_available() => Ok(Device::Cuda(0)),
        DeviceRequest::Cuda if !cuda_built() => Err(TrainError::DeviceUnavailable(
            "tch: CUDA was asked for, but the libtorch this binary loaded has no CUDA support \
             (libtorch_cuda is not loaded); build against a CUDA libtorch"
                .into(),
        )),
        DeviceRequest::Cuda => Err(TrainError::DeviceUnavailable(
            "tch: CUDA was asked for, but libtorch (with CUDA) finds no CUDA device on this machine"
                .into(),
        )),
    }
}
