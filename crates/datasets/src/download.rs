//! Finding a dataset's folder and, when that is the cache, filling it with a download. Downloads
//! are verified against the published MD5 sums of the decompressed files and land in the cache only
//! through a rename, so an interrupted or corrupt download never leaves a file behind.

use std::io::Read;
use std::path::{Path, PathBuf};

use common::mnist::{find_file, StandardFile};
use common::{DataError, Dataset, Error, Mnist};

use crate::find::{resolve_dataset_dir, DirSource, Sources};
use md5::{Digest, Md5};

type Result<T> = std::result::Result<T, Error>;

/// Loads a dataset from the folder that [`locate`] finds.
pub fn load(dataset: Dataset, option: Option<&Path>) -> Result<Mnist> {
    let dir = locate(dataset, option)?;
    Mnist::load_dir(dataset, &dir)
}

/// The data folder of `dataset` (see [`resolve_dataset_dir`]), filled by a download
/// when it is the cache; an explicit folder that does not exist, or is a file, is an error that says
/// where the name came from.
pub fn locate(dataset: Dataset, option: Option<&Path>) -> Result<PathBuf> {
    let (dir, source) = resolve_dataset_dir(dataset, option)?;
    let how = match source {
        DirSource::Option => "the data folder given by --data-dir".to_string(),
        DirSource::Env => format!("the data folder given by {}", dataset.env_var()),
        DirSource::System | DirSource::Cache => String::new(),
    };
    match source {
        DirSource::Cache => download_dataset(dataset, &dir)?,
        DirSource::Option | DirSource::Env if dir.is_file() => {
            return Err(DataError::new(&dir, format!("{how} is a file, not a folder")).into());
        }
        DirSource::Option | DirSource::Env if !dir.is_dir() => {
            return Err(DataError::new(&dir, format!("{how} does not exist")).into());
        }
        _ => {}
    }
    Ok(dir)
}

/// Downloads each of the dataset's files that `dir` lacks, verified, with a progress bar, from the
/// dataset's mirror variable (`MNIST_MIRROR`, `FASHION_MNIST_MIRROR`) if set, else from its mirrors.
pub fn download_dataset(dataset: Dataset, dir: &Path) -> Result<()> {
    let mirrors: Vec<String> = match std::env::var(dataset.mirror_var()) {
        Ok(m) if !m.is_empty() => vec![m],
        _ => dataset.mirrors().iter().map(|m| m.to_string()).collect(),
    };
    download_files_from(dataset, dir, &mirrors)
}

/// Downloads each of the dataset's files that `dir` lacks from the first of `mirrors` that serves
/// it intact.
pub fn download_files_from(dataset: Dataset, dir: &Path, mirrors: &[String]) -> Result<()> {
    let files = dataset.files();
    let missing: Vec<_> = files
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
                    "missing and could not be downloaded ({}); pass --data-dir or set {} to a folder that holds the {} files",
                    failures.join("; "),
                    dataset.env_var(),
                    dataset.title()
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
    common::fsio::write_atomic(&final_path, &body).map_err(|e| e.to_string())
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
