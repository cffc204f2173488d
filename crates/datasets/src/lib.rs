//! Finding a dataset and fetching it, in one place: [`find`] resolves the folder (the option, the
//! dataset's variable, a distribution package's folder, the cache) and names the mirrors;
//! [`download`] fills the cache from them, verified, and loads the files. Reading and checking the
//! files themselves is `common::mnist`'s; this crate is the only one with an HTTP client, which the
//! framework crates never link.
//!
//! `download` depends on `find`, never the other way (tested).

pub mod download;
pub mod find;

pub use download::{download_dataset, download_files_from, load, locate, verify};
pub use find::{dataset_cache_dir, resolve_dataset_dir, DirSource, Sources};
