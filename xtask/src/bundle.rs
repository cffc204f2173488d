//! `cargo xtask bundle --cuda`: a folder that runs the comparison on a GPU machine that has python3
//! with torch 2.11 and the NVIDIA libraries but no Rust toolchain. It holds two CUDA-enabled `lenet`
//! binaries (tch and candle in `lenet`, burn in `lenet-burn`, with LLVM linked in statically for
//! burn's kernel compiler: candle's and burn's CUDA code cannot share one; xz-compressed, since
//! candle's kernels and LLVM make them large), this xtask binary (which drives `compare`, and
//! `serve` on the two trained model files in `serve-models/`, those the CPU's serving results
//! answer from), the Python rows' scripts, the wheels of the Python rows that such a machine lacks
//! (each row's `python/setup/ROW.bundle.txt`), and `run.sh`, which unpacks the binaries, points the
//! dynamic loader at that machine's own torch and NVIDIA libraries and puts the wheels on the
//! Python path (`run.sh serve ...` for the serving measurement). `--bench` builds, as a bundle of its own (the
//! two together pass the size limit), the criterion bench (`benches/train_step.rs`) with the same
//! CUDA features, one per `lenet` binary, and `bench.sh`, which runs each on the CUDA benchmarks of
//! its own frameworks: `cargo bench` where there is no toolchain.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use common::ModelKind;

use crate::cuda::{self, Toolkit};
use crate::llvm::{self, Llvm};
use crate::python_env::{self, Env, Requirement};
use crate::registry::{self, CudaBinary, CUDA_TARGET_DIR};
use crate::{counter, flags, process, workspace};

/// The most a bundle may weigh, so that it can be copied around easily.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What `run.sh` and `bench.sh` share: this machine's torch and NVIDIA libraries on the loader's
/// path, the framework crates' own parts (`crates/*/bundle.sh`: burn's `CUDA_PATH` with
/// libdevice), and the binaries unpacked once. The scripts are templates in `bundle/`, their
/// placeholders (`PRELUDE`, `TORCH_VERSION`, `FRAMEWORKS`, `PYTHON_ROWS`, `PINNED`, `ROWS`,
/// `LENET_FOR`, `BENCH_CUDA`) filled in by [`run_sh`] and [`bench_sh`] from [`Parts`].
const PRELUDE: &str = include_str!("bundle/prelude.sh");

const RUN_SH: &str = include_str!("bundle/run.sh");

const BENCH_SH: &str = include_str!("bundle/bench.sh");

/// What `run.sh` does for the Python rows: the machine's python runs them with the machine's own
/// packages (a CUDA jax there) and, from the wheels beside the script, each package of their
/// `python/setup/ROW.bundle.txt` that the machine lacks, and those marked `always` whatever it has;
/// then each row's `ROW.bundle.sh` checks that it can run there.
const WHEELS_SH: &str = include_str!("bundle/wheels.sh");

/// The GPU machine's Python, which the wheels are for.
const GPU_PYTHON: &str = "3.12";

/// What the scripts take from the Python rows' and the framework crates' files.
#[derive(Debug, Clone)]
struct Parts {
    /// The torch the binaries link (`python_env::torch_version`).
    torch: String,
    /// The framework crates' parts of the prelude (`crates/*/bundle.sh`), in name order.
    frameworks: String,
    /// The wheels of every row (`python/setup/*.bundle.txt`).
    wheels: Vec<Requirement>,
    /// The rows' parts of `run.sh` (`python/setup/*.bundle.sh`), in name order.
    rows: String,
}

impl Parts {
    fn read() -> Result<Parts> {
        let root = process::root();
        let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
            .context("cannot read crates/")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bundle.sh")))
            .filter(|p| p.is_file())
            .collect();
        crates.sort();
        let mut rows: Vec<PathBuf> = std::fs::read_dir(root.join(python_env::SETUP_DIR))
            .with_context(|| format!("cannot read {}", python_env::SETUP_DIR))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".bundle.sh"))
            .collect();
        rows.sort();
        let mut wheels = Vec::new();
        for (file, requirements) in python_env::requirement_files(".bundle.txt")? {
            if let Some(r) = requirements.iter().find(|r| r.version.is_none()) {
                bail!(
                    "{}: {} has no version: a bundle's wheels are pinned (PROJECT==VERSION)",
                    file.display(),
                    r.project
                );
            }
            wheels.extend(requirements);
        }
        Ok(Parts {
            torch: python_env::torch_version()?,
            frameworks: concatenate(&crates)?,
            wheels,
            rows: concatenate(&rows)?,
        })
    }

    /// The prelude, filled in.
    fn prelude(&self) -> String {
        PRELUDE
            .replace("TORCH_VERSION", &self.torch)
            .replace("FRAMEWORKS\n", &self.frameworks)
    }

    /// The Python rows' part of `run.sh`, filled in.
    fn python_rows(&self) -> String {
        // Wheel file names spell a project with underscores.
        let pinned: Vec<String> = self
            .wheels
            .iter()
            .filter(|w| w.always)
            .map(|w| format!("{:?}", w.project.replace('-', "_")))
            .collect();
        WHEELS_SH
            .replace("PINNED", &format!("{{{}}}", pinned.join(", ")))
            .replace("ROWS\n", &self.rows)
    }
}

/// The texts of `files`, one after the other.
fn concatenate(files: &[PathBuf]) -> Result<String> {
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display())))
        .collect()
}

/// `run.sh` for these binaries: each framework with a binary of its own is run with it.
fn run_sh(builds: &[CudaBinary], parts: &Parts) -> String {
    let lenet_for: String = builds
        .iter()
        .flat_map(|b| {
            b.own.iter().map(move |f| {
                format!(
                    " --lenet-for \"{f}=$here/{}\"",
                    b.binary.trim_end_matches(".xz")
                )
            })
        })
        .collect();
    RUN_SH
        .replace("PRELUDE\n", &parts.prelude())
        .replace("PYTHON_ROWS\n", &parts.python_rows())
        .replace("LENET_FOR", &lenet_for)
}

/// `bench.sh` for these binaries: each bench binary measures CUDA for the frameworks whose CUDA
/// code it holds (the main one every framework without a binary of its own, which are the only
/// ones that can use CUDA in it).
fn bench_sh(builds: &[CudaBinary], parts: &Parts) -> String {
    let runs: Vec<String> = builds
        .iter()
        .map(|b| {
            let filter = if b.own.is_empty() {
                "${group}.*/cuda\\$".to_string()
            } else {
                format!("${{group}}.*/({})(-tuned)?/cuda\\$", b.own.join("|"))
            };
            format!(
                "    bench \"$here/{}\" \"{filter}\"",
                bench_binary(b).trim_end_matches(".xz")
            )
        })
        .collect();
    BENCH_SH
        .replace("PRELUDE\n", &parts.prelude())
        .replace("BENCH_CUDA", &runs.join("\n"))
}

/// The criterion bench binary built with the same features as `build`, in the bundle.
fn bench_binary(build: &CudaBinary) -> String {
    build.binary.replacen("lenet", "train_step", 1)
}

/// Builds the bundle `flags` asks for.
pub fn run(flags: flags::Bundle) -> Result<()> {
    if !flags.cuda {
        bail!("only CUDA bundles exist: pass --cuda");
    }
    let env = python_env::setup()?;
    if !env.libtorch.join("lib").join("libtorch_cuda.so").exists() {
        bail!(
            "{} has no libtorch_cuda.so: a CUDA bundle needs a CUDA build of libtorch",
            env.libtorch.display()
        );
    }
    let toolkit = cuda::setup()?;
    let llvm = llvm::setup()?;
    let out = flags.out.clone().unwrap_or_else(|| {
        PathBuf::from(if flags.bench {
            ".bundle-bench"
        } else {
            ".bundle"
        })
    });
    let out = if out.is_absolute() {
        out
    } else {
        env.root.join(out)
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let lenet = registry::build_lenet(&env)?;
    let builds = registry::cuda_builds(&registry::catalogue(&lenet)?, workspace::workspace()?);
    let toolchains = (&toolkit, &llvm);
    let parts = Parts::read()?;
    if flags.bench {
        bench_bundle(toolchains, &builds, &parts, &out)
    } else {
        run_bundle((&env, &lenet), toolchains, (&builds, &parts), &out)
    }
}

/// The comparison's bundle in `out`: the CUDA binaries, xtask, the kernel counter, the Python rows'
/// scripts and wheels, and `run.sh`.
fn run_bundle(
    (env, lenet): (&Env, &Path),
    toolchains: (&Toolkit, &Llvm),
    (builds, parts): (&[CudaBinary], &Parts),
    out: &Path,
) -> Result<()> {
    let (toolkit, llvm) = toolchains;
    for build in builds {
        let features = build.features.join(",");
        eprintln!("building lenet with --features {features} (release, {CUDA_TARGET_DIR})");
        let mut cmd = process::cargo();
        cmd.args(["build", "--release", "--quiet", "--features", &features])
            .args(["--package", "lenet-compare", "--bin", "lenet"])
            .args(["--target-dir", CUDA_TARGET_DIR]);
        toolkit.apply(&mut cmd);
        if build.llvm {
            llvm.apply(&mut cmd);
        }
        if !process::status(&mut cmd)? {
            bail!("cargo build --features {features} failed");
        }
        let _ = std::fs::remove_file(out.join(build.binary.trim_end_matches(".xz")));
        strip_copy(
            &env.root.join(CUDA_TARGET_DIR).join("release").join("lenet"),
            &out.join(&build.binary),
            true,
        )?;
    }
    let release = build_release(env, &["xtask"])?;
    strip_copy(&release.join("xtask"), &out.join("xtask"), false)?;
    // The kernel counter, for a kernel pass on the GPU machine (`lenet train --kernels
    // liblenet_kernels.so`; run.sh's loader path finds the wheels' libcupti.so.13 there).
    counter::build(toolkit, out)?;
    // Bundles before LLVM was linked statically carried its shared libraries here.
    let lib = out.join("lib");
    if lib.exists() {
        std::fs::remove_dir_all(&lib).with_context(|| format!("cannot clear {}", lib.display()))?;
    }
    copy_python(&env.root.join("python"), out)?;
    serve_models(lenet, out)?;
    download_wheels(env, &parts.wheels, &out.join("wheels"))?;
    finish(
        out,
        "bundle",
        "run.sh",
        &run_sh(builds, parts),
        "RESULTS_DIR [compare options]",
    )
}

/// The bench's bundle in `out`: one criterion bench binary per CUDA build, and `bench.sh`.
fn bench_bundle(
    toolchains: (&Toolkit, &Llvm),
    builds: &[CudaBinary],
    parts: &Parts,
    out: &Path,
) -> Result<()> {
    let (toolkit, llvm) = toolchains;
    for build in builds {
        let bench = build_bench(toolkit, llvm, build)?;
        let _ = std::fs::remove_file(out.join(bench_binary(build).trim_end_matches(".xz")));
        strip_copy(&bench, &out.join(bench_binary(build)), true)?;
    }
    finish(
        out,
        "bench bundle",
        "bench.sh",
        &bench_sh(builds, parts),
        "RESULTS_DIR MNIST_DIR",
    )
}

/// Builds `packages` in release mode and returns the release folder.
fn build_release(env: &Env, packages: &[&str]) -> Result<PathBuf> {
    eprintln!("building {} (release)", packages.join(" and "));
    let mut cmd = process::cargo();
    cmd.args(["build", "--release", "--quiet"]);
    for p in packages {
        cmd.args(["--package", p]);
    }
    if !process::status(&mut cmd)? {
        bail!("cargo build failed");
    }
    Ok(env.root.join("target").join("release"))
}

/// Writes a bundle's script `name` into `out`, checks the bundle's size and says how to run it.
fn finish(out: &Path, what: &str, name: &str, text: &str, usage: &str) -> Result<()> {
    let script = out.join(name);
    std::fs::write(&script, text).with_context(|| format!("cannot write {}", script.display()))?;
    process::set_executable(&script)?;
    let size = check_size(out)?;
    println!(
        "{what}: {} ({:.1} MiB); run it there as {}/{name} {usage}",
        out.display(),
        size as f64 / (1 << 20) as f64,
        out.display()
    );
    Ok(())
}

/// The model files `run.sh serve` measures, in `out/serve-models`: the ones `cargo xtask serve`
/// measures on the CPU (trained now with `lenet`, the CPU build, where it has not run yet), so that
/// the GPU's serving reports answer from the same weights.
fn serve_models(lenet: &Path, out: &Path) -> Result<()> {
    let dir = out.join("serve-models");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let trained = crate::serve::model_dir(None);
    for model in ModelKind::ALL {
        let file = crate::serve::model_file(lenet, model, crate::serve::EPOCHS, None, &trained)?;
        let to = dir.join(file.file_name().unwrap_or_default());
        std::fs::copy(&file, &to)
            .with_context(|| format!("cannot copy {} to {}", file.display(), to.display()))?;
    }
    Ok(())
}

/// The Python rows' scripts (`python/*.py`: each row's script and the module they share).
fn copy_python(from: &Path, out: &Path) -> Result<()> {
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "py") {
            let to = out.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &to)
                .with_context(|| format!("cannot copy {} to {}", path.display(), to.display()))?;
        }
    }
    Ok(())
}

/// The Python rows' wheels for the GPU machine's Python (`python/setup/*.bundle.txt`), downloaded
/// once into the cache and copied into `folder`.
fn download_wheels(env: &Env, wheels: &[Requirement], folder: &Path) -> Result<()> {
    let specs: Vec<String> = wheels.iter().map(Requirement::spec).collect();
    let cache = process::cache_dir()?.join(format!("wheels-py{GPU_PYTHON}"));
    let ok = process::status(
        std::process::Command::new(&env.python)
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args([
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                GPU_PYTHON,
            ])
            .args([
                "--platform",
                "manylinux_2_28_x86_64",
                "--platform",
                "manylinux2014_x86_64",
            ])
            .arg("--dest")
            .arg(&cache)
            .args(&specs),
    )?;
    if !ok {
        bail!(
            "pip could not download the Python rows' wheels into {}",
            cache.display()
        );
    }
    let _ = std::fs::remove_dir_all(folder);
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    for want in wheels {
        let version = want.version.as_deref().unwrap_or_default();
        let found = python_env::find_wheel(&cache, &want.project, version)?;
        std::fs::copy(&found, folder.join(found.file_name().unwrap_or_default()))
            .with_context(|| format!("cannot copy {}", found.display()))?;
    }
    Ok(())
}

/// The size of the bundle in `out`, or an error when it is over the limit.
fn check_size(out: &Path) -> Result<u64> {
    let size = dir_size(out)?;
    if size > MAX_BYTES {
        bail!(
            "the bundle in {} weighs {} MiB, over the {} MiB limit",
            out.display(),
            size >> 20,
            MAX_BYTES >> 20
        );
    }
    Ok(size)
}

/// Builds the criterion bench `train_step` with `build`'s CUDA features (`cargo bench --no-run`)
/// and returns the executable cargo reports for it.
fn build_bench(toolkit: &Toolkit, llvm: &Llvm, build: &CudaBinary) -> Result<PathBuf> {
    let features = build.features.join(",");
    eprintln!("building the train_step bench with --features {features} ({CUDA_TARGET_DIR})");
    let mut cmd = process::cargo();
    cmd.args(["bench", "--no-run", "--quiet", "--features", &features])
        .args(["--package", "lenet-compare", "--bench", "train_step"])
        .args(["--target-dir", CUDA_TARGET_DIR])
        .args(["--message-format", "json-render-diagnostics"])
        .stdout(std::process::Stdio::piped());
    toolkit.apply(&mut cmd);
    if build.llvm {
        llvm.apply(&mut cmd);
    }
    let output = cmd.output().context("cannot run cargo bench")?;
    if !output.status.success() {
        bail!("cargo bench --no-run --features {features} failed");
    }
    bench_executable(&String::from_utf8_lossy(&output.stdout), "train_step")
        .with_context(|| format!("cargo bench --no-run --features {features} named no executable"))
}

/// The executable of bench `name` in cargo's JSON messages.
fn bench_executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// Copies a binary without its debug line tables (a missing `strip` only costs size), compressed
/// with `xz` when `compress` is set.
fn strip_copy(from: &Path, to: &Path, compress: bool) -> Result<()> {
    let plain = if compress {
        to.with_extension("")
    } else {
        to.to_path_buf()
    };
    std::fs::copy(from, &plain)
        .with_context(|| format!("cannot copy {} to {}", from.display(), plain.display()))?;
    let _ = std::process::Command::new("strip").arg(&plain).status();
    if compress {
        let ok = process::status(
            std::process::Command::new("xz")
                .args(["-6", "--force", "--threads=0", "--keep"])
                .arg(&plain),
        )
        .context("the bundle compresses with xz (Debian package xz-utils)")?;
        std::fs::remove_file(&plain)?;
        if !ok {
            bail!("xz failed on {}", plain.display());
        }
        let xz = PathBuf::from(format!("{}.xz", plain.display()));
        if xz != to {
            std::fs::rename(&xz, to)?;
        }
        return Ok(());
    }
    process::set_executable(&plain)
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use crate::registry::{self, sample};

    /// run.sh runs each framework with a binary of its own with that binary (that every
    /// framework's CUDA code is in exactly one binary: `registry::every_framework_is_in_one_binary`).
    #[test]
    fn run_sh_runs_each_framework_with_its_binary() {
        // (The scripts' syntax: `the_bundle_scripts_are_valid_bash`.)
        let builds = registry::cuda_builds(&sample::registry(), &sample::workspace());
        let parts = super::Parts::read().unwrap();
        let script = super::run_sh(&builds, &parts);
        assert!(
            script.contains(r#"--lenet "$here/lenet" --lenet-for "burn=$here/lenet-burn" \"#),
            "{script}"
        );
        assert!(script.contains("unxz \"$packed\""), "{script}");
        assert!(!script.contains("PRELUDE"), "{script}");
        // The Python rows' scripts come from the bundle, their wheels go on the path, those
        // marked `always` always, and each row's own part follows.
        assert!(script.contains(r#"--scripts "$here""#), "{script}");
        assert!(script.contains(r#"export PYTHONPATH="$pysite"#), "{script}");
        let set = script
            .lines()
            .find(|l| l.contains("pinned = wheel.name"))
            .expect("the wheels' part");
        assert!(parts.wheels.iter().any(|w| w.always));
        for wheel in &parts.wheels {
            let name = format!("\"{}\"", wheel.project.replace('-', "_"));
            assert_eq!(set.contains(&name), wheel.always, "{name}: {set}");
        }
        assert!(script.contains(parts.rows.trim()), "{script}");
        // The torch it checks for is the one the rows pin; the framework crates' parts are in.
        assert!(
            script.contains(&format!("the bundle needs {}\"", parts.torch)),
            "{script}"
        );
        assert!(script.contains(parts.frameworks.trim()), "{script}");
        for placeholder in [
            "PRELUDE",
            "PYTHON_ROWS",
            "PINNED",
            "\nROWS\n",
            "TORCH_VERSION",
            "FRAMEWORKS",
            "LENET_FOR",
        ] {
            assert!(!script.contains(placeholder), "{placeholder}: {script}");
        }
        // Each bench binary measures CUDA only for the frameworks whose CUDA code it holds.
        let bench = super::bench_sh(&builds, &parts);
        assert!(
            bench.contains(r#"bench "$here/train_step" "${group}.*/cuda\$""#),
            "{bench}"
        );
        assert!(
            bench.contains(r#"bench "$here/train_step-burn" "${group}.*/(burn)(-tuned)?/cuda\$""#),
            "{bench}"
        );
        assert!(bench.contains("unxz \"$packed\""), "{bench}");
        assert!(
            !bench.contains("PRELUDE") && !bench.contains("BENCH_CUDA"),
            "{bench}"
        );
        assert_eq!(super::bench_binary(&builds[1]), "train_step-burn.xz");
    }

    /// The bench's executable is read from cargo's messages, not guessed from its hashed name.
    #[test]
    fn the_bench_executable_comes_from_cargo() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"lenet","kind":["bin"]},"executable":"/t/release/lenet"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"train_step","kind":["lib"]},"executable":null}"#,
            "not json",
            r#"{"reason":"compiler-artifact","target":{"name":"train_step","kind":["bench"]},"executable":"/t/release/deps/train_step-0a1b"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            super::bench_executable(&messages, "train_step"),
            Some("/t/release/deps/train_step-0a1b".into())
        );
        assert_eq!(super::bench_executable(&messages, "harness"), None);
    }

    /// The scripts the bundle writes, filled in from the templates in `bundle/` and the crates'
    /// and rows' parts, are valid bash (`bash -n`), and so is each template and part on its own.
    #[test]
    fn the_bundle_scripts_are_valid_bash() {
        let builds = registry::cuda_builds(&sample::registry(), &sample::workspace());
        let parts = super::Parts::read().unwrap();
        let scripts = [
            ("run.sh", super::run_sh(&builds, &parts)),
            ("bench.sh", super::bench_sh(&builds, &parts)),
            ("bundle/prelude.sh", super::PRELUDE.to_string()),
            ("bundle/wheels.sh", super::WHEELS_SH.to_string()),
            ("the framework crates' parts", parts.frameworks.clone()),
            ("the Python rows' parts", parts.rows.clone()),
        ];
        for (name, text) in scripts {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("script.sh");
            std::fs::write(&file, &text).unwrap();
            let output = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
