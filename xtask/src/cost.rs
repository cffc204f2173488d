//! `cargo xtask cost`: what each framework costs before its first step, measured on this machine.
//! For each framework, `lenet` is built with it alone in an empty target folder (timed, the
//! downloads done beforehand and not timed), built again after its crate is touched, and its binary,
//! the native libraries it loads and its dependency tree are measured; the first epochs come from
//! this machine's comparison reports. Results go to `OUT/MACHINE/build-cost/` (see
//! `results::cost`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use reports::cost::{self, BuildCost, FirstEpoch, NativeLibrary};
use reports::{Catalogue, Environment};

use crate::cuda::{self, Toolkit};
use crate::features::Features;
use crate::llvm::{self, Llvm};
use crate::workspace::{self, Need, Workspace};
use crate::{flags, process, python_env, registry};

/// One build to measure.
struct Job {
    framework: String,
    /// cpu or cuda
    device: &'static str,
    /// Features beyond the framework's own (its CUDA build's).
    extra: Vec<String>,
    llvm: bool,
}

/// Minutes of one cold build of `job` on `cores` cores, for the estimate printed before the builds
/// start: from the build-cost records committed under `results/` (the most recent of the same
/// framework and device), scaled by their machine's cores (up to 8); `None` where none was measured.
fn measured_minutes(committed: &Path, job: &Job, cores: f64) -> Option<f64> {
    let scale = |c: f64| c.clamp(1.0, 8.0);
    results::folder::cost_dirs(committed)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|dir| cost::load(&dir).unwrap_or_default())
        .filter(|c| c.framework == job.framework && c.device == job.device)
        .max_by_key(|c| c.environment.started_unix)
        .map(|c| {
            c.cold_build_seconds / 60.0 * scale(c.environment.logical_cpus as f64) / scale(cores)
        })
}

/// What every build of one `cargo xtask cost` shares: its options, this machine, the folder the
/// records go to, the compiler, and for `--cuda` the toolchains.
struct Session {
    flags: flags::Cost,
    root: PathBuf,
    environment: Environment,
    machine: String,
    /// OUT/MACHINE/build-cost/
    dir: PathBuf,
    /// `rustc --version`.
    rustc: String,
    /// The host's target triple, whose dependencies are counted.
    host: String,
    /// The CUDA toolkit and LLVM, for `--cuda`'s builds.
    toolchains: Option<(Toolkit, Llvm)>,
}

/// Measures every build and writes the records, their summary and the index.
pub fn run(flags: flags::Cost) -> Result<bool> {
    let features = Features::new("--frameworks", flags.frameworks.as_deref())?;
    let frameworks = features.names();
    let mut session = Session::open(flags, &features)?;
    let mut jobs: Vec<Job> = frameworks
        .iter()
        .filter(|_| !session.flags.cuda)
        .map(|f| Job {
            framework: f.clone(),
            device: "cpu",
            extra: Vec::new(),
            llvm: false,
        })
        .collect();
    // The registry of the default build: the CUDA builds' features, and the index at the end.
    let catalogue = registry::catalogue(&registry::build_lenet(&python_env::setup()?)?)?;
    if session.flags.cuda {
        jobs.extend(cuda_jobs(&frameworks, &catalogue, workspace::workspace()?));
        session.toolchains = Some((cuda::setup()?, llvm::setup()?));
        if jobs.is_empty() {
            bail!(
                "--cuda: of these frameworks only {} have CUDA builds of their own",
                with_cuda_builds(&catalogue)?
            );
        }
    }
    session.announce(&jobs);
    let started = Instant::now();
    for (i, job) in jobs.iter().enumerate() {
        let step = format!(
            "[{}/{}] {} ({})",
            i + 1,
            jobs.len(),
            job.framework,
            job.device
        );
        session.measure(job, &step, started)?;
    }
    session.finish(&catalogue)
}

/// The CUDA builds of `frameworks` that compile CUDA code of their own (tch's CUDA is in libtorch:
/// its CPU build is its CUDA build), as the registry describes them, with LLVM where their crates'
/// manifests say so.
fn cuda_jobs(frameworks: &[String], catalogue: &Catalogue, workspace: &Workspace) -> Vec<Job> {
    frameworks
        .iter()
        .filter_map(|f| {
            let info = catalogue.get(f).filter(|i| registry::compiles_cuda(i))?;
            let build = info.cuda_build.clone()?;
            Some(Job {
                framework: f.clone(),
                device: "cuda",
                llvm: workspace
                    .needs_of_entries(&build.features)
                    .contains(&Need::Llvm),
                extra: build.features,
            })
        })
        .collect()
}

/// The framework features whose frameworks have CUDA builds of their own, as `a, b and c`.
fn with_cuda_builds(catalogue: &Catalogue) -> Result<String> {
    let names: Vec<&str> = workspace::framework_features()?
        .iter()
        .filter(|f| catalogue.get(f).is_some_and(registry::compiles_cuda))
        .map(String::as_str)
        .collect();
    Ok(match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    })
}

impl Session {
    /// The results folder made and checked, then what is not timed: the sources of the
    /// dependencies, and libtorch where a build needs it; then the compiler's version and host.
    fn open(flags: flags::Cost, features: &Features) -> Result<Self> {
        let root = process::root();
        let environment = Environment::capture();
        let machine = flags
            .machine
            .clone()
            .unwrap_or_else(|| environment.machine_slug(false));
        let dir = flags.out.join(&machine).join(cost::FOLDER);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the results folder {}", dir.display()))?;
        common::fsio::check_writable_dir(&dir)
            .with_context(|| format!("cannot write into the results folder {}", dir.display()))?;
        eprintln!("cost: downloading the dependencies' sources first (cargo fetch, not timed)");
        if !process::status(process::cargo().arg("fetch"))? {
            bail!("cargo fetch failed");
        }
        if features.needs(Need::Libtorch) {
            python_env::setup().context("tch's build needs libtorch")?;
        }
        let rustc = output(Command::new("rustc").arg("--version"))?;
        let host = output(Command::new("rustc").arg("-vV"))?
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
            .context("rustc -vV names no host")?;
        Ok(Self {
            flags,
            root,
            environment,
            machine,
            dir,
            rustc,
            host,
            toolchains: None,
        })
    }

    /// Minutes of a cold build of `job` measured before, on this machine's cores.
    fn minutes(&self, job: &Job) -> Option<f64> {
        let cores = self.environment.logical_cpus.max(1) as f64;
        measured_minutes(&self.root.join("results"), job, cores)
    }

    /// Says what is about to be built, and how long that took before.
    fn announce(&self, jobs: &[Job]) {
        let estimate: Option<f64> = jobs.iter().map(|j| self.minutes(j)).sum();
        eprintln!(
            "cost: {} cold build{} of lenet, one framework each, in target/cost/ ({} on {} cores, \
             each followed by a rebuild), into {}",
            jobs.len(),
            if jobs.len() == 1 { "" } else { "s" },
            about(estimate),
            self.environment.logical_cpus,
            self.dir.display()
        );
    }

    /// Builds `job` cold and again, measures what it built and writes its record; `step` names it
    /// in what is printed, `started` is when the first build began.
    fn measure(&self, job: &Job, step: &str, started: Instant) -> Result<()> {
        let framework = &job.framework;
        let target = self
            .root
            .join("target")
            .join("cost")
            .join(format!("{framework}-{}", job.device));
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("cannot empty {}", target.display()))?;
        }
        let features = std::iter::once(framework.clone())
            .chain(job.extra.iter().cloned())
            .collect::<Vec<_>>()
            .join(",");
        let cargo_args: Vec<String> = [
            "--package",
            "lenet-compare",
            "--bin",
            "lenet",
            "--no-default-features",
            "--features",
            &features,
        ]
        .map(String::from)
        .to_vec();
        eprintln!(
            "{step}: cold build ({}; {:.0} min so far)",
            about(self.minutes(job)),
            started.elapsed().as_secs_f64() / 60.0
        );
        let prepare = |cmd: &mut Command| self.prepare(job, cmd);
        let cold = build(&target, &cargo_args, &prepare)?;
        let touched = format!("crates/{framework}-impl/src/lib.rs");
        touch(&self.root.join(&touched))?;
        eprintln!("{step}: cold build {cold:.0} s; rebuild after touching {touched}");
        let rebuild = build(&target, &cargo_args, &prepare)?;
        let timed = Timed {
            cargo_args,
            cold,
            rebuild,
            touched,
        };
        let record = self.record(job, &target, &features, timed)?;
        record.write(&self.dir.join(format!("{framework}-{}.json", job.device)))?;
        eprintln!(
            "{step}: cold build {cold:.0} s, rebuild {rebuild:.0} s, binary {:.1} MiB ({:.1} \
             stripped), native libraries {:.0} MiB, {} crates",
            record.binary_bytes as f64 / 1048576.0,
            record.stripped_bytes as f64 / 1048576.0,
            record.native_bytes() as f64 / 1048576.0,
            record.crates
        );
        if !self.flags.keep {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("cannot remove {}", target.display()))?;
        }
        Ok(())
    }

    /// A CUDA build's environment: the toolkit, and LLVM where it needs it.
    fn prepare(&self, job: &Job, cmd: &mut Command) {
        if let (Some((toolkit, llvm)), "cuda") = (&self.toolchains, job.device) {
            toolkit.apply(cmd);
            if job.llvm {
                llvm.apply(cmd);
            }
        }
    }

    /// The record of `job`, built into `target` with `features` as `timed` says: its binary, with
    /// and without symbols, the native libraries it loads, its dependencies, and its first epochs.
    fn record(&self, job: &Job, target: &Path, features: &str, timed: Timed) -> Result<BuildCost> {
        let binary = target.join("release").join("lenet");
        let binary_bytes = size(&binary)?;
        let stripped = target.join("lenet-stripped");
        std::fs::copy(&binary, &stripped)
            .with_context(|| format!("cannot copy {}", binary.display()))?;
        if !process::status(Command::new("strip").arg(&stripped))? {
            bail!("strip {} failed", stripped.display());
        }
        let stripped_bytes = size(&stripped)?;
        let (native_libraries, missing_libraries) = native_libraries(&binary)?;
        let (crates, build_scripts) = dependencies(features, &self.host)?;
        // A CUDA build's first epochs are a GPU machine's (docs/cost.md).
        let first_epochs = match job.device {
            "cpu" => first_epochs(&self.flags.out.join(&self.machine), &job.framework),
            _ => Vec::new(),
        };
        Ok(BuildCost {
            schema: cost::COST_SCHEMA,
            framework: job.framework.clone(),
            device: job.device.into(),
            cargo_args: timed.cargo_args,
            rustc: self.rustc.trim().to_string(),
            environment: self.environment.clone(),
            cold_build_seconds: timed.cold,
            rebuild_seconds: timed.rebuild,
            touched: timed.touched,
            binary_bytes,
            stripped_bytes,
            native_libraries,
            missing_libraries,
            crates,
            build_scripts,
            first_epochs,
        })
    }

    /// The folder's summary, printed, and the results index.
    fn finish(&self, catalogue: &Catalogue) -> Result<bool> {
        let dir = &self.dir;
        let n = results::cost::write_summary(dir, &format!("{}/{}", self.machine, cost::FOLDER))?;
        println!(
            "{}",
            std::fs::read_to_string(dir.join("summary.md")).unwrap_or_default()
        );
        println!("written to {} ({n} builds)", dir.display());
        let folders = results::folder::load_all(&self.flags.out, catalogue)?;
        results::folder::write_index(&self.flags.out, &folders)?;
        Ok(true)
    }
}

/// The two timed builds of a job: their cargo arguments, their seconds, and the file touched
/// between them.
struct Timed {
    cargo_args: Vec<String>,
    cold: f64,
    rebuild: f64,
    touched: String,
}

/// An estimate in words.
fn about(minutes: Option<f64>) -> String {
    match minutes {
        Some(m) => format!("about {:.0} min", m.ceil()),
        None => "not measured before".to_string(),
    }
}

/// `cargo build --release` into `target`, its environment set by `prepare`; its seconds.
fn build(target: &Path, cargo_args: &[String], prepare: &dyn Fn(&mut Command)) -> Result<f64> {
    let mut cmd = process::cargo();
    prepare(&mut cmd);
    cmd.args(["build", "--release", "--quiet", "--target-dir"])
        .arg(target)
        .args(cargo_args);
    let start = Instant::now();
    if !process::status(&mut cmd)? {
        bail!("cargo build {} failed", cargo_args.join(" "));
    }
    Ok(start.elapsed().as_secs_f64())
}

fn touch(path: &Path) -> Result<()> {
    std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .with_context(|| format!("cannot touch {}", path.display()))
}

fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The shared libraries `ldd` lists for `binary` outside the system's folders, largest first, and
/// those it does not find on this machine (a CUDA build's driver library, where there is no GPU).
fn native_libraries(binary: &Path) -> Result<(Vec<NativeLibrary>, Vec<String>)> {
    let text = output(Command::new("ldd").arg(binary))?;
    let mut libs = Vec::new();
    let mut missing = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        if rest.trim() == "not found" {
            missing.push(name.to_string());
            continue;
        }
        let Some(path) = rest
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        else {
            continue;
        };
        if ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"]
            .iter()
            .any(|system| path.starts_with(system))
        {
            continue;
        }
        libs.push(NativeLibrary {
            name: name.to_string(),
            bytes: size(Path::new(path))?,
        });
    }
    libs.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    Ok((libs, missing))
}

/// The crates in the dependency tree of `lenet` with `framework` alone (normal and build
/// dependencies on `host`), the project's own included, and how many have a build script.
fn dependencies(features: &str, host: &str) -> Result<(usize, usize)> {
    // Features without a package are the root package's, as in the build.
    let text = output(
        process::cargo()
            .args(["metadata", "--format-version", "1", "--no-default-features"])
            .args(["--features", features])
            .args(["--filter-platform", host]),
    )?;
    let meta: serde_json::Value = serde_json::from_str(&text).context("cargo metadata")?;
    let packages = meta["packages"]
        .as_array()
        .context("cargo metadata: packages")?;
    let root_id = packages
        .iter()
        .find(|p| p["name"] == "lenet-compare")
        .and_then(|p| p["id"].as_str())
        .context("cargo metadata: no lenet-compare")?;
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata: resolve")?;
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id);
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![root_id.to_string()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(n) = node(&id) else { continue };
        for dep in n["deps"].as_array().into_iter().flatten() {
            let wanted = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if let (true, Some(pkg)) = (wanted, dep["pkg"].as_str()) {
                stack.push(pkg.to_string());
            }
        }
    }
    let build_scripts = packages
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| seen.contains(id)))
        .filter(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k == "custom-build")
            })
        })
        .count();
    Ok((seen.len(), build_scripts))
}

/// The first epochs of `framework`'s runs in the machine's comparison folder (idiomatic, batch
/// 32: `FRAMEWORK-lenet2.json` and `FRAMEWORK-lenet3.json`), where there are such reports.
fn first_epochs(folder: &Path, framework: &str) -> Vec<FirstEpoch> {
    ["lenet2", "lenet3"]
        .iter()
        .filter_map(|model| {
            let file = format!("{framework}-{model}.json");
            let report = reports::RunReport::read(&folder.join(&file)).ok()?;
            FirstEpoch::of(&report, &format!("../{file}"))
        })
        .collect()
}
