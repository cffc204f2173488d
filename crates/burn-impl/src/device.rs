//! Where a burn run trains: Flex on the CPU, burn's compiled CPU backend where this build has it,
//! burn's CUDA backend with the `cuda` feature, and the splits uploaded to the device once.

use burn::tensor::{Device, Int, Tensor, TensorData};
use common::harness::DeviceRequest;
use common::mnist::{Split, IMAGE_SIDE};
use common::TrainError;

/// Whether this build can use CUDA and a device is there.
pub fn cuda_available() -> bool {
    cuda::available()
}

#[cfg(feature = "cuda")]
mod cuda {
    use burn::tensor::{Device, DeviceType};

    pub fn device() -> Option<Device> {
        Device::enumerate(DeviceType::Cuda)
            .into_vec()
            .into_iter()
            .next()
    }

    pub fn available() -> bool {
        device().is_some()
    }
}

/// burn's compiled CPU backend (cubecl's CPU runtime), where this build has it.
pub(crate) mod compiled_cpu {
    use burn::tensor::Device;

    #[cfg(feature = "cpu")]
    pub fn device() -> Option<Device> {
        Some(Device::cpu())
    }

    #[cfg(not(feature = "cpu"))]
    pub fn device() -> Option<Device> {
        None
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use burn::tensor::Device;

    pub fn available() -> bool {
        false
    }

    pub fn device() -> Option<Device> {
        None
    }
}

/// One split on a device: images `[n, 1, 28, 28]` f32, labels `[n]` int.
pub(crate) struct DeviceSplit {
    pub images: Tensor<4>,
    pub labels: Tensor<1, Int>,
}

impl DeviceSplit {
    pub fn upload(split: &Split, device: &Device) -> Self {
        let n = split.len();
        let labels: Vec<i64> = split.labels.iter().map(|&l| l as i64).collect();
        Self {
            images: Tensor::from_data(
                TensorData::new(split.normalized_images(), [n, 1, IMAGE_SIDE, IMAGE_SIDE]),
                device,
            ),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

pub(crate) fn pick_device(request: DeviceRequest) -> Result<(Device, bool), TrainError> {
    match request {
        DeviceRequest::Cpu => Ok((Device::flex(), false)),
        DeviceRequest::Auto => Ok(match cuda::device() {
            Some(device) => (device, true),
            None => (Device::flex(), false),
        }),
        DeviceRequest::Cuda if !cfg!(feature = "cuda") => Err(TrainError::DeviceUnavailable(
            "burn: CUDA was asked for, but this binary was built without burn's `cuda` feature"
                .into(),
        )),
        DeviceRequest::Cuda => cuda::device().map(|d| (d, true)).ok_or_else(|| {
            TrainError::DeviceUnavailable(
                "burn: CUDA was asked for, but no CUDA device can be opened".into(),
            )
        }),
    }
}

/// Correct predictions in a batch, as a float scalar tensor on the device.
pub(crate) fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(labels)
        .int()
        .sum()
        .float()
}
