//! The framework-free core of lenet-compare. Everything that must be *identical* for every framework
//! lives here, so that a comparison differs only in the framework: the MNIST files and their checks,
//! the model specifications (layer table, PyTorch parameter names and layouts), the initial weights and
//! each epoch's batch order (both drawn from the run's seed), the epoch loop with its clocks, and the
//! JSON run report. A framework crate implements the narrow [`Trainer`] trait over plain data
//! ([`Weights`], index slices, totals) and never exposes a tensor type; this crate depends on no
//! deep-learning framework.

pub mod error;
pub mod harness;
pub mod idx;
pub mod mnist;
pub mod order;
pub mod plots;
pub mod reference;
pub mod report;
pub mod spec;
pub mod summary;
pub mod weights;

pub use error::{DataError, Error, TrainError};
pub use harness::{
    BackendInfo, DeviceKind, DeviceRequest, Observer, RunSpec, SplitKind, Totals, Trainer,
};
pub use mnist::{Dataset, Mnist, Split};
pub use report::{EpochRecord, RunReport};
pub use spec::{Layer, ModelKind, ModelSpec};
pub use weights::{ParamTensor, Weights};
