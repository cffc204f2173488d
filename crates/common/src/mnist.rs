//! MNIST: where its four files are, reading and checking them, and downloading them when absent.
//!
//! The folder comes from, in order: an explicit option, `MNIST_DIR`, the user's cache folder
//! (`$XDG_CACHE_HOME/lenet-compare/mnist` or `~/.cache/lenet-compare/mnist`). Only the cache folder
//! is ever filled by a download; an explicit folder with a missing file is an error naming the file.
//! Downloads are verified against the published MD5 sums of the decompressed files and land in the
//! cache only through a rename, so an interrupted or corrupt download never leaves a file behind.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::error::{DataError, Error, Result};
use crate::idx;

pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
pub const CLASSES: usize = 10;

/// One of the four standard files, with its published size and MD5 (of the decompressed file).
#[derive(Debug, Clone, Copy)]
pub struct StandardFile {
    pub name: &'static str,
    pub bytes: u64,
    pub md5: &'static str,
}

pub const TRAIN_IMAGES: StandardFile = StandardFile {
    name: "train-images-idx3-ubyte",
    bytes: 47_040_016,
    md5: "6bbc9ace898e44ae57da46a324031adb",
};
pub const TRAIN_LABELS: StandardFile = StandardFile {
    name: "train-labels-idx1-ubyte",
    bytes: 60_008,
    md5: "a25bea736e30d166cdddb491f175f624",
};
pub const TEST_IMAGES: StandardFile = StandardFile {
    name: "t10k-images-idx3-ubyte",
    bytes: 7_840_016,
    md5: "2646ac647ad5339dbf082846283269ea",
};
pub const TEST_LABELS: StandardFile = StandardFile {
    name: "t10k-labels-idx1-ubyte",
    bytes: 10_008,
    md5: "27ae3e4e09519cfbb04c329615203637",
};
pub const FILES: [StandardFile; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// The mirrors tried in order; `MNIST_MIRROR` (a base URL) replaces them.
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// One split: images as row-major bytes (`len * 784`), labels in 0..10.
#[derive(Debug, Clone)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps the first `n` examples.
    pub fn truncate(&mut self, n: usize) {
        self.labels.truncate(n);
        self.images.truncate(n * IMAGE_PIXELS);
    }

    /// Pixels scaled as the recipe says, `(x / 255 - 0.5) / 0.5`, computed once here so that every
    /// framework uploads bit-identical inputs.
    pub fn normalized_images(&self) -> Vec<f32> {
        self.images
            .iter()
            .map(|&p| (p as f32 / 255.0 - 0.5) / 0.5)
            .collect()
    }

    /// Labels as i64, the type the frameworks' cross-entropy expects.
    pub fn labels_i64(&self) -> Vec<i64> {
        self.labels.iter().map(|&l| l as i64).collect()
    }
}

/// The training and test splits.
#[derive(Debug, Clone)]
pub struct Mnist {
    pub train: Split,
    pub test: Split,
    /// The folder the files were read from.
    pub dir: PathBuf,
}

/// Where the data folder came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSource {
    Option,
    Env,
    Cache,
}

/// Resolves the data folder: the option, else `MNIST_DIR`, else the cache folder.
pub fn resolve_dir(option: Option<&Path>) -> Result<(PathBuf, DirSource)> {
    if let Some(dir) = option {
        return Ok((dir.to_path_buf(), DirSource::Option));
    }
    if let Some(dir) = std::env::var_os("MNIST_DIR").filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(dir), DirSource::Env));
    }
    cache_dir()
        .map(|d| (d, DirSource::Cache))
        .ok_or_else(|| {
            Error::Invalid(
                "no data folder: pass --data-dir or set MNIST_DIR (no cache folder either: HOME is unset)"
                    .into(),
            )
        })
}

/// The cache folder for downloads.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("lenet-compare").join("mnist"))
}

/// Finds a standard file in `dir`, plain or gzip.
pub fn find_file(dir: &Path, file: &StandardFile) -> Option<PathBuf> {
    [file.name.to_string(), format!("{}.gz", file.name)]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

impl Mnist {
    /// Loads MNIST from the folder that [`resolve_dir`] picks, downloading into the cache if needed.
    pub fn load(option: Option<&Path>) -> Result<Self> {
        let (dir, source) = resolve_dir(option)?;
        if source == DirSource::Cache {
            download_missing(&dir)?;
        } else if !dir.is_dir() {
            let how = match source {
                DirSource::Option => "the data folder given by --data-dir",
                _ => "the data folder given by MNIST_DIR",
            };
            return Err(DataError::new(&dir, format!("{how} does not exist")).into());
        }
        Self::load_dir(&dir)
    }

    /// Loads and checks the four files in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let path = |f: &StandardFile| {
            find_file(dir, f).ok_or_else(|| {
                DataError::new(
                    dir.join(format!("{}.gz", f.name)),
                    format!("missing (neither {0} nor {0}.gz is in the folder)", f.name),
                )
            })
        };
        let train = read_split(&path(&TRAIN_IMAGES)?, &path(&TRAIN_LABELS)?)?;
        let test = read_split(&path(&TEST_IMAGES)?, &path(&TEST_LABELS)?)?;
        Ok(Self {
            train,
            test,
            dir: dir.to_path_buf(),
        })
    }

    /// Keeps the first `n` training and the first `n` test examples (fewer if a split is smaller).
    pub fn limit(&mut self, n: usize) {
        self.train.truncate(n);
        self.test.truncate(n);
    }
}

/// Reads an image file and its label file and checks that they agree.
pub fn read_split(images_path: &Path, labels_path: &Path) -> Result<Split, DataError> {
    let images = idx::read_u8(images_path)?;
    if images.dims.len() != 3 || images.dims[1] != IMAGE_SIDE || images.dims[2] != IMAGE_SIDE {
        return Err(DataError::new(
            images_path,
            format!(
                "dimensions {:?}, expected [count, {IMAGE_SIDE}, {IMAGE_SIDE}]",
                images.dims
            ),
        ));
    }
    let labels = idx::read_u8(labels_path)?;
    if labels.dims.len() != 1 {
        return Err(DataError::new(
            labels_path,
            format!("dimensions {:?}, expected [count]", labels.dims),
        ));
    }
    if labels.dims[0] != images.dims[0] {
        return Err(DataError::new(
            labels_path,
            format!(
                "{} labels but {} has {} images",
                labels.dims[0],
                images_path.display(),
                images.dims[0]
            ),
        ));
    }
    if images.dims[0] == 0 {
        return Err(DataError::new(images_path, "holds no images"));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= CLASSES)
    {
        return Err(DataError::new(
            labels_path,
            format!("label {l} at index {i} is outside 0..{}", CLASSES - 1),
        ));
    }
    Ok(Split {
        images: images.data,
        labels: labels.data,
    })
}

/// Downloads each standard file that `dir` lacks, verified, with a progress bar, from
/// `MNIST_MIRROR` if set, else from [`MIRRORS`].
pub fn download_missing(dir: &Path) -> Result<()> {
    let mirrors: Vec<String> = match std::env::var("MNIST_MIRROR") {
        Ok(m) if !m.is_empty() => vec![m],
        _ => MIRRORS.iter().map(|m| m.to_string()).collect(),
    };
    download_missing_from(dir, &mirrors)
}

/// Downloads each standard file that `dir` lacks from the first of `mirrors` that serves it intact.
pub fn download_missing_from(dir: &Path, mirrors: &[String]) -> Result<()> {
    let missing: Vec<_> = FILES
        .iter()
        .filter(|f| find_file(dir, f).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    for file in missing {
        let mut failures = Vec::new();
        let mut done = false;
        for mirror in mirrors {
            let url = format!("{}/{}.gz", mirror.trim_end_matches('/'), file.name);
            match download_one(&url, dir, file) {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        if !done {
            return Err(DataError::new(
                dir.join(format!("{}.gz", file.name)),
                format!(
                    "missing and could not be downloaded ({}); pass --data-dir or set MNIST_DIR to a folder that holds the MNIST files",
                    failures.join("; ")
                ),
            )
            .into());
        }
    }
    Ok(())
}

fn download_one(url: &str, dir: &Path, file: &StandardFile) -> std::result::Result<(), String> {
    let response = ureq::get(url).call().map_err(|e| e.to_string())?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bar =
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr())
            .with_message(format!("downloading {}.gz", file.name));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut body = Vec::new();
    let mut reader = bar.wrap_read(response.into_body().into_reader());
    reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    verify(&body, file)?;
    let final_path = dir.join(format!("{}.gz", file.name));
    crate::report::write_atomic(&final_path, &body).map_err(|e| e.to_string())
}

/// Checks a downloaded gzip file against the published size and MD5 of its decompressed content.
pub fn verify(gz: &[u8], file: &StandardFile) -> std::result::Result<(), String> {
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(file.bytes + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("not a valid gzip download: {e}"))?;
    if data.len() as u64 != file.bytes {
        return Err(format!(
            "decompressed size {} bytes, expected {}",
            data.len(),
            file.bytes
        ));
    }
    let digest = Md5::digest(&data);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if hex != file.md5 {
        return Err(format!(
            "checksum {hex} does not match the published {}",
            file.md5
        ));
    }
    Ok(())
}
