//! The framework-free core of lenet-compare, and all that a framework crate depends on. Everything
//! that must be *identical* for every framework lives here, so that a comparison differs only in the
//! framework: the MNIST files and their checks, the model specifications (layer table, PyTorch
//! parameter names and layouts), the initial weights and each epoch's batch order (both drawn from
//! the run's seed), and the run's settings and the trait a framework implements (the epoch loop
//! that drives it, with its clocks and records, is the `epochs` crate's). A framework crate
//! implements the narrow [`Trainer`] trait over plain data ([`Weights`], index slices, totals), tells
//! the registry about itself through [`Framework`], and never exposes a tensor type; this crate
//! depends on no deep-learning framework, and on nothing that draws, tabulates or downloads (that is
//! the `results` crate's, which only the binaries use).
//!
//! Modules depend on each other in one direction only (a test checks it): `error` and `fsio` on
//! nothing; `idx` on `error`; `mnist` on `idx`; `spec` on `mnist`; `order` on nothing; `weights` on
//! `spec` and `order`; `reference` on `spec` and `weights`; `harness` on all of those; `bare` on
//! `error`; `serve` (a predictor and what is measured of it) on `error`, `mnist` and `harness`;
//! `framework` on `harness`, `bare` and `serve`; `cli` (the shared run options, with the `cli`
//! feature) on `harness` and `mnist`; `replay_check` (a captured step's self-check) on nothing.

pub mod bare;
pub mod capture;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod framework;
pub mod fsio;
pub mod harness;
pub mod idx;
pub mod mnist;
pub mod order;
pub mod reference;
pub mod replay_check;
pub mod serve;
pub mod spec;
pub mod weights;

pub use error::{DataError, Error, TrainError, UnknownValue};
pub use framework::{Description, Framework, FrameworkDefaults, FrameworkInfo, Parity};
pub use harness::{
    BackendInfo, DeviceKind, DeviceRequest, Profile, RunSpec, Totals, Trainer, Tuning,
};
pub use mnist::{Dataset, Mnist, Split, SplitKind};
pub use spec::{Layer, ModelKind, ModelSpec};
pub use weights::{ParamTensor, Weights};
