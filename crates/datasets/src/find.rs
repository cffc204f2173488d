//! Where a dataset's files are: the folder given, the dataset's variable (`MNIST_DIR`,
//! `FASHION_MNIST_DIR`), a distribution package's folder, or the cache folder that a download fills;
//! and where a download comes from.

use std::path::{Path, PathBuf};

use common::mnist::find_file;
use common::{Dataset, Error};

type Result<T> = std::result::Result<T, Error>;

/// The MNIST mirrors tried in order; `MNIST_MIRROR` (a base URL) replaces them.
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// The Fashion-MNIST mirror; `FASHION_MNIST_MIRROR` replaces it.
pub const FASHION_MIRRORS: [&str; 1] =
    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// Where a dataset is looked for and downloaded from.
pub trait Sources {
    /// The variable that names the data folder.
    fn env_var(self) -> &'static str;
    /// The variable that replaces the download mirrors.
    fn mirror_var(self) -> &'static str;
    fn mirrors(self) -> &'static [&'static str];
    /// Folders where a distribution package installs the dataset.
    fn system_dirs(self) -> &'static [&'static str];
}

impl Sources for Dataset {
    fn env_var(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST_DIR",
            Self::FashionMnist => "FASHION_MNIST_DIR",
        }
    }

    fn mirror_var(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST_MIRROR",
            Self::FashionMnist => "FASHION_MNIST_MIRROR",
        }
    }

    fn mirrors(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &MIRRORS,
            Self::FashionMnist => &FASHION_MIRRORS,
        }
    }

    fn system_dirs(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &[],
            Self::FashionMnist => &["/usr/share/datasets/fashion-mnist"],
        }
    }
}

/// Where the data folder came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSource {
    Option,
    Env,
    /// A distribution package's folder.
    System,
    Cache,
}

/// Resolves the data folder: the option, else the dataset's variable, else a system folder that
/// holds all four files, else the cache folder.
pub fn resolve_dataset_dir(
    dataset: Dataset,
    option: Option<&Path>,
) -> Result<(PathBuf, DirSource)> {
    if let Some(dir) = option {
        return Ok((dir.to_path_buf(), DirSource::Option));
    }
    if let Some(dir) = std::env::var_os(dataset.env_var()).filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(dir), DirSource::Env));
    }
    if let Some(dir) = dataset
        .system_dirs()
        .iter()
        .map(PathBuf::from)
        .find(|d| dataset.files().iter().all(|f| find_file(d, f).is_some()))
    {
        return Ok((dir, DirSource::System));
    }
    dataset_cache_dir(dataset)
        .map(|d| (d, DirSource::Cache))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no data folder: pass --data-dir or set {} (no cache folder either: HOME is unset)",
                dataset.env_var()
            ))
        })
}

/// A dataset's cache folder for downloads.
pub fn dataset_cache_dir(dataset: Dataset) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("lenet-compare").join(dataset.name()))
}
