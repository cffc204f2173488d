//! Finding or installing libtorch, and the Python the Python rows run with. A user's `LIBTORCH` or
//! `LIBTORCH_USE_PYTORCH` wins; otherwise the Python rows' requirements (`python/setup/*.txt`, each
//! row's own file, [`requirements`]) are installed from PyPI into a virtual environment in the
//! user's cache folder (shared by every checkout, so it downloads once), and `.libtorch` in the
//! repository links to the torch they pin ([`torch_version`]). The workspace's
//! `.cargo/config.toml` points `LIBTORCH` at that link, which is why a plain `cargo test` or `cargo
//! bench` works once this has run. The same environment's pip installs the CUDA toolkit's and
//! LLVM's wheels (`cuda.rs`, `llvm.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process;

/// Where the Python rows keep their requirements: `ROW.txt` for the environment, `ROW.bundle.txt`
/// and `ROW.bundle.sh` for a CUDA bundle (`bundle.rs`).
pub const SETUP_DIR: &str = "python/setup";

/// One line of a requirements file: a PyPI project, its pinned version if any, and whether it is
/// marked `# always` (a bundle's wheel that goes on the path even where the machine has a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub project: String,
    pub version: Option<String>,
    pub always: bool,
}

impl Requirement {
    /// As pip takes it: `project==version`, or the project alone.
    pub fn spec(&self) -> String {
        match &self.version {
            Some(v) => format!("{}=={v}", self.project),
            None => self.project.clone(),
        }
    }
}

/// The requirements of a file's text: one a line, `#` to the end of a line a comment.
pub fn parse_requirements(text: &str) -> Vec<Requirement> {
    text.lines()
        .filter_map(|line| {
            let (spec, comment) = line.split_once('#').unwrap_or((line, ""));
            let spec = spec.trim();
            if spec.is_empty() {
                return None;
            }
            let (project, version) = match spec.split_once("==") {
                Some((p, v)) => (p.trim().to_string(), Some(v.trim().to_string())),
                None => (spec.to_string(), None),
            };
            Some(Requirement {
                project,
                version,
                always: comment.split_whitespace().any(|w| w == "always"),
            })
        })
        .collect()
}

/// The files of [`SETUP_DIR`] whose names end with `suffix`, in name order, and their
/// requirements.
pub fn requirement_files(suffix: &str) -> Result<Vec<(PathBuf, Vec<Requirement>)>> {
    let dir = process::root().join(SETUP_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix) && !n[..n.len() - suffix.len()].contains('.'))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok((path, parse_requirements(&text)))
        })
        .collect()
}

/// What the Python rows' environment holds: every row's `python/setup/ROW.txt`, as pip takes them.
pub fn requirements() -> Result<Vec<String>> {
    Ok(requirement_files(".txt")?
        .into_iter()
        .flat_map(|(_, r)| r)
        .map(|r| r.spec())
        .collect())
}

/// The torch the Python rows pin, and so the libtorch the project builds against.
pub fn torch_version() -> Result<String> {
    requirement_files(".txt")?
        .into_iter()
        .flat_map(|(_, r)| r)
        .find(|r| r.project == "torch")
        .and_then(|r| r.version)
        .with_context(|| format!("no file of {SETUP_DIR} pins torch (torch==VERSION)"))
}

/// What the builds and the reference runs use.
pub struct Env {
    /// The repository root.
    pub root: PathBuf,
    /// The libtorch folder the build links (`.libtorch`, or the user's own).
    pub libtorch: PathBuf,
    /// A python3 that can import torch (for the PyTorch reference run).
    pub python: PathBuf,
}

/// Prints torch's folder and version.
const TORCH_DIR: &str =
    "import torch, os; print(os.path.dirname(torch.__file__)); print(torch.__version__)";

/// Finds or installs libtorch and returns where everything is.
pub fn setup() -> Result<Env> {
    let root = process::root();
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
                "LIBTORCH={} has no lib folder: point it at a libtorch {} folder, or unset it to let xtask install one",
                libtorch.display(),
                torch_version()?
            );
        }
        return Ok(Env {
            root,
            libtorch,
            python: default_python,
        });
    }
    let venv = venv()?;
    let torch = torch_version()?;
    let python = venv.join("bin").join("python");
    let out = python_output(&python, TORCH_DIR)?;
    let mut lines = out.lines();
    let dir = PathBuf::from(lines.next().unwrap_or_default());
    let version = lines.next().unwrap_or_default();
    if !version.starts_with(&torch) {
        bail!(
            "{} has torch {version}, {SETUP_DIR} pins {torch}: delete {} and run again",
            venv.display(),
            venv.display()
        );
    }
    process::relink(&link, &dir)?;
    Ok(Env {
        root,
        libtorch: link,
        python,
    })
}

/// The Python rows' virtual environment, made on first use, with their requirements installed
/// (again whenever they change).
pub fn venv() -> Result<PathBuf> {
    let venv = process::cache_dir()?.join(format!("torch-{}", torch_version()?));
    if !venv.join("bin").join("python").exists() {
        create(&venv)?;
    }
    let marker = venv.join(".lenet-requirements");
    let wanted = requirements()?;
    let pins = wanted.join(" ");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(pins.as_str()) {
        eprintln!(
            "installing {pins} from PyPI into {} (the Python rows, {SETUP_DIR}; torch once, about 4.7 GB with its NVIDIA libraries)",
            venv.display()
        );
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        pip_install(&venv, &wanted)?;
        std::fs::write(&marker, &pins)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(venv)
}

fn pip_install(venv: &Path, packages: &[&str]) -> Result<()> {
    let pip = venv.join("bin").join("pip");
    let ok = process::status(
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

fn create(venv: &Path) -> Result<()> {
    let host = std::env::var_os("LENET_HOST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let ok = process::status(Command::new(&host).arg("-m").arg("venv").arg(venv)).with_context(
        || {
            format!(
                "cannot create a virtual environment with {}",
                host.display()
            )
        },
    )?;
    if !ok {
        bail!(
            "{} -m venv {} failed (on Debian, install python3-venv)",
            host.display(),
            venv.display()
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::{parse_requirements, Requirement};

    /// A requirements line is a project, maybe pinned, maybe marked `always`; comments and blank
    /// lines are nothing.
    #[test]
    fn requirements_are_read_line_by_line() {
        let text = "# a comment\n\nkeras==3.15.1  # always\nnumpy\n rich == 15.0.0 # no mark\n";
        let req = |p: &str, v: Option<&str>, always| Requirement {
            project: p.into(),
            version: v.map(Into::into),
            always,
        };
        assert_eq!(
            parse_requirements(text),
            [
                req("keras", Some("3.15.1"), true),
                req("numpy", None, false),
                req("rich", Some("15.0.0"), false),
            ]
        );
        assert_eq!(parse_requirements(text)[0].spec(), "keras==3.15.1");
        assert_eq!(parse_requirements(text)[1].spec(), "numpy");
    }

    /// The rows' files as they are: the environment's pin torch (the libtorch of the build), the
    /// bundles' are not part of it.
    #[test]
    fn the_rows_pin_torch() {
        let version = super::torch_version().unwrap();
        assert!(version.split('.').count() == 3, "{version}");
        let all = super::requirements().unwrap();
        assert!(all.contains(&format!("torch=={version}")), "{all:?}");
        let bundles = super::requirement_files(".bundle.txt").unwrap();
        assert!(!bundles.is_empty());
        for (path, _) in &bundles {
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(name.ends_with(".bundle.txt"), "{name}");
        }
        // No bundle file is read as a row's environment.
        let rows = super::requirement_files(".txt").unwrap();
        assert!(rows
            .iter()
            .all(|(p, _)| !p.to_string_lossy().ends_with(".bundle.txt")));
    }
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
}
