//! Where a candle run trains: the device asked for (on CUDA with a stream of its own where a graph
//! is to be recorded) and the splits uploaded to it once.

use candle_core::{DType, Device, Tensor, D};
use common::harness::DeviceRequest;
use common::mnist::{Split, IMAGE_SIDE};
use common::TrainError;

/// Whether this build can use CUDA and a device is there.
pub fn cuda_available() -> bool {
    candle_core::utils::cuda_is_available() && Device::new_cuda(0).is_ok()
}

/// One split on the device: images `[n, 1, 28, 28]` f32, labels `[n]` u32.
pub(crate) struct DeviceSplit {
    pub images: Tensor,
    pub labels: Tensor,
}

impl DeviceSplit {
    pub fn upload(split: &Split, device: &Device) -> candle_core::Result<Self> {
        let n = split.len();
        let labels: Vec<u32> = split.labels.iter().map(|&l| l as u32).collect();
        Ok(Self {
            images: Tensor::from_vec(
                split.normalized_images(),
                (n, 1, IMAGE_SIDE, IMAGE_SIDE),
                device,
            )?,
            labels: Tensor::from_vec(labels, n, device)?,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.dims1().unwrap_or(0)
    }
}

/// The device `request` asks for; on CUDA, with a stream of its own where `own_stream` (a CUDA
/// graph cannot be recorded on the legacy default stream).
pub(crate) fn pick_device(request: DeviceRequest, own_stream: bool) -> Result<Device, TrainError> {
    let cuda = || {
        if own_stream {
            Device::new_cuda_with_stream(0)
        } else {
            Device::new_cuda(0)
        }
    };
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Auto => Ok(cuda().unwrap_or(Device::Cpu)),
        DeviceRequest::Cuda if !candle_core::utils::cuda_is_available() => {
            Err(TrainError::DeviceUnavailable(
                "candle: CUDA was asked for, but this binary was built without candle's `cuda` feature"
                    .into(),
            ))
        }
        DeviceRequest::Cuda => cuda().map_err(|e| {
            TrainError::DeviceUnavailable(format!(
                "candle: CUDA was asked for, but no CUDA device can be opened: {e}"
            ))
        }),
    }
}

/// Correct predictions in a batch, as an f32 scalar on the device.
pub(crate) fn correct(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .sum_all()
}
