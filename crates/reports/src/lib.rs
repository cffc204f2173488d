//! What a run leaves behind and what describes it: the run report's schema ([`report`], one JSON
//! file per run), the machine it ran on ([`env`], probed once per run), the registry's catalogue of
//! frameworks as a binary prints it ([`catalogue`]), what makes runs comparable ([`plan`]), and the
//! build-cost records of `cargo xtask cost`
//! ([`cost`]), and what serving a trained model costs ([`serve`], `lenet serve`). Plain data with serde, read and written atomically; nothing here draws or tabulates
//! (that is `results`), measures (`meters`) or downloads (`datasets`).
//!
//! Modules depend on each other in one direction only (tested): `env`, `catalogue` and `plan` on nothing;
//! `report` on `env`; `cost` on `env` and `report`; `serve` on `env`.

pub mod catalogue;
pub mod cost;
pub mod env;
pub mod plan;
pub mod report;
pub mod serve;

pub use catalogue::Catalogue;
pub use env::Environment;
pub use plan::Plan;
pub use report::{RunReport, SCHEMA};
