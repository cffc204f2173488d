//! `cargo xtask serve`: what serving the trained model costs in every row, on this machine's CPU.
//! Each model is trained once (`lenet train` with the build's default framework, seed 0,
//! `--epochs`, into `target/serve-models/`), then each row measures that file in a process of its
//! own for each thread count: the Rust frameworks with `lenet serve` of a binary built with that
//! framework alone (`target/serve-bin/lenet-FEATURE`, so that a row's cold start and memory are
//! not another framework's: the default binary loads libtorch at its start), the Python rows
//! (`python/serve.py --list-rows`) with their script, whose cold starts this task times as `lenet
//! serve` times its own (`meters::cold`). The reports go to `OUT/MACHINE/serve/`, and its
//! `summary.md` is written from them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use common::framework::Runner;
use common::ModelKind;
use reports::serve::ServeReport;
use reports::Environment;

use crate::features::Features;
use crate::python_env::{self, Env};
use crate::{flags, process, registry, workspace};

/// Where the trained model files are kept, under the repository.
const MODELS: &str = "target/serve-models";
/// Where the `lenet` binaries with one framework feature each are kept, under the repository.
const BINARIES: &str = "target/serve-bin";

/// One row: how it is started.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    /// A framework of a `lenet` binary built with its feature alone.
    Lenet(String, PathBuf),
    /// A row of `python/serve.py`.
    Python(String),
}

impl Row {
    fn name(&self) -> &str {
        match self {
            Row::Lenet(n, _) | Row::Python(n) => n,
        }
    }
}

/// Every framework feature's `lenet` built with that feature alone, copied aside, with a row for
/// each framework that binary holds; then the default build again, as the other tasks expect it.
fn rust_rows(env: &Env) -> Result<Vec<Row>> {
    let dir = process::root().join(BINARIES);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rows = Vec::new();
    for feature in workspace::framework_features()? {
        let features = Features::new("--rows", Some(std::slice::from_ref(feature)))?;
        let built = registry::build_lenet_with(&features)?;
        let alone = dir.join(format!("lenet-{feature}"));
        std::fs::copy(&built, &alone)
            .with_context(|| format!("cannot copy {} to {}", built.display(), alone.display()))?;
        for f in registry::catalogue(&alone)?.frameworks {
            if f.runner == Runner::Lenet {
                rows.push(Row::Lenet(f.name, alone.clone()));
            }
        }
    }
    registry::build_lenet(env)?;
    Ok(rows)
}

/// The rows the Python serving script offers.
fn python_rows(env: &Env) -> Result<Vec<String>> {
    let out = Command::new(&env.python)
        .arg(env.root.join("python/serve.py"))
        .arg("--list-rows")
        .output()
        .with_context(|| format!("cannot run {}", env.python.display()))?;
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

/// The model file of `model`, trained now unless an earlier run left it.
fn model_file(lenet: &Path, model: ModelKind, flags: &flags::Serve) -> Result<PathBuf> {
    let dir = process::root().join(MODELS);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("{model}-seed0-e{}.safetensors", flags.epochs));
    if file.is_file() {
        return Ok(file);
    }
    eprintln!(
        "training {model} for {} epochs (seed 0) into {}",
        flags.epochs,
        file.display()
    );
    let mut cmd = Command::new(lenet);
    cmd.args(["train", "-q", "--model", model.name(), "--device", "cpu"])
        .args([
            "--epochs",
            &flags.epochs.to_string(),
            "--seed",
            "0",
            "--save",
        ])
        .arg(&file);
    if let Some(d) = &flags.data_dir {
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
        "cpu",
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

/// Measures one row into `out`: `lenet serve` with its own cold starts, or the Python script and
/// then its cold starts timed here.
fn measure(
    env: &Env,
    row: &Row,
    (model, threads): (&Path, usize),
    flags: &flags::Serve,
    out: &Path,
) -> Result<()> {
    let args = measured(flags, model, threads);
    let script = env.root.join("python/serve.py");
    let mut cmd = match row {
        Row::Lenet(name, lenet) => {
            let mut c = Command::new(lenet);
            c.args(["serve", "--framework", name, "--cold-starts"])
                .arg(flags.measure.cold_starts.to_string());
            c
        }
        Row::Python(name) => {
            let mut c = Command::new(&env.python);
            c.arg(&script).args(["--row", name]);
            c
        }
    };
    cmd.args(&args).arg("--out").arg(out);
    if !process::status(&mut cmd)? {
        bail!("{} failed", row.name());
    }
    if let Row::Python(name) = row {
        let mut report = ServeReport::read(out)?;
        for _ in 0..flags.measure.cold_starts {
            let mut once = Command::new(&env.python);
            once.arg(&script)
                .args(["--row", name, "--once", "--device", "cpu", "--threads"])
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

/// Runs the task; `Ok(false)` when a row failed (the others are measured and kept).
pub fn run(flags: flags::Serve) -> Result<bool> {
    check(&flags)?;
    let env = python_env::setup()?;
    let lenet = registry::build_lenet(&env)?;
    let catalogue = registry::catalogue(&lenet)?;
    // The binaries with one framework each are built only when a Rust row is measured.
    let rust_asked = flags.rows.as_ref().is_none_or(|asked| {
        asked
            .iter()
            .any(|n| catalogue.get(n).is_some_and(|f| f.runner == Runner::Lenet))
    });
    let mut known = if rust_asked {
        rust_rows(&env)?
    } else {
        Vec::new()
    };
    known.extend(python_rows(&env)?.into_iter().map(Row::Python));
    let rows = choose(flags.rows.clone(), known)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut threads = flags.threads.clone().unwrap_or_else(|| vec![1, cores]);
    threads.dedup();
    let machine = Environment::capture().machine_slug(false);
    let dir = flags.out.join(machine).join(reports::serve::FOLDER);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let total = flags.models.len() * threads.len() * rows.len();
    let mut done = 0;
    let mut ok = true;
    for &model in &flags.models {
        let file = model_file(&lenet, model, &flags)?;
        for &t in &threads {
            for row in &rows {
                done += 1;
                eprintln!("[{done}/{total}] {} {model}, {t} thread(s)", row.name());
                let out = dir.join(format!("serve-{}-{model}-t{t}.json", row.name()));
                if let Err(e) = measure(&env, row, (&file, t), &flags, &out) {
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
            Row::Lenet("a".into(), PathBuf::from("lenet-a")),
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
