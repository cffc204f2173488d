//! Finding or installing libtorch, and the Python the Python rows run with. A user's `LIBTORCH` or
//! `LIBTORCH_USE_PYTORCH` wins; otherwise PyPI `torch==2.11.0` is installed into a virtual
//! environment in the user's cache folder (shared by every checkout, so it downloads once), with the
//! Keras row's pinned keras and jax beside it ([`KERAS_PACKAGES`]), and `.libtorch` in the
//! repository links to it. The workspace's `.cargo/config.toml` points `LIBTORCH` at that link,
//! which is why a plain `cargo test` or `cargo bench` works once this has run. The same
//! environment's pip installs the CUDA toolkit's and LLVM's wheels (`cuda.rs`, `llvm.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process;

/// The torch (and so the libtorch) the project builds against.
pub const TORCH_VERSION: &str = "2.11.0";
/// The Keras row's packages (`python/keras_reference.py`), beside torch in the same environment:
/// Keras 3 and the JAX it runs on by default (the newest jax for the Python 3.11 of the CI machine).
pub const KERAS_PACKAGES: [&str; 3] = ["keras==3.15.1", "jax==0.10.2", "jaxlib==0.10.2"];

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
    process::relink(&link, &dir)?;
    Ok(Env {
        root,
        libtorch: link,
        python,
    })
}

/// The project's own virtual environment with torch, installed on first use.
pub fn venv() -> Result<PathBuf> {
    let venv = process::cache_dir()?.join(format!("torch-{TORCH_VERSION}"));
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
    pip_install(venv, &[&format!("torch=={TORCH_VERSION}"), "numpy"])
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
