//! LeNet2 and LeNet3 on tch 0.24 (libtorch 2.11), on the CPU and on CUDA.
//!
//! The networks are tch structs (`model.rs`) whose variables are created under the shared PyTorch
//! names (`conv1.weight`, ...), so the shared initial weights are copied in by name. Both splits
//! are uploaded once, already normalised; a step gathers its batch on the device with
//! `index_select` on that epoch's order, and the loss and correct counts are summed on the device
//! and read once per epoch, so nothing in the step loop waits for the device.

mod bare;
mod device;
pub mod model;
mod serve;
mod trainer;
pub mod tuned;
mod weights;

use common::bare::BareLoop;
use common::framework::{CudaCode, Description, Framework, Parity};
use common::harness::{DeviceRequest, RunSpec, Trainer};
use common::mnist::Mnist;
use common::serve::Predictor;
use common::spec::ModelKind;
use common::weights::Weights;
use common::TrainError;

pub use device::{cuda_available, cuda_built};
pub use trainer::TchTrainer;

const FRAMEWORK: &str = "tch";
/// The libtorch version that tch 0.24 is built for.
pub const LIBTORCH_VERSION: &str = "2.11.0";

/// The framework and its version, as the reports name them.
pub(crate) fn framework_version() -> String {
    format!("tch 0.24.0, libtorch {LIBTORCH_VERSION}")
}

fn backend_error(e: tch::TchError) -> TrainError {
    TrainError::Backend {
        framework: FRAMEWORK,
        message: e.to_string(),
    }
}

/// tch in the registry.
pub struct Tch;

/// The registry's value for tch.
pub static TCH: Tch = Tch;

/// What tch is, as data.
static DESCRIPTION: Description = Description {
    name: FRAMEWORK,
    colour: [255, 127, 14],
    defaults: [
        FRAMEWORK,
        "uniform ±√6/√fan_in (Kaiming uniform, ReLU gain)",
        "zeros",
        "uniform ±√6/√fan_in (Kaiming uniform, ReLU gain)",
        "uniform ±1/√inputs",
        "nn::Adam, eps 1e-8",
        "0",
        "yes (tch::manual_seed)",
    ],
    model_source: "crates/tch-impl/src/model.rs",
    compared_by_default: true,
    // tch is the framework the others are held to: libtorch, the library PyTorch itself runs.
    parity: Parity::Reference,
    // libtorch brings CUDA: a CUDA libtorch at run time is all it takes.
    cuda: CudaCode::LIBRARY,
};

impl Framework for Tch {
    fn description(&self) -> &Description {
        &DESCRIPTION
    }

    fn trainer(
        &self,
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
    ) -> Result<Box<dyn Trainer>, TrainError> {
        Ok(Box::new(TchTrainer::new(spec, data, init)?))
    }

    fn native_weights(&self, model: ModelKind, seed: u64) -> Result<Weights, TrainError> {
        weights::native_weights(model, seed)
    }

    fn predictor(
        &self,
        model: ModelKind,
        weights: &Weights,
        device: DeviceRequest,
        threads: Option<usize>,
    ) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(serve::predictor(model, weights, device, threads)?))
    }

    fn cuda_available(&self) -> bool {
        cuda_available()
    }

    fn bare(&self, model: ModelKind, data: &Mnist) -> Result<Box<dyn BareLoop>, TrainError> {
        Ok(Box::new(bare::Bare::new(model, data)?))
    }
}
