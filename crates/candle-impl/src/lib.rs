//! LeNet2 and LeNet3 on candle 0.11 (candle-core and candle-nn), on the CPU and, with the `cuda`
//! feature, on CUDA.
//!
//! The implementation is idiomatic candle, as a user would write it: the networks are structs of
//! candle-nn's `Conv2d` and `Linear` built through a `VarBuilder` over a `VarMap` (`model.rs`; the
//! variable names are the shared PyTorch names), candle's own autograd, and candle-nn's `AdamW`
//! with weight decay 0 — plain Adam, as the recipe says (candle's default decay is 0.01). Both
//! splits are uploaded once; a step gathers its batch with `index_select` on the device, and the
//! loss and correct counts are summed there and read once per epoch.

mod bare;
mod captured;
mod device;
pub mod model;
mod serve;
mod trainer;
mod tuned;
mod weights;

pub use device::cuda_available;
pub use model::{first_max_pool, Pool};
pub use trainer::CandleTrainer;
pub use tuned::{MMAP_THRESHOLD, TRIM_THRESHOLD};

use common::bare::BareLoop;
use common::framework::{CudaCode, Description, Framework, Parity};
use common::harness::{DeviceRequest, RunSpec, Trainer};
use common::mnist::Mnist;
use common::serve::Predictor;
use common::spec::ModelKind;
use common::weights::Weights;
use common::TrainError;

const FRAMEWORK: &str = "candle";
pub const VERSION: &str = "0.11.1";

/// The framework and its version, as the reports name them.
pub(crate) fn framework_version() -> String {
    format!("candle-core {VERSION}, candle-nn {VERSION}")
}

fn backend_error(e: candle_core::Error) -> TrainError {
    TrainError::Backend {
        framework: FRAMEWORK,
        message: e.to_string(),
    }
}

impl Pool {
    /// The name the comparison gives a candle run with this pooling.
    pub fn framework(self) -> &'static str {
        match self {
            Pool::MaxPool2d => CANDLE.description.name,
            Pool::FirstMax => CANDLE_FIRSTMAX.description.name,
        }
    }
}

/// candle in the registry: one value per pooling.
pub struct Candle {
    pub pool: Pool,
    description: Description,
}

/// What both rows share: candle's defaults, its model source and its CUDA build (candle's CUDA
/// kernels and cuDNN, in the main CUDA binary).
const DESCRIPTION: Description = Description {
    name: FRAMEWORK,
    colour: [31, 119, 180],
    defaults: [
        FRAMEWORK,
        "normal, sd √2/√fan_in (Kaiming normal, ReLU gain)",
        "uniform ±1/√in_channels",
        "normal, sd √2/√inputs (Kaiming normal, ReLU gain)",
        "uniform ±1/√inputs",
        "AdamW only, eps 1e-8",
        "0.01 (decoupled)",
        "no (the CPU generator refuses a seed)",
    ],
    model_source: "crates/candle-impl/src/model.rs",
    compared_by_default: true,
    // candle 0.11.1's `max_pool2d` backward pass does not route gradients as PyTorch's does (see
    // `tests/pool.rs`), so idiomatic candle's steps drift from tch's and only its logits are held
    // to parity.
    parity: Parity::Logits,
    cuda: CudaCode {
        features: &["candle-impl/cudnn"],
        own_binary: false,
    },
};

/// candle as its users write it (`max_pool2d`).
pub static CANDLE: Candle = Candle {
    pool: Pool::MaxPool2d,
    description: DESCRIPTION,
};

/// candle with a max-pool whose gradient is PyTorch's, held to step parity: it differs from
/// `candle` only in the pooling, so its steps check everything else (convolutions, linear layers,
/// loss, Adam, data order). A parity check, not what candle's users write: not compared by default.
pub static CANDLE_FIRSTMAX: Candle = Candle {
    pool: Pool::FirstMax,
    description: Description {
        name: "candle-firstmax",
        colour: [23, 190, 207],
        compared_by_default: false,
        parity: Parity::Steps {
            within: 1e-3,
            later: None,
        },
        ..DESCRIPTION
    },
};

impl Framework for Candle {
    fn description(&self) -> &Description {
        &self.description
    }

    fn trainer(
        &self,
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
    ) -> Result<Box<dyn Trainer>, TrainError> {
        Ok(Box::new(CandleTrainer::new(spec, data, init, self.pool)?))
    }

    /// candle's CPU generator cannot be seeded, so `seed` is not used.
    fn native_weights(&self, model: ModelKind, _seed: u64) -> Result<Weights, TrainError> {
        weights::native_weights(model)
    }

    fn predictor(
        &self,
        model: ModelKind,
        weights: &Weights,
        device: DeviceRequest,
        _threads: Option<usize>,
    ) -> Result<Box<dyn Predictor>, TrainError> {
        Ok(Box::new(serve::predictor(
            model, weights, device, self.pool,
        )?))
    }

    fn cuda_available(&self) -> bool {
        cuda_available()
    }

    fn bare(&self, model: ModelKind, data: &Mnist) -> Result<Box<dyn BareLoop>, TrainError> {
        Ok(Box::new(bare::Bare::new(model, self.pool, data)?))
    }
}
