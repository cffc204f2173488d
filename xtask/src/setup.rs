//! Finding or installing libtorch. A user's `LIBTORCH` or `LIBTORCH_USE_PYTORCH` wins; otherwise
//! PyPI `torch==2.11.0` is installed into a virtual environment in the user's cache folder (shared by
//! every checkout, so it downloads once), with the Keras row's pinned keras and jax beside it
//! ([`KERAS_PACKAGES`]), and `.libtorch` in the repository links to it. The
//! workspace's `.cargo/config.toml` points `LIBTORCH` at that link, which is why a plain `cargo test`
//! or `cargo bench` works once this has run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const TORCH_VERSION: &str = "2.11.0";
/// The Keras row's packages (`python/keras_reference.py`), beside torch in the same environment:
/// Keras 3 and the JAX it runs on by default (the newest jax for the Python 3.11 of the CI machine).
pub const KERAS_PACKAGES: [&str; 3] = ["keras==3.15.1", "jax==0.10.2", "jaxlib==0.10.2"];

/// What the builds and the reference runs use.
pub struct Env {
    pub root: PathBuf,
    pub libtorch: PathBuf,
    /// A python3 that can import torch (for the PyTorch reference run).
    pub python: PathBuf,
}

impl Env {
    /// Builds `packages` in release mode and returns the release folder.
    pub fn build_release(&self, packages: &[&str]) -> Result<PathBuf> {
        eprintln!("building {} (release)", packages.join(" and "));
        let mut cmd = self.cargo();
        cmd.args(["build", "--release", "--quiet"]);
        for p in packages {
            cmd.args(["--package", p]);
        }
        if !status(&mut cmd)? {
            bail!("cargo build failed");
        }
        Ok(self.root.join("target").join("release"))
    }

    /// Builds the `lenet` binary the way `cargo xtask test` builds it (`cargo test --release
    /// --workspace --no-run`: the same features, so the same artifacts), and returns its path. A plain
    /// `cargo build -p lenet-compare` resolves the dependencies' features without the test targets'
    /// and would build most of the frameworks a second time.
    pub fn build_lenet(&self) -> Result<PathBuf> {
        eprintln!("building lenet (release, as the tests build it)");
        let mut cmd = self.cargo();
        cmd.args(["test", "--release", "--workspace", "--no-run", "--quiet"]);
        if !status(&mut cmd)? {
            bail!("cargo test --release --workspace --no-run failed");
        }
        Ok(self.root.join("target").join("release").join("lenet"))
    }

    /// `cargo`, run from the repository root.
    pub fn cargo(&self) -> Command {
        cargo()
    }
}

/// `cargo` (the one running xtask), run from the repository root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// The root package's framework features, in the order of its `default` list: the features that
/// turn on a framework crate (an optional dependency named `*-impl`, `dep:burn-impl` say). The root
/// `Cargo.toml` is the one list of frameworks; xtask, CI (`cargo xtask frameworks`) and the scripts
/// read it from here, and `tests/registry.rs` holds it to the registry of `lenet`.
pub fn framework_features() -> Result<&'static [String]> {
    Ok(&workspace()?.frameworks)
}

/// What xtask reads from the workspace's manifests (through `cargo metadata`, once).
#[derive(Clone, Debug, PartialEq)]
pub struct Workspace {
    /// The root package's framework features ([`framework_features`]).
    pub frameworks: Vec<String>,
    /// Each framework feature's crate, the `*-impl` dependency it turns on.
    pub crates: Vec<(String, String)>,
    /// The default features of the other workspace members, as `member/feature`: a build that
    /// turns the root's defaults off turns theirs off too (`--no-default-features` applies to every
    /// package selected), and these turn them back on.
    pub member_defaults: Vec<String>,
    /// Every feature of the root package and what it turns on, as its manifest says.
    pub features: std::collections::BTreeMap<String, Vec<String>>,
}

impl Workspace {
    /// Everything `feature` of the root package turns on, itself and transitively (a name that is
    /// not one of its features: `None`).
    pub fn expand(&self, feature: &str) -> Option<Vec<String>> {
        self.features.get(feature)?;
        let mut seen = vec![feature.to_string()];
        let mut i = 0;
        while i < seen.len() {
            for on in self.features.get(&seen[i]).into_iter().flatten() {
                if !seen.contains(on) {
                    seen.push(on.clone());
                }
            }
            i += 1;
        }
        Some(seen)
    }
}

/// The workspace's manifests, read once.
pub fn workspace() -> Result<&'static Workspace> {
    static WORKSPACE: std::sync::OnceLock<Workspace> = std::sync::OnceLock::new();
    if let Some(w) = WORKSPACE.get() {
        return Ok(w);
    }
    let out = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let workspace = workspace_of(&metadata)?;
    Ok(WORKSPACE.get_or_init(|| workspace))
}

/// [`Workspace`] from `cargo metadata --no-deps`'s JSON (its packages are the workspace's members).
pub fn workspace_of(metadata: &serde_json::Value) -> Result<Workspace> {
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata lists no packages")?;
    let root = packages
        .iter()
        .find(|p| p["name"] == "lenet-compare")
        .context("cargo metadata lists no lenet-compare package")?;
    let frameworks = frameworks_of(&root["features"]);
    if frameworks.is_empty() {
        bail!("the root Cargo.toml has no framework feature (one that turns on a `dep:*-impl`)");
    }
    let crates = frameworks
        .iter()
        .filter_map(|f| {
            Some((
                f.clone(),
                framework_crate(&root["features"][f])?.to_string(),
            ))
        })
        .collect();
    let mut member_defaults = Vec::new();
    for p in packages.iter().filter(|p| p["name"] != "lenet-compare") {
        let (Some(name), Some(default)) = (p["name"].as_str(), p["features"]["default"].as_array())
        else {
            continue;
        };
        member_defaults.extend(
            default
                .iter()
                .filter_map(|f| f.as_str())
                .map(|f| format!("{name}/{f}")),
        );
    }
    member_defaults.sort();
    let features = root["features"]
        .as_object()
        .map(|table| {
            table
                .iter()
                .map(|(name, on)| {
                    let on = on
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect();
                    (name.clone(), on)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Workspace {
        frameworks,
        crates,
        member_defaults,
        features,
    })
}

/// The framework crate a feature turns on (what it lists, as cargo metadata gives it): its optional
/// `*-impl` dependency, if any.
fn framework_crate(on: &serde_json::Value) -> Option<&str> {
    on.as_array()?
        .iter()
        .filter_map(|v| v.as_str()?.strip_prefix("dep:"))
        .find(|dep| dep.ends_with("-impl"))
}

/// The framework features of a package's `features` table (cargo metadata's JSON object of
/// feature -> what it turns on): those that turn on an optional `*-impl` dependency, in the order
/// of `default`, then by name.
pub fn frameworks_of(features: &serde_json::Value) -> Vec<String> {
    let Some(table) = features.as_object() else {
        return Vec::new();
    };
    let mut names: Vec<String> = table
        .iter()
        .filter(|(_, on)| framework_crate(on).is_some())
        .map(|(name, _)| name.clone())
        .collect();
    let default: Vec<&str> = table
        .get("default")
        .and_then(|d| d.as_array())
        .map(|d| d.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    names.sort_by_key(|n| {
        (
            default.iter().position(|d| d == n).unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names
}

/// Which frameworks a `lenet` build holds: all of them (the default), or those named with
/// `--features` (framework features of the root `Cargo.toml`), and the root's other features it
/// turns on (`burn-cpu`, ...; see [`Features::with_extra`]). Only tch needs libtorch.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    chosen: Option<Vec<String>>,
    /// Root features beyond the frameworks', in the order given.
    extra: Vec<String>,
    /// The workspace: every framework feature, in the root's order, and their crates.
    workspace: Workspace,
}

impl Features {
    /// `--features` (or the list of the `option` named) as given: `None` for the default build.
    pub fn new(option: &str, named: Option<&[String]>) -> Result<Self> {
        Self::among(workspace()?, option, named)
    }

    /// As [`Features::new`], in the workspace given.
    pub fn among(workspace: &Workspace, option: &str, named: Option<&[String]>) -> Result<Self> {
        let workspace = workspace.clone();
        let all = &workspace.frameworks;
        let Some(named) = named else {
            return Ok(Self {
                chosen: None,
                extra: Vec::new(),
                workspace,
            });
        };
        if named.is_empty() {
            bail!("{option} needs at least one of {}", all.join(", "));
        }
        let mut features = Vec::new();
        for f in named {
            if !all.contains(f) {
                bail!(
                    "{option}: unknown framework feature '{f}': expected {}",
                    all.join(", ")
                );
            }
            if !features.contains(f) {
                features.push(f.clone());
            }
        }
        // In the root's order, so that `burn,tch` and `tch,burn` are one build.
        features.sort_by_key(|f| all.iter().position(|k| k == f));
        Ok(Self {
            chosen: Some(features),
            extra: Vec::new(),
            workspace,
        })
    }

    /// Also turns on `extra`, features of the root package beyond the frameworks' (`option`: the
    /// flag that named them). A name the root does not have is refused, and so is one that turns
    /// on a framework this build leaves out (`burn-cpu` turns on burn).
    pub fn with_extra(mut self, option: &str, extra: &[String]) -> Result<Self> {
        let names = self.names();
        for f in extra {
            let Some(on) = self.workspace.expand(f) else {
                let known: Vec<&str> = self.workspace.features.keys().map(String::as_str).collect();
                bail!(
                    "{option}: unknown feature '{f}': expected one of {}",
                    known.join(", ")
                );
            };
            if let Some(left_out) = on
                .iter()
                .find(|o| self.workspace.frameworks.contains(o) && !names.contains(o))
            {
                bail!("{option} {f} turns on {left_out}, which --features leaves out");
            }
            if !self.extra.contains(f) {
                self.extra.push(f.clone());
            }
        }
        Ok(self)
    }

    pub fn is_default(&self) -> bool {
        self.chosen.is_none()
    }

    /// Whether the build links libtorch.
    pub fn has_tch(&self) -> bool {
        self.names().iter().any(|f| f == "tch")
    }

    /// The frameworks' features, all of them for the default build.
    pub fn names(&self) -> Vec<String> {
        self.chosen
            .clone()
            .unwrap_or_else(|| self.workspace.frameworks.clone())
    }

    /// cargo's package selection and features: the whole workspace, with the root's framework
    /// features as chosen. Every build selects the whole workspace, so that the dependencies'
    /// features resolve as in the default build and only the root package is compiled again for a
    /// set of frameworks (a build of the root alone resolves them differently and compiles most of
    /// the dependency graph again); the other members keep their default features. A build without
    /// tch leaves tch's crate out, so that it needs no libtorch. The extra features join the
    /// chosen ones.
    pub fn cargo_args(&self) -> Vec<String> {
        let mut args = vec!["--workspace".to_string()];
        let Some(chosen) = &self.chosen else {
            if !self.extra.is_empty() {
                args.extend(["--features".to_string(), self.extra.join(",")]);
            }
            return args;
        };
        if !self.has_tch() {
            if let Some((_, krate)) = self.workspace.crates.iter().find(|(f, _)| f == "tch") {
                args.extend(["--exclude".to_string(), krate.clone()]);
            }
        }
        let features: Vec<String> = chosen
            .iter()
            .chain(&self.extra)
            .map(|f| format!("lenet-compare/{f}"))
            .chain(self.workspace.member_defaults.iter().cloned())
            .collect();
        args.extend([
            "--no-default-features".to_string(),
            "--features".to_string(),
            features.join(","),
        ]);
        args
    }
}

/// Builds `lenet` with only the frameworks of `features` and returns its path; set-up of libtorch
/// only when tch is among them. As [`Env::build_lenet`] does for the default build, it builds the
/// way `cargo xtask test --features ...` does (`cargo test --release --no-run`, with
/// [`Features::cargo_args`]), so that the two share their artifacts.
pub fn build_lenet_with(features: &Features) -> Result<PathBuf> {
    let mut cmd = cargo();
    if features.has_tch() {
        // LIBTORCH for torch-sys, as the default build has it.
        run()?;
    }
    eprintln!(
        "building lenet with {} alone (release)",
        features.names().join(", ")
    );
    cmd.args(["test", "--release", "--no-run", "--quiet"])
        .args(features.cargo_args());
    if !status(&mut cmd)? {
        bail!("cargo build of lenet failed");
    }
    Ok(root().join("target").join("release").join("lenet"))
}

/// Runs a command with inherited output; `Ok(false)` when it exits non-zero.
pub fn status(cmd: &mut Command) -> Result<bool> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    Ok(status.success())
}

/// The wheel of `project` at `version` that pip left in `dir` (wheel file names spell the project
/// with underscores, in any case).
pub fn find_wheel(dir: &Path, project: &str, version: &str) -> Result<PathBuf> {
    let stem = format!("{}-{version}-", project.replace('-', "_")).to_lowercase();
    std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_lowercase().starts_with(&stem) && n.ends_with(".whl"))
        })
        .with_context(|| format!("pip left no {stem}*.whl in {}", dir.display()))
}

pub fn root() -> PathBuf {
    // xtask/ sits in the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LENET_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no cache folder: set LENET_CACHE or HOME")?;
    Ok(base.join("lenet-compare"))
}

fn python_output(python: &Path, code: &str) -> Result<String> {
    let out = Command::new(python)
        .args(["-c", code])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

const TORCH_DIR: &str =
    "import torch, os; print(os.path.dirname(torch.__file__)); print(torch.__version__)";

/// Finds or installs libtorch and returns where everything is.
pub fn run() -> Result<Env> {
    let root = root();
    let link = root.join(".libtorch");
    // Cargo's [env] sets LIBTORCH to our own link for every process it starts, this one included;
    // only a different value comes from the user.
    let user_libtorch = std::env::var_os("LIBTORCH")
        .map(PathBuf::from)
        .filter(|p| p != &link && !p.ends_with(".libtorch"));
    let default_python = std::env::var_os("LENET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let out = python_output(&default_python, TORCH_DIR)
            .context("LIBTORCH_USE_PYTORCH is set, but python3 cannot import torch")?;
        let dir = out.lines().next().unwrap_or_default();
        return Ok(Env {
            root,
            libtorch: PathBuf::from(dir),
            python: default_python,
        });
    }
    if let Some(libtorch) = user_libtorch {
        if !libtorch.join("lib").is_dir() {
            bail!(
                "LIBTORCH={} has no lib folder: point it at a libtorch {TORCH_VERSION} folder, or unset it to let xtask install one",
                libtorch.display()
            );
        }
        return Ok(Env {
            root,
            libtorch,
            python: default_python,
        });
    }
    let venv = venv()?;
    let python = venv.join("bin").join("python");
    let out = python_output(&python, TORCH_DIR)?;
    let mut lines = out.lines();
    let dir = PathBuf::from(lines.next().unwrap_or_default());
    let version = lines.next().unwrap_or_default();
    if !version.starts_with(TORCH_VERSION) {
        bail!(
            "{} has torch {version}, tch needs {TORCH_VERSION}: delete {} and run again",
            venv.display(),
            venv.display()
        );
    }
    relink(&link, &dir)?;
    Ok(Env {
        root,
        libtorch: link,
        python,
    })
}

pub fn relink(link: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

/// The project's own virtual environment with torch, installed on first use.
pub fn venv() -> Result<PathBuf> {
    let venv = cache_dir()?.join(format!("torch-{TORCH_VERSION}"));
    let marker = venv.join(".lenet-complete");
    if !marker.exists() {
        install(&venv)?;
        std::fs::write(&marker, TORCH_VERSION)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    // Keras came later than torch: an environment from before it gets it on its next use.
    let keras = venv.join(".lenet-keras");
    let pins = KERAS_PACKAGES.join(" ");
    if std::fs::read_to_string(&keras).ok().as_deref() != Some(pins.as_str()) {
        eprintln!(
            "installing {pins} from PyPI into {} (the keras row)",
            venv.display()
        );
        pip_install(&venv, &KERAS_PACKAGES)?;
        std::fs::write(&keras, &pins)
            .with_context(|| format!("cannot write {}", keras.display()))?;
    }
    Ok(venv)
}

fn pip_install(venv: &Path, packages: &[&str]) -> Result<()> {
    let pip = venv.join("bin").join("pip");
    let ok = status(
        Command::new(&pip)
            .args([
                "install",
                "--disable-pip-version-check",
                "--progress-bar",
                "on",
            ])
            .args(packages),
    )?;
    if !ok {
        bail!(
            "pip could not install {} into {}",
            packages.join(" "),
            venv.display()
        );
    }
    Ok(())
}

fn install(venv: &Path) -> Result<()> {
    eprintln!(
        "installing torch=={TORCH_VERSION} from PyPI into {} (once; about 4.7 GB with its NVIDIA libraries)",
        venv.display()
    );
    let host = std::env::var_os("LENET_HOST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let ok = status(Command::new(&host).arg("-m").arg("venv").arg(venv)).with_context(|| {
        format!(
            "cannot create a virtual environment with {}",
            host.display()
        )
    })?;
    if !ok {
        bail!(
            "{} -m venv {} failed (on Debian, install python3-venv)",
            host.display(),
            venv.display()
        );
    }
    pip_install(venv, &[&format!("torch=={TORCH_VERSION}"), "numpy"])
}

#[cfg(test)]
mod tests {
    /// A wheel is found by its project (dashes as underscores, any case) and version, not by a
    /// longer project name or another version.
    #[test]
    fn find_wheel_matches_project_and_version() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "markdown_it_py-4.3.0-py3-none-any.whl",
            "markdown_it_py_extra-4.3.0-py3-none-any.whl",
            "Pygments-2.20.0-py3-none-any.whl",
            "Pygments-2.21.0-py3-none-any.whl",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found = |p: &str, v: &str| {
            super::find_wheel(dir.path(), p, v)
                .map(|w| w.file_name().unwrap().to_string_lossy().into_owned())
        };
        assert_eq!(
            found("markdown-it-py", "4.3.0").unwrap(),
            "markdown_it_py-4.3.0-py3-none-any.whl"
        );
        assert_eq!(
            found("pygments", "2.21.0").unwrap(),
            "Pygments-2.21.0-py3-none-any.whl"
        );
        assert!(found("rich", "15.0.0").is_err());
    }

    /// `--features`: the default build selects the workspace and has tch; a list is checked,
    /// deduplicated and put in one order, turns the other members' defaults back on, leaves tch's
    /// crate out when tch is not in it, and only a list with tch needs libtorch.
    #[test]
    fn features_make_one_build_per_set() {
        use super::{Features, Workspace};
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let all = list(&["tch", "candle", "burn"]);
        let workspace = Workspace {
            frameworks: all.clone(),
            crates: ["tch", "candle", "burn"]
                .map(|f| (f.to_string(), format!("{f}-impl")))
                .to_vec(),
            member_defaults: list(&["burn-impl/simd"]),
            features: Default::default(),
        };
        let new =
            |option: &str, named: Option<&[String]>| Features::among(&workspace, option, named);
        let default = new("--features", None).unwrap();
        assert!(default.is_default() && default.has_tch());
        assert_eq!(default.cargo_args(), ["--workspace"]);
        assert_eq!(default.names(), all);
        let burn = new("--features", Some(&list(&["burn", "candle", "burn"]))).unwrap();
        assert!(!burn.is_default() && !burn.has_tch());
        assert_eq!(
            burn.cargo_args(),
            list(&[
                "--workspace",
                "--exclude",
                "tch-impl",
                "--no-default-features",
                "--features",
                "lenet-compare/candle,lenet-compare/burn,burn-impl/simd"
            ])
        );
        assert_eq!(
            new("--features", Some(&list(&["candle", "burn"]))).unwrap(),
            burn
        );
        let tch = new("--features", Some(&list(&["tch"]))).unwrap();
        assert!(tch.has_tch());
        assert_eq!(
            tch.cargo_args(),
            list(&[
                "--workspace",
                "--no-default-features",
                "--features",
                "lenet-compare/tch,burn-impl/simd"
            ])
        );
        let e = new("--frameworks", Some(&list(&["dfdx"])))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--frameworks: unknown framework feature 'dfdx': expected tch, candle, burn"
        );
        assert!(new("--features", Some(&[])).is_err());
    }

    /// `--with`: root features beyond the frameworks' join the default build's features or the
    /// chosen frameworks' (once each); an unknown name, or one that turns on a framework the build
    /// leaves out, is refused.
    #[test]
    fn extra_features_join_the_build() {
        use super::{Features, Workspace};
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let features = [
            ("tch", list(&["dep:tch-impl"])),
            ("burn", list(&["dep:burn-impl"])),
            ("burn-cpu", list(&["burn", "burn-impl/cpu"])),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into_iter()
        .collect();
        let workspace = Workspace {
            frameworks: list(&["tch", "burn"]),
            crates: ["tch", "burn"]
                .map(|f| (f.to_string(), format!("{f}-impl")))
                .to_vec(),
            member_defaults: Vec::new(),
            features,
        };
        let new = |named: Option<&[String]>| Features::among(&workspace, "--features", named);
        let cpu = list(&["burn-cpu", "burn-cpu"]);
        let default = new(None).unwrap().with_extra("--with", &cpu).unwrap();
        assert_eq!(
            default.cargo_args(),
            list(&["--workspace", "--features", "burn-cpu"])
        );
        let burn = new(Some(&list(&["burn"])))
            .unwrap()
            .with_extra("--with", &cpu)
            .unwrap();
        assert_eq!(
            burn.cargo_args(),
            list(&[
                "--workspace",
                "--exclude",
                "tch-impl",
                "--no-default-features",
                "--features",
                "lenet-compare/burn,lenet-compare/burn-cpu"
            ])
        );
        let e = new(Some(&list(&["tch"])))
            .unwrap()
            .with_extra("--with", &cpu)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--with burn-cpu turns on burn, which --features leaves out"
        );
        let e = new(None)
            .unwrap()
            .with_extra("--with", &list(&["burn-gpu"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--with: unknown feature 'burn-gpu': expected one of burn, burn-cpu, tch"
        );
    }

    /// The workspace as cargo metadata lists it: the root's frameworks and their crates, and the
    /// other members' default features.
    #[test]
    fn the_workspace_comes_from_cargo_metadata() {
        let metadata = serde_json::json!({ "packages": [
            { "name": "burn-impl", "features": { "default": ["simd"], "simd": [], "cuda": [] } },
            { "name": "lenet-compare", "features": {
                "default": ["tch", "burn"],
                "tch": ["dep:tch-impl", "dep:torch-sys"],
                "burn": ["dep:burn-impl"],
                "burn-cuda": ["burn", "burn-impl/cuda"],
            } },
            { "name": "common", "features": { "cli": ["dep:clap"] } },
        ] });
        let w = super::workspace_of(&metadata).unwrap();
        assert_eq!(w.frameworks, ["tch", "burn"]);
        assert_eq!(
            w.crates,
            [
                ("tch".into(), "tch-impl".into()),
                ("burn".into(), "burn-impl".into())
            ]
        );
        assert_eq!(w.member_defaults, ["burn-impl/simd"]);
        let e = super::workspace_of(&serde_json::json!({ "packages": [] })).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cargo metadata lists no lenet-compare package"
        );
    }

    /// The framework features are those that turn on a `*-impl` crate, in the default list's
    /// order (then by name), whatever else the table holds.
    #[test]
    fn framework_features_come_from_the_features_table() {
        let table = serde_json::json!({
            "default": ["tch", "candle", "burn"],
            "burn": ["dep:burn-impl"],
            "burn-cuda": ["burn", "burn-impl/cuda"],
            "candle": ["dep:candle-impl"],
            "cuda": ["candle", "candle-impl/cuda"],
            "dfdx": ["dep:dfdx-impl"],
            "tch": ["dep:tch-impl", "dep:torch-sys"],
            "quiet": ["dep:indicatif"],
        });
        assert_eq!(
            super::frameworks_of(&table),
            ["tch", "candle", "burn", "dfdx"]
        );
        assert!(super::frameworks_of(&serde_json::json!([])).is_empty());
    }

    /// This workspace's own list: the three frameworks of the root Cargo.toml.
    #[test]
    fn this_workspace_has_its_frameworks() {
        assert_eq!(
            super::framework_features().unwrap(),
            ["tch", "candle", "burn"]
        );
    }
}
