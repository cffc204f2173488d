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
use reports::Catalogue;
use results::folder::{self, write_picture};
use results::plots::Picture;
use results::ResultsFolder;

use crate::{flags, process, python_env, registry};

/// Each dataset's sample grid, drawn once whatever the number of folders (`None`: the dataset is
/// not on this machine).
type Samples = BTreeMap<Dataset, Option<Picture>>;

/// Rebuilds everything `flags.out` holds, and the repository's pages when it is the repository's
/// results folder.
pub fn run(flags: flags::Report) -> Result<bool> {
    let out = flags.out.as_path();
    if !flags.merge.is_empty() {
        let n = merge_reports(&flags.merge, out)?;
        println!("merged {n} run reports into {}", out.display());
    }
    // The colours, the baseline and the defaults come from the registry of the binary.
    let lenet = match flags.lenet {
        Some(l) => l,
        None => registry::build_lenet(&python_env::setup()?)?,
    };
    let catalogue = registry::catalogue(&lenet)?;
    let mut folders = folder::load_all(out, &catalogue)?;
    let mut samples = Samples::new();
    for folder in &mut folders {
        rebuild(folder, &catalogue, &mut samples)?;
    }
    for dir in folder::cost_dirs(out)? {
        let title = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
        results::cost::write_summary(&dir, &title)?;
        println!("rewrote {}", dir.join("summary.md").display());
    }
    for dir in folder::serve_dirs(out)? {
        let title = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
        results::serve::write_summary(&dir, &title, &catalogue)?;
        println!("rewrote {}", dir.join("summary.md").display());
    }
    folder::write_index(out, &folders)?;
    println!("rewrote {}", out.join("README.md").display());
    // The repository's pages are made from the repository's results, not from another folder's.
    let root = process::root();
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

/// Rewrites one results folder: the commands its reports record without local paths, its sample
/// grids, its summary.md and charts.
fn rebuild(folder: &mut ResultsFolder, catalogue: &Catalogue, samples: &mut Samples) -> Result<()> {
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
            slot.insert(draw_samples(dataset)?);
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
    folder.write_summary(catalogue)?;
    println!("rewrote {}", folder.dir.join("summary.md").display());
    Ok(())
}

/// The sample grid of `dataset`, where it is on this machine.
fn draw_samples(dataset: Dataset) -> Result<Option<Picture>> {
    let data = datasets::resolve_dataset_dir(dataset, None)
        .ok()
        .filter(|(d, _)| d.is_dir())
        .and_then(|(d, _)| common::Mnist::load_dir(dataset, &d).ok());
    Ok(match data {
        Some(data) => Some(results::plots::samples(dataset, &data.test, 8)?),
        None => None,
    })
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
