//! What only the binaries need, kept out of the framework crates: the JSON run report and the probe
//! of the machine it records, the datasets' downloads, and the presentation of results (the
//! comparison table, the charts, the results folders and their index, the README's side-by-side
//! model listings). It depends on `common` and on no deep-learning framework; what it knows of the
//! frameworks (names, colours, the baseline, their defaults, their model sources) comes as a
//! [`Catalogue`], the registry's own description of them.

pub mod catalogue;
pub mod cost;
pub mod data;
pub mod env;
pub mod folder;
pub mod gpu;
pub mod listings;
pub mod plots;
pub mod report;
pub mod summary;
pub mod sweep;

pub use catalogue::Catalogue;
pub use env::Environment;
pub use folder::ResultsFolder;
pub use report::{RunReport, SCHEMA};
