//! `cargo xtask serve`: what serving the trained model costs in every row, on this machine's CPU.
//! Each model is trained once (`lenet train` with the build's default framework, seed 0,
//! `--epochs`, into `target/serve-models/`), then each row measures that file in a process of its
//! own for each thread count: the Rust frameworks with `lenet serve` of a binary built with that
//! framework alone (`target/serve-bin/lenet-FEATURE`, so that a row's cold start and memory are
//! not another framework's: the default binary loads libtorch at its start), the Python rows
//! (`python/serve.py --list-rows`) with their script, whose cold starts this task times as `lenet
//! serve` times its own (`meters::cold`). The reports go to `OUT/MACHINE/serve/`, and its
//! `summary.md` is written from them.
//!
//! On a GPU machine without Rust, the GPU bundle runs it with its own binaries (`run.sh serve`:
//! `--lenet`, `--lenet-for`, `--python`, `--scripts`, `--device cuda`), on the model files the
//! bundle carries (`--model-dir`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use common::ModelKind;
use reports::serve::ServeReport;
use reports::Environment;

use crate::features::Features;
use crate::python_env::{self, Env};
use crate::workspace::Need;
use crate::{flags, process, registry, workspace};

/// The epochs of the training that makes a model file (seed 0, the recipe otherwise).
pub const EPOCHS: u32 = 2;
/// Where the trained model files are kept, under the repository.
const MODELS: &str = "target/serve-models";
/// Where the `lenet` binaries with one framework feature each are kept, under the repository.
const BINARIES: &str = "target/serve-bin";

/// One row: how it is started.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    /// A row of a `lenet` binary: its name, the binary, and the binary's other rows when it was
    /// given (the GPU bundle's, whose libraries a cold start loads too; none for a binary built
    /// here with one framework feature).
    Lenet(String, PathBuf, Vec<String>),
    /// A row of `python/serve.py`.
    Python(String),
}

impl Row {
    fn name(&self) -> &str {
        match self {
            Row::Lenet(n, ..) | Row::Python(n) => n,
        }
    }
}

/// What the rows run with: a `lenet` that trains the model files and names the frameworks, the
/// Python and serve.py; and, when they were built here, the environment they were built in.
struct Tools {
    lenet: PathBuf,
    python: PathBuf,
    script: PathBuf,
    built: Option<Env>,
}

/// The variable that tells `lenet serve` where ONNX Runtime's library is (the `ort` crate's).
const RUNTIME_LIBRARY: &str = "ORT_DYLIB_PATH";

impl Tools {
    /// The ONNX Runtime library of the Python rows' onnxruntime package (`serve.py
    /// --ort-library`), for the Rust row that serves the exported model; `None`, said once, where
    /// the package is missing (that row then says what it lacks).
    fn onnx_runtime_library(&self) -> Option<PathBuf> {
        let out = Command::new(&self.python)
            .arg(&self.script)
            .arg("--ort-library")
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "warning: no ONNX Runtime library for the Rust ONNX row: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    }

    /// Exports `model` to ONNX beside it (`serve.py --export`, which does nothing when the
    /// exported file is newer), for the rows that serve the exported model.
    fn export(&self, model: &Path) -> Result<()> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .arg("--export")
            .arg("--load")
            .arg(model);
        if !process::status(&mut cmd)? {
            bail!("exporting {} to ONNX failed", model.display());
        }
        Ok(())
    }

    /// The tools `flags` give (`--lenet`, `--python`, `--scripts`), the others set up here.
    fn new(flags: &flags::Serve) -> Result<Self> {
        let scripts = flags
            .scripts
            .clone()
            .unwrap_or_else(|| process::root().join("python"));
        let script = scripts.join("serve.py");
        if !script.is_file() {
            bail!("--scripts: no serve.py in {}", scripts.display());
        }
        let (lenet, python, built) = match (&flags.lenet, &flags.python) {
            (Some(lenet), Some(python)) => (lenet.clone(), python.clone(), None),
            (Some(lenet), None) => (lenet.clone(), python_env::setup()?.python, None),
            (None, python) => {
                let env = python_env::setup()?;
                let lenet = registry::build_lenet(&env)?;
                let python = python.clone().unwrap_or_else(|| env.python.clone());
                (lenet, python, Some(env))
            }
        };
        Ok(Self {
            lenet,
            python,
            script,
            built,
        })
    }
}

/// A row for each row `lenet` serves on `device` (`lenet serve --list-rows`), each with the
/// binary's other rows when `given`.
fn rows_of(lenet: &Path, device: &str, given: bool) -> Result<Vec<Row>> {
    let out = Command::new(lenet)
        .args(["serve", "--list-rows", "--device", device])
        .output()
        .with_context(|| format!("cannot start {}", lenet.display()))?;
    if !out.status.success() {
        bail!(
            "`{} serve --list-rows` {}: {}",
            lenet.display(),
            process::ended(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    Ok(names
        .iter()
        .map(|name| {
            let others = names.iter().filter(|n| given && *n != name).cloned();
            Row::Lenet(name.clone(), lenet.to_path_buf(), others.collect())
        })
        .collect())
}

/// The Rust rows: the given binaries' rows (`--lenet`, each `--lenet-for` framework with its own
/// binary), or every framework feature's `lenet` built with that feature alone (and the root's
/// other serving rows, which load nothing at start), copied aside, each row from the first binary
/// that has it, a row that is not a framework's from the first binary without libtorch (then the
/// default build again, as the other tasks expect it).
fn rust_rows(tools: &Tools, flags: &flags::Serve) -> Result<Vec<Row>> {
    let Some(env) = &tools.built else {
        let mut rows = rows_of(&tools.lenet, &flags.device, true)?;
        for (framework, file) in &flags.lenet_for {
            let own = rows_of(file, &flags.device, true)?
                .into_iter()
                .find(|r| r.name() == framework);
            let Some(own) = own else {
                bail!("--lenet-for: {} does not hold {framework}", file.display());
            };
            match rows.iter_mut().find(|r| r.name() == framework) {
                Some(row) => *row = own,
                None => rows.push(own),
            }
        }
        return Ok(rows);
    };
    let dir = process::root().join(BINARIES);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let workspace = workspace::workspace()?;
    let serving_only = workspace.default_extras();
    let mut rows: Vec<Row> = Vec::new();
    for feature in workspace::framework_features()? {
        let features = Features::new("--rows", Some(std::slice::from_ref(feature)))?
            .with_extra("--rows", &serving_only)?;
        let libtorch = features.needs(Need::Libtorch);
        let built = registry::build_lenet_with(&features)?;
        let alone = dir.join(format!("lenet-{feature}"));
        std::fs::copy(&built, &alone)
            .with_context(|| format!("cannot copy {} to {}", built.display(), alone.display()))?;
        let frameworks: Vec<String> = registry::catalogue(&alone)?
            .frameworks
            .into_iter()
            .map(|f| f.name)
            .collect();
        for row in rows_of(&alone, &flags.device, false)? {
            let framework = frameworks.iter().any(|f| f == row.name());
            let taken = rows.iter().any(|r| r.name() == row.name());
            if !taken && (framework || !libtorch) {
                rows.push(row);
            }
        }
    }
    registry::build_lenet(env)?;
    Ok(rows)
}

/// The rows the Python serving script offers on `device`.
fn python_rows(tools: &Tools, device: &str) -> Result<Vec<String>> {
    let out = Command::new(&tools.python)
        .arg(&tools.script)
        .args(["--list-rows", "--device", device])
        .output()
        .with_context(|| format!("cannot run {}", tools.python.display()))?;
    if !out.status.success() {
        bail!(
            "python/serve.py --list-rows {}: {}",
            process::ended(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The rows `asked` names (all of `known` by default), or an error that names the known ones.
fn choose(asked: Option<Vec<String>>, known: Vec<Row>) -> Result<Vec<Row>> {
    let Some(asked) = asked else {
        return Ok(known);
    };
    asked
        .iter()
        .map(|name| {
            known
                .iter()
                .find(|r| r.name() == name)
                .cloned()
                .with_context(|| {
                    let names: Vec<&str> = known.iter().map(Row::name).collect();
                    format!(
                        "--rows: unknown row '{name}': expected some of {}",
                        names.join(", ")
                    )
                })
        })
        .collect()
}

/// The options a user can get wrong, checked before anything is built or trained.
fn check(flags: &flags::Serve) -> Result<()> {
    if flags.measure.batch_sizes.contains(&0) {
        bail!("--batch-sizes: a batch holds at least one image, not 0");
    }
    if flags.threads.as_ref().is_some_and(|t| t.contains(&0)) {
        bail!("--threads: at least one thread, not 0");
    }
    if flags.measure.latency_images == 0 {
        bail!("--latency-images: at least one single-image prediction is timed, not 0");
    }
    if flags.epochs == 0 {
        bail!("--epochs: the model is trained for at least one epoch, not 0");
    }
    Ok(())
}

/// The folder of the model files: `--model-dir`, or target/serve-models.
pub fn model_dir(asked: Option<&Path>) -> PathBuf {
    asked.map_or_else(|| process::root().join(MODELS), Path::to_path_buf)
}

/// The model file of `model` in `dir` (trained `epochs` epochs from seed 0), trained now with
/// `lenet` on the CPU unless an earlier run left it.
pub fn model_file(
    lenet: &Path,
    model: ModelKind,
    epochs: u32,
    data_dir: Option<&Path>,
    dir: &Path,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("{model}-seed0-e{epochs}.safetensors"));
    if file.is_file() {
        return Ok(file);
    }
    eprintln!(
        "training {model} for {epochs} epochs (seed 0) into {}",
        file.display()
    );
    let mut cmd = Command::new(lenet);
    cmd.args(["train", "-q", "--model", model.name(), "--device", "cpu"])
        .args(["--epochs", &epochs.to_string(), "--seed", "0", "--save"])
        .arg(&file);
    if let Some(d) = data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    if !process::status(&mut cmd)? {
        bail!("training {model} for the serving measurement failed");
    }
    Ok(file)
}

/// The measurement options both kinds of row take, as arguments.
fn measured(flags: &flags::Serve, model: &Path, threads: usize) -> Vec<String> {
    let sizes: Vec<String> = flags
        .measure
        .batch_sizes
        .iter()
        .map(|b| b.to_string())
        .collect();
    let mut args: Vec<String> = [
        "--device",
        &flags.device,
        "--threads",
        &threads.to_string(),
        "--latency-images",
        &flags.measure.latency_images.to_string(),
        "--warmup",
        &flags.measure.warmup.to_string(),
        "--batch-sizes",
        &sizes.join(","),
        "--throughput-seconds",
        &flags.measure.throughput_seconds.to_string(),
        "--load",
    ]
    .map(String::from)
    .to_vec();
    args.push(model.display().to_string());
    if let Some(d) = &flags.data_dir {
        args.extend(["--data-dir".to_string(), d.display().to_string()]);
    }
    if let Some(n) = flags.measure.limit {
        args.extend(["--limit".to_string(), n.to_string()]);
    }
    args
}

/// Notes in the report at `out` that its row was served by a given binary that also holds
/// `others`, whose libraries its cold start and memory include (the GPU bundle's `lenet` holds
/// tch, whose start loads libtorch).
fn shared_binary_note(lenet: &Path, others: &[String], out: &Path) -> Result<()> {
    let mut report = ServeReport::read(out)?;
    report.notes.push(format!(
        "served by {}, a lenet that also holds {}: its cold start and memory include their \
         libraries' (libtorch's, where tch is one)",
        lenet.file_name().unwrap_or_default().to_string_lossy(),
        others.join(", ")
    ));
    report.write(out)?;
    Ok(())
}

/// Measures one row into `out`: `lenet serve` with its own cold starts, or the Python script and
/// then its cold starts timed here.
fn measure(
    (tools, onnx_runtime_library): (&Tools, Option<&Path>),
    row: &Row,
    (model, threads): (&Path, usize),
    flags: &flags::Serve,
    out: &Path,
) -> Result<()> {
    let args = measured(flags, model, threads);
    let mut cmd = match row {
        Row::Lenet(name, lenet, _) => {
            let mut c = Command::new(lenet);
            c.args(["serve", "--framework", name, "--cold-starts"])
                .arg(flags.measure.cold_starts.to_string());
            if let Some(library) = onnx_runtime_library {
                c.env(RUNTIME_LIBRARY, library);
            }
            c
        }
        Row::Python(name) => {
            let mut c = Command::new(&tools.python);
            c.arg(&tools.script).args(["--row", name]);
            c
        }
    };
    cmd.args(&args).arg("--out").arg(out);
    if !process::status(&mut cmd)? {
        bail!("{} failed", row.name());
    }
    if let Row::Lenet(_, lenet, others) = row {
        if !others.is_empty() {
            shared_binary_note(lenet, others, out)?;
        }
    }
    if let Row::Python(name) = row {
        let mut report = ServeReport::read(out)?;
        for _ in 0..flags.measure.cold_starts {
            let mut once = Command::new(&tools.python);
            once.arg(&tools.script)
                .args([
                    "--row",
                    name,
                    "--once",
                    "--device",
                    &flags.device,
                    "--threads",
                ])
                .arg(threads.to_string())
                .arg("--load")
                .arg(model);
            let (seconds, _) = meters::cold::time_to_first_line(&mut once)
                .with_context(|| format!("{name}: a cold start"))?;
            report.cold_start_seconds.push(seconds);
        }
        report.write(out)?;
    }
    Ok(())
}

/// The rows `flags` ask for: the Python script's, and the Rust rows (whose binaries are built only
/// when a row not of the Python script's is asked for).
fn rows(tools: &Tools, flags: &flags::Serve) -> Result<Vec<Row>> {
    let python = python_rows(tools, &flags.device)?;
    let rust_asked = flags
        .rows
        .as_ref()
        .is_none_or(|asked| asked.iter().any(|n| !python.contains(n)));
    let mut known = if rust_asked {
        rust_rows(tools, flags)?
    } else {
        Vec::new()
    };
    known.extend(python.into_iter().map(Row::Python));
    choose(flags.rows.clone(), known)
}

/// The thread counts to measure: `--threads`, or 1 and all of the machine's cores on the CPU and
/// all of them on CUDA (where they are the host's side only).
fn thread_counts(flags: &flags::Serve) -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let default = if flags.device == "cuda" {
        vec![cores]
    } else {
        vec![1, cores]
    };
    let mut threads = flags.threads.clone().unwrap_or(default);
    threads.dedup();
    threads
}

/// A model and its file.
type ModelFile = (ModelKind, PathBuf);

/// Each model's file (trained where missing) and, on the CPU, its ONNX export beside it, with the
/// ONNX Runtime library that serves the export from Rust.
fn model_files(tools: &Tools, flags: &flags::Serve) -> Result<(Vec<ModelFile>, Option<PathBuf>)> {
    let models = model_dir(flags.model_dir.as_deref());
    let data = flags.data_dir.as_deref();
    let files = flags
        .models
        .iter()
        .map(|&model| {
            let file = model_file(&tools.lenet, model, flags.epochs, data, &models)?;
            Ok((model, file))
        })
        .collect::<Result<Vec<_>>>()?;
    if flags.device != "cpu" {
        return Ok((files, None));
    }
    for (_, file) in &files {
        if let Err(e) = tools.export(file) {
            eprintln!("warning: {e:#}: the rows that serve the exported model will fail");
        }
    }
    Ok((files, tools.onnx_runtime_library()))
}

/// Runs the task; `Ok(false)` when a row failed (the others are measured and kept).
pub fn run(flags: flags::Serve) -> Result<bool> {
    check(&flags)?;
    let tools = Tools::new(&flags)?;
    let catalogue = registry::catalogue(&tools.lenet)?;
    let rows = rows(&tools, &flags)?;
    let threads = thread_counts(&flags);
    let machine = Environment::capture().machine_slug(flags.device == "cuda");
    let dir = flags.out.join(machine).join(reports::serve::FOLDER);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (files, library) = model_files(&tools, &flags)?;
    let total = files.len() * threads.len() * rows.len();
    let (mut done, mut ok) = (0, true);
    // Row by row, so that a run cut short has every model of the rows it finished.
    for row in &rows {
        for (model, file) in &files {
            for &t in &threads {
                done += 1;
                eprintln!("[{done}/{total}] {} {model}, {t} thread(s)", row.name());
                let out = dir.join(format!("serve-{}-{model}-t{t}.json", row.name()));
                let tools = (&tools, library.as_deref());
                if let Err(e) = measure(tools, row, (file, t), &flags, &out) {
                    eprintln!("error: {e:#}");
                    ok = false;
                }
            }
        }
    }
    let title = dir
        .strip_prefix(&flags.out)
        .unwrap_or(&dir)
        .display()
        .to_string();
    let n = results::serve::write_summary(&dir, &title, &catalogue)?;
    println!(
        "{n} serving reports in {}; {}",
        dir.display(),
        dir.join("summary.md").display()
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--rows` picks known rows in the order given, all of them by default, and an unknown name
    /// is an error that lists the known ones.
    #[test]
    fn rows_are_chosen_by_name() {
        let known = vec![
            Row::Lenet("a".into(), PathBuf::from("lenet-a"), Vec::new()),
            Row::Python("p".into()),
        ];
        assert_eq!(choose(None, known.clone()).unwrap(), known);
        let picked = choose(Some(vec!["p".into(), "a".into()]), known.clone()).unwrap();
        assert_eq!(picked.iter().map(Row::name).collect::<Vec<_>>(), ["p", "a"]);
        let e = choose(Some(vec!["flax".into()]), known).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--rows: unknown row 'flax': expected some of a, p"
        );
    }
}
