//! The presentation of results, for the binaries: the comparison table and its columns
//! ([`summary`]), the sweeps' series ([`sweep`]), the charts ([`plots`]), the results folders and
//! their index ([`folder`]), the build-cost summaries ([`cost`]), the serving summaries and charts
//! ([`serve`]), the side-by-side model listings
//! ([`listings`]) and the front page's verdict ([`verdict`]). It reads what `reports` defines and
//! depends on no deep-learning framework; what it knows of the frameworks (names, colours, the
//! baseline, their defaults, their model sources) comes as a `reports::Catalogue`, the registry's
//! own description of them. `summary`, `folder` and `verdict` are each split by job into a folder of
//! their own beside their file (`summary/columns.rs`, `folder/index.rs`, `verdict/needs.rs`, ...).
//!
//! Modules depend on each other in one direction only (tested): `summary` on nothing of the crate;
//! `sweep` on `summary`; `plots` on `summary` and `sweep`; `folder` on those three; `cost` on
//! `folder`; `serve` on `folder`, `summary` and `plots`; `listings` on nothing; `verdict` on `folder`, `summary`, `listings` and `cost`'s
//! records.

pub mod cost;
pub mod folder;
pub mod listings;
pub mod plots;
pub mod serve;
pub mod summary;
pub mod sweep;
pub mod verdict;

pub use folder::ResultsFolder;
