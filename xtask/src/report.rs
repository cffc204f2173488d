//! `cargo xtask report`: rebuilds every results folder's `summary.md` and charts from its raw
//! reports, redraws the sample grids where the dataset is at hand, rewrites the index
//! `OUT/README.md`, rewrites any report whose recorded command names a local path, copies the
//! models' marked source regions into `docs/models.md`, and writes the front page's verdict and
//! headline tables from the results. Each folder is read once for the summaries (the verdict reads
//! them again, with the build-cost records).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use common::Dataset;
use results::folder::{self, write_picture};
use results::plots::Picture;

use crate::{compare, setup};

pub fn run(out: &Path, merge: &[PathBuf], lenet: Option<&Path>) -> Result<bool> {
    if !merge.is_empty() {
        let n = merge_reports(merge, out)?;
        println!("merged {n} run reports into {}", out.display());
    }
    // The colours, the baseline and the defaults come from the registry of the binary.
    let lenet = match lenet {
        Some(l) => l.to_path_buf(),
        None => setup::run()?.build_lenet()?,
    };
    let catalogue = compare::catalogue(&lenet)?;
    let mut folders = folder::load_all(out, &catalogue)?;
    // Each dataset is read and its sample grid drawn once, whatever the number of folders.
    let mut samples: BTreeMap<Dataset, Option<Picture>> = BTreeMap::new();
    for folder in &mut folders {
        let scrubbed = folder.scrub_commands()?;
        if scrubbed > 0 {
            println!(
                "removed local paths from the commands of {scrubbed} report{} in {}",
                if scrubbed == 1 { "" } else { "s" },
                folder.dir.display()
            );
        }
        let mut datasets: Vec<Dataset> = folder.reports.iter().map(|r| r.spec.dataset).collect();
        datasets.sort();
        datasets.dedup();
        for dataset in datasets {
            if let Entry::Vacant(slot) = samples.entry(dataset) {
                let picture = match datasets::resolve_dataset_dir(dataset, None)
                    .ok()
                    .filter(|(d, _)| d.is_dir())
                    .and_then(|(d, _)| common::Mnist::load_dir(dataset, &d).ok())
                {
                    Some(data) => Some(results::plots::samples(dataset, &data.test, 8)?),
                    None => None,
                };
                slot.insert(picture);
            }
            let file = folder.dir.join(format!("{dataset}-samples.svg"));
            match &samples[&dataset] {
                Some(picture) => write_picture(&folder.dir, picture)?,
                None if file.is_file() => eprintln!(
                    "{} not found here: kept {}",
                    dataset.title(),
                    file.display()
                ),
                None => eprintln!(
                    "{} not found here: no sample images in {}",
                    dataset.title(),
                    folder.dir.display()
                ),
            }
        }
        folder.write_summary(&catalogue)?;
        println!("rewrote {}", folder.dir.join("summary.md").display());
    }
    for dir in folder::cost_dirs(out)? {
        let title = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
        results::cost::write_summary(&dir, &title)?;
        println!("rewrote {}", dir.join("summary.md").display());
    }
    folder::write_index(out, &folders)?;
    println!("rewrote {}", out.join("README.md").display());
    // The repository's pages are made from the repository's results, not from another folder's.
    let root = setup::root();
    let repository_results = root.join("results").canonicalize().ok();
    if out.canonicalize().ok() != repository_results {
        return Ok(true);
    }
    // The side-by-side model listings, from the model sources the registry names.
    if results::listings::update_page(&catalogue, &root)? {
        println!("rewrote the model listings in {}", results::listings::PAGE);
    }
    // The front page's verdict and headline tables, from the results.
    if results::verdict::update_page(&root, &catalogue)? {
        println!("rewrote the verdict in {}", results::verdict::PAGE);
    }
    Ok(true)
}

/// Copies every run report (`*.json`) of the results folders under each of `from` to the same
/// relative place under `out` (the slices of a sharded comparison: the same machine and tag, other
/// runs). A file already there with the same bytes is left; with other bytes it is an error, which
/// names both. Returns how many reports were copied.
pub fn merge_reports(from: &[PathBuf], out: &Path) -> Result<usize> {
    let mut copied = 0;
    for source in from {
        let dirs = folder::result_dirs(source)
            .with_context(|| format!("cannot read the results folder {}", source.display()))?;
        if dirs.is_empty() {
            anyhow::bail!("{} holds no results folder", source.display());
        }
        for dir in dirs {
            let relative = dir.strip_prefix(source).unwrap_or(&dir);
            let target = out.join(relative);
            std::fs::create_dir_all(&target)
                .with_context(|| format!("cannot create {}", target.display()))?;
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
            {
                let path = entry?.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let dest = target.join(path.file_name().unwrap_or_default());
                match std::fs::read(&dest) {
                    Ok(existing) if existing == bytes => continue,
                    Ok(_) => anyhow::bail!(
                        "{} and {} are the same run with different reports: two slices ran it",
                        path.display(),
                        dest.display()
                    ),
                    Err(_) => {}
                }
                common::fsio::write_atomic(&dest, &bytes)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}
