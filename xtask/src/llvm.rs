//! What building burn's `cuda` feature needs, without the download that burn's build would make.
//!
//! burn's CUDA backend (cubecl-cuda) compiles its kernels to PTX with LLVM 23.1's NVPTX backend,
//! linked statically through `tracel-llvm-bundler`, whose build script downloads a prebuilt LLVM
//! from GitHub unless it finds `$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4/.tracel-llvm-installed`.
//! It then asks that folder's `bin/llvm-config --link-static` for the libraries to link, and
//! compiles two small C++ shims against LLVM's headers.
//!
//! PyPI has that LLVM as a static SDK: `mlc-llvm-static` (LLVM 23.1.1, PIC static archives built
//! with libstdc++, headers, and a Python `llvm-config` that answers `--link-static`) with its X86
//! backend, and `mlc-llvm-static-extra-targets`, the other backends, NVPTX among them. This module
//! downloads both wheels with the project's pip, unpacks them into the cache, marks the SDK as the
//! bundler's folder and gives the cargo command an `XDG_DATA_HOME` that points there (the user's own
//! data folder is left alone). LLVM ends up inside the binary, so nothing more is needed at run
//! time. (PyPI's other LLVM 23.1, karellen's, is a shared library with the X86 backend only: it
//! cannot generate PTX.)

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{process, python_env};

/// The PyPI release of the SDK (LLVM 23.1.1; the bundler was made for 23.1.0, and patch releases
/// keep the C API).
pub const WHEEL_VERSION: &str = "23.1.1.post0";
const WHEELS: [&str; 2] = ["mlc-llvm-static", "mlc-llvm-static-extra-targets"];
/// The folder name `tracel-llvm-bundler` 23.1.0-4 looks for under `$XDG_DATA_HOME/tracel`.
const BUNDLER_FOLDER: &str = "tracel-llvm-23.1.0-4";
/// The LLVM backend burn's CUDA kernels need.
const NEEDED_TARGET: &str = "NVPTX";

/// LLVM 23.1 laid out for the bundler.
pub struct Llvm {
    /// The SDK: `bin/llvm-config`, `include`, `lib` with the static archives.
    pub prefix: PathBuf,
    /// What `XDG_DATA_HOME` is set to for the build.
    pub data_home: PathBuf,
}

impl Llvm {
    /// Points a cargo command at it.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("XDG_DATA_HOME", &self.data_home);
    }
}

/// Finds or installs everything, in the project's cache.
pub fn setup() -> Result<Llvm> {
    let root = process::cache_dir()?.join(format!("llvm-static-{WHEEL_VERSION}"));
    let unpacked = root.join("sdk");
    let prefix = unpacked.join("mlc_llvm_static").join("static");
    let marker = root.join(".unpacked");
    if !marker.exists() {
        unpack_wheels(&root, &unpacked)?;
        std::fs::write(&marker, WHEEL_VERSION)?;
    }
    let config = prefix.join("bin").join("llvm-config");
    for needed in [
        config.clone(),
        prefix.join("include").join("llvm-c").join("Core.h"),
        prefix.join("lib").join("libLLVMNVPTXCodeGen.a"),
    ] {
        if !needed.exists() {
            bail!(
                "{} is missing after unpacking the LLVM wheels; delete {} and run again",
                needed.display(),
                root.display()
            );
        }
    }
    // Wheels do not keep file modes: the configuration script must be executable.
    process::set_executable(&config)?;
    let targets = Command::new(&config)
        .arg("--targets-built")
        .output()
        .with_context(|| format!("cannot run {}", config.display()))?;
    let targets = String::from_utf8_lossy(&targets.stdout).into_owned();
    if !targets.split_whitespace().any(|t| t == NEEDED_TARGET) {
        bail!(
            "{} builds only [{}]: burn's CUDA kernels need LLVM's {NEEDED_TARGET} backend",
            config.display(),
            targets.trim()
        );
    }

    // The folder the bundler checks before it downloads anything: the SDK itself, marked.
    let data_home = root.join("data");
    let tracel = data_home.join("tracel");
    std::fs::create_dir_all(&tracel)?;
    process::relink(&tracel.join(BUNDLER_FOLDER), &prefix)?;
    std::fs::write(prefix.join(".tracel-llvm-installed"), "")?;
    Ok(Llvm { prefix, data_home })
}

/// Downloads the wheels with the project's pip and unpacks them into `dest`.
fn unpack_wheels(root: &Path, dest: &Path) -> Result<()> {
    let venv = python_env::venv()?;
    let wheels = root.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    eprintln!(
        "fetching LLVM {WHEEL_VERSION} from PyPI ({}, about 90 MB) into {}",
        WHEELS.join(", "),
        root.display()
    );
    let mut cmd = Command::new(venv.join("bin").join("pip"));
    cmd.args([
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
    ])
    .arg(&wheels);
    for w in WHEELS {
        cmd.arg(format!("{w}=={WHEEL_VERSION}"));
    }
    if !process::status(&mut cmd)? {
        bail!("pip could not download the LLVM {WHEEL_VERSION} wheels");
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("cannot clear {}", dest.display()))?;
    }
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args(["-c", UNPACK]).arg(dest);
    for w in WHEELS {
        cmd.arg(python_env::find_wheel(&wheels, w, WHEEL_VERSION)?);
    }
    if !process::status(&mut cmd)? {
        bail!("could not unpack the LLVM wheels into {}", dest.display());
    }
    Ok(())
}

/// Unpacks each wheel into `argv[1]`, keeping the file modes the archive records.
const UNPACK: &str = r#"
import os, sys, zipfile
dest = sys.argv[1]
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            path = z.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode)
"#;
