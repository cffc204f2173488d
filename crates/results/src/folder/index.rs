//! The results index and the folders under a results root: which folders hold run reports (at
//! any depth), which hold build costs, each loaded, and `OUT/README.md` listing them.

use std::path::{Path, PathBuf};

use reports::{Catalogue, RunReport};

use super::{entries, write_file, Result, ResultsFolder, PROBES};

/// Every folder under `out` that holds run reports, at any depth.
pub fn result_dirs(out: &Path) -> Result<Vec<PathBuf>> {
    Ok(walk(out)?.0)
}

/// Every build-cost folder under `out` (see `reports::cost`), sorted.
pub fn cost_dirs(out: &Path) -> Result<Vec<PathBuf>> {
    Ok(walk(out)?.1)
}

/// Every serving folder under `out` (see `reports::serve`), sorted.
pub fn serve_dirs(out: &Path) -> Result<Vec<PathBuf>> {
    Ok(walk(out)?.2)
}

/// The folders under `out` that hold run reports, the build-cost folders and the serving folders
/// (whose JSON files are not run reports), each list sorted.
fn walk(out: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut runs, mut costs, mut serving) = (Vec::new(), Vec::new(), Vec::new());
    let mut stack = vec![out.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut has_reports = false;
        for path in entries(&dir)? {
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == reports::cost::FOLDER) {
                    costs.push(path);
                } else if path
                    .file_name()
                    .is_some_and(|n| n == reports::serve::FOLDER)
                {
                    serving.push(path);
                } else if path.file_name().is_some_and(|n| n == PROBES) {
                    // Measurements of the machine, not runs (python/launch_queue.py's JSON).
                } else {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "json") {
                has_reports = true;
            }
        }
        if has_reports {
            runs.push(dir);
        }
    }
    runs.sort();
    costs.sort();
    serving.sort();
    Ok((runs, costs, serving))
}

/// Every results folder under `out`, loaded, titled by its path under `out`.
pub fn load_all(out: &Path, catalogue: &Catalogue) -> Result<Vec<ResultsFolder>> {
    result_dirs(out)?
        .into_iter()
        .map(|dir| {
            let title = dir
                .strip_prefix(out)
                .unwrap_or(&dir)
                .to_string_lossy()
                .replace('\\', "/");
            ResultsFolder::load(&dir, &title, catalogue)
        })
        .collect()
}

/// `OUT/README.md`: each results folder with what it holds.
pub fn write_index(out: &Path, folders: &[ResultsFolder]) -> Result<()> {
    let mut text = String::from(
        "# Results\n\nEach folder holds one comparison on one machine: the raw JSON report of every \
         run, `summary.md` (the table, the machine, the versions) and the pictures. `cargo xtask \
         report` rebuilds the summaries, pictures and this list from the JSON.\n\n\
         | folder | machine | dataset | frameworks | models | epochs | runs |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut folders: Vec<&ResultsFolder> = folders.iter().collect();
    folders.sort_by(|a, b| a.dir.cmp(&b.dir));
    for folder in folders {
        if let Some(line) = index_line(folder, out) {
            text.push_str(&line);
        }
    }
    let costs = cost_dirs(out)?;
    if !costs.is_empty() {
        text.push_str(
            "\n## Build costs\n\nWhat each framework costs before its first step (`cargo xtask \
             cost`): build times, binary and native library sizes, dependency counts, first \
             epochs.\n\n| folder | builds |\n|---|---|\n",
        );
        for dir in costs {
            let name = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
            let builds: Vec<String> = reports::cost::load(&dir)?
                .iter()
                .map(|c| format!("{} ({})", c.framework, c.device))
                .collect();
            text.push_str(&format!(
                "| [{name}]({name}/summary.md) | {} |\n",
                builds.join(", ")
            ));
        }
    }
    let serving = serve_dirs(out)?;
    if !serving.is_empty() {
        text.push_str(
            "\n## Serving\n\nWhat it costs to serve the trained model in each row (`cargo xtask \
             serve`): load, cold start, single-image latency, throughput, memory, and the \
             answers compared.\n\n| folder | rows | models | threads |\n|---|---|---|---|\n",
        );
        for dir in serving {
            let name = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
            let found = reports::serve::ServeReport::load(&dir)?;
            let unique = |f: &dyn Fn(&reports::serve::ServeReport) -> String| {
                let mut v: Vec<String> = Vec::new();
                for r in &found {
                    if !v.contains(&f(r)) {
                        v.push(f(r));
                    }
                }
                v.join(", ")
            };
            text.push_str(&format!(
                "| [{name}]({name}/summary.md) | {} | {} | {} |\n",
                unique(&|r| r.framework.clone()),
                unique(&|r| r.model.to_string()),
                unique(&|r| r.threads.map_or_else(|| "all".into(), |t| t.to_string())),
            ));
        }
    }
    write_file(&out.join("README.md"), text.as_bytes())
}

/// The folder's line in the results index, `None` when it holds no report.
fn index_line(folder: &ResultsFolder, out: &Path) -> Option<String> {
    let reports = &folder.reports;
    let first = reports.first()?;
    let rel = folder.dir.strip_prefix(out).unwrap_or(&folder.dir);
    let link = rel.to_string_lossy().replace('\\', "/");
    let machine = match &first.environment.gpu {
        Some(gpu) if reports.iter().any(RunReport::on_cuda) => gpu.clone(),
        _ => format!(
            "{} ({} logical CPUs)",
            first.environment.cpu_model, first.environment.logical_cpus
        ),
    };
    let unique = |f: &dyn Fn(&RunReport) -> String| {
        let mut v: Vec<String> = reports.iter().map(f).collect();
        v.sort();
        v.dedup();
        v.join(", ")
    };
    let mut frameworks: Vec<String> = Vec::new();
    for r in reports {
        if !frameworks.contains(&r.spec.framework) {
            frameworks.push(r.spec.framework.clone());
        }
    }
    Some(format!(
        "| [{link}]({link}/summary.md) | {machine} | {} | {} | {} | {} | {} |\n",
        unique(&|r| r.spec.dataset.to_string()),
        frameworks.join(", "),
        unique(&|r| r.spec.model.to_string()),
        unique(&|r| r.spec.epochs.to_string()),
        reports.len()
    ))
}
