//! MNIST and Fashion-MNIST (same format, same file names): where their four files are, and reading
//! and checking them. Downloading them into the cache is the binaries' business (the `results`
//! crate), so that no framework crate links an HTTP client.
//!
//! The folder comes from, in order: an explicit option, the dataset's variable (`MNIST_DIR`,
//! `FASHION_MNIST_DIR`), a system folder where a distribution package puts it (Debian's
//! `dataset-fashion-mnist`: `/usr/share/datasets/fashion-mnist`), the user's cache folder
//! (`$XDG_CACHE_HOME/lenet-compare/<dataset>` or `~/.cache/lenet-compare/<dataset>`). Only the cache
//! folder is ever filled by a download; an explicit folder with a missing file is an error naming the
//! file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Error, Result, UnknownValue};
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

/// Fashion-MNIST's files: MNIST's names and sizes, other content. The MD5 sums are of the decompressed
/// files (Zalando publishes those of its gzip files, which a recompressing mirror changes).
pub const FASHION_FILES: [StandardFile; 4] = [
    StandardFile {
        md5: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        ..TRAIN_IMAGES
    },
    StandardFile {
        md5: "9018921c3c673c538a1fc5bad174d6f9",
        ..TRAIN_LABELS
    },
    StandardFile {
        md5: "8181f5470baa50b63fa0f6fddb340f0a",
        ..TEST_IMAGES
    },
    StandardFile {
        md5: "15d484375f8d13e6eb1aabb0c3f46965",
        ..TEST_LABELS
    },
];

/// Which of the two 28x28, ten-class datasets a run uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    /// Handwritten digits, the tutorial's dataset.
    #[default]
    Mnist,
    /// Zalando's clothing images, where the models do not all saturate at 99%.
    FashionMnist,
}

impl Dataset {
    pub const ALL: [Dataset; 2] = [Dataset::Mnist, Dataset::FashionMnist];

    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
        }
    }

    /// How people write it.
    pub fn title(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST",
            Self::FashionMnist => "Fashion-MNIST",
        }
    }

    pub fn files(self) -> [StandardFile; 4] {
        match self {
            Self::Mnist => FILES,
            Self::FashionMnist => FASHION_FILES,
        }
    }

    /// The names of the ten classes, by label.
    pub fn class_names(self) -> [&'static str; CLASSES] {
        match self {
            Self::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Self::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dataset {
    type Err = UnknownValue;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "mnist" => Ok(Self::Mnist),
            "fashion-mnist" | "fashion" => Ok(Self::FashionMnist),
            _ => Err(UnknownValue::new("dataset", s, "mnist or fashion-mnist")),
        }
    }
}

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    Train,
    Test,
}

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
    pub dataset: Dataset,
}

/// Finds a standard file in `dir`, plain or gzip.
pub fn find_file(dir: &Path, file: &StandardFile) -> Option<PathBuf> {
    [file.name.to_string(), format!("{}.gz", file.name)]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

impl Mnist {
    /// Loads and checks the four files of `dataset` in `dir` (MNIST's names, which Fashion-MNIST
    /// shares).
    pub fn load_dir(dataset: Dataset, dir: &Path) -> Result<Self> {
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
            dataset,
        })
    }

    /// Keeps the first `n` training and the first `n` test examples (fewer if a split is smaller).
    pub fn limit(&mut self, n: usize) {
        self.train.truncate(n);
        self.test.truncate(n);
    }

    /// Checks an image limit given by a user against a split (training runs limit both, and the
    /// training set is the one that must hold them; evaluation limits the test set): a limit beyond
    /// it would silently mean "all of them", which is not what was asked for.
    pub fn check_limit(&self, n: usize, split: SplitKind) -> Result<()> {
        let (len, name) = match split {
            SplitKind::Train => (self.train.len(), "training"),
            SplitKind::Test => (self.test.len(), "test"),
        };
        if n == 0 || n > len {
            return Err(Error::Invalid(format!(
                "image limit {n} must be 1 to {len}, the number of {} {name} images in {} (leave \
                 --limit out to use them all)",
                self.dataset.title(),
                self.dir.display()
            )));
        }
        Ok(())
    }
}

/// Writes a plain data folder whose training and test splits both hold `labels.len()` images
/// (`pixels`, 784 bytes each) with these labels: small data sets for tests and tools.
pub fn write_dir(dir: &Path, pixels: &[u8], labels: &[u8]) -> std::io::Result<()> {
    let images = idx::encode_u8(&[labels.len(), IMAGE_SIDE, IMAGE_SIDE], pixels);
    let labels = idx::encode_u8(&[labels.len()], labels);
    for (file, bytes) in [
        (TRAIN_IMAGES, &images),
        (TRAIN_LABELS, &labels),
        (TEST_IMAGES, &images),
        (TEST_LABELS, &labels),
    ] {
        std::fs::write(dir.join(file.name), bytes)?;
    }
    Ok(())
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
