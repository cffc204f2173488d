//! What building candle's `cuda` feature needs, found or installed without a hand step:
//!
//! - nvcc 13.0 (candle compiles its kernels to PTX at build time): PyPI `nvidia-cuda-nvcc` with
//!   `nvidia-nvvm`, `nvidia-cuda-crt` and `nvidia-cuda-cccl`, all pinned to 13.0 (a newer nvvm writes
//!   PTX that the 13.0 ptxas rejects), installed into the project's torch environment, whose NVIDIA
//!   libraries (cuBLAS, cuRAND, NVRTC, cuDNN) are the ones linked against;
//! - unversioned names for those libraries (`libcublas.so`, ...), which the wheels do not ship;
//! - a `libcuda.so` to link against: the system's driver library if there is one, else `LENET_LIBCUDA`,
//!   else the one in Debian's non-free `libcuda1` package, unpacked into the cache for linking only
//!   (at run time the GPU machine's own driver library is loaded).
//!
//! All of it lands in `<cache>/cuda-13.0/`, laid out like a CUDA toolkit, and the cargo commands get
//! `CUDA_HOME`, `PATH` and `CUDA_COMPUTE_CAP` pointing there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{process, python_env};

pub const CUDA_VERSION: &str = "13.0";
/// Hopper (H100, H200); `CUDA_COMPUTE_CAP` overrides it.
const DEFAULT_COMPUTE_CAP: &str = "90";
const PACKAGES: [&str; 4] = [
    "nvidia-cuda-nvcc",
    "nvidia-nvvm",
    "nvidia-cuda-crt",
    "nvidia-cuda-cccl",
];
/// The libraries candle's CUDA build links (and the kernel counter, CUPTI), and where the wheels
/// keep them (under `nvidia/`).
const LIBRARIES: [(&str, &str); 7] = [
    ("cupti", "cu13/lib"),
    ("cudart", "cu13/lib"),
    ("cublas", "cu13/lib"),
    ("cublasLt", "cu13/lib"),
    ("curand", "cu13/lib"),
    ("nvrtc", "cu13/lib"),
    ("cudnn", "cudnn/lib"),
];

/// A CUDA toolkit laid out for the build.
pub struct Toolkit {
    pub root: PathBuf,
    pub bin: PathBuf,
}

impl Toolkit {
    /// Points a cargo command at the toolkit.
    pub fn apply(&self, cmd: &mut Command) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.bin.clone()];
        paths.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            cmd.env("PATH", joined);
        }
        cmd.env("CUDA_HOME", &self.root)
            .env("CUDA_PATH", &self.root);
        if std::env::var_os("CUDA_COMPUTE_CAP").is_none() {
            cmd.env("CUDA_COMPUTE_CAP", DEFAULT_COMPUTE_CAP);
        }
    }
}

/// Finds or installs everything, in the project's own torch environment.
pub fn setup() -> Result<Toolkit> {
    let venv = python_env::venv()?;
    let python = venv.join("bin").join("python");
    let site = site_packages(&python)?;
    let nvidia = site.join("nvidia");
    let marker = venv.join(format!(".lenet-cuda-{CUDA_VERSION}"));
    if !marker.exists() {
        eprintln!(
            "installing nvcc {CUDA_VERSION} from PyPI into {}",
            venv.display()
        );
        let mut cmd = Command::new(venv.join("bin").join("pip"));
        cmd.args(["install", "--disable-pip-version-check", "--quiet"]);
        for p in PACKAGES {
            cmd.arg(format!("{p}=={CUDA_VERSION}.*"));
        }
        if !process::status(&mut cmd)? {
            bail!("pip could not install nvcc {CUDA_VERSION}");
        }
        std::fs::write(&marker, CUDA_VERSION)?;
    }
    let cuda = nvidia.join("cu13");
    if !cuda.join("bin").join("nvcc").exists() {
        bail!("{} has no bin/nvcc after installing nvcc", cuda.display());
    }
    let root = process::cache_dir()?.join(format!("cuda-{CUDA_VERSION}"));
    let lib64 = root.join("lib64");
    std::fs::create_dir_all(&lib64)
        .with_context(|| format!("cannot create {}", lib64.display()))?;
    for dir in ["bin", "include", "nvvm"] {
        process::relink(&root.join(dir), &cuda.join(dir))?;
    }
    for (name, dir) in LIBRARIES {
        let versioned = versioned_library(&nvidia.join(dir), name)?;
        process::relink(&lib64.join(format!("lib{name}.so")), &versioned)?;
    }
    let libcuda = libcuda(&root)?;
    process::relink(&lib64.join("libcuda.so"), &libcuda)?;
    Ok(Toolkit {
        bin: root.join("bin"),
        root,
    })
}

fn site_packages(python: &Path) -> Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `lib<name>.so.<major>` in `dir`.
fn versioned_library(dir: &Path, name: &str) -> Result<PathBuf> {
    let prefix = format!("lib{name}.so.");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .with_context(|| format!("no lib{name}.so.* in {}", dir.display()))
}

/// A `libcuda.so` to link against.
fn libcuda(root: &Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("LENET_LIBCUDA").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/local/nvidia/lib64",
    ] {
        let p = Path::new(dir).join("libcuda.so.1");
        if p.exists() {
            return Ok(p);
        }
    }
    let driver = root.join("driver");
    let unpacked = driver.join("usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.1");
    if unpacked.exists() {
        return Ok(unpacked);
    }
    eprintln!("fetching Debian's libcuda1 (non-free) to link against");
    debian_libcuda(&driver).context(
        "no libcuda.so to link against: install the NVIDIA driver's library, set LENET_LIBCUDA, \
         or allow apt to fetch Debian's non-free libcuda1",
    )?;
    if !unpacked.exists() {
        bail!("Debian's libcuda1 did not contain {}", unpacked.display());
    }
    Ok(unpacked)
}

/// Downloads and unpacks Debian's `libcuda1` with a private apt configuration that adds the
/// non-free component of the system's own Debian source; the system's apt set-up is left alone.
fn debian_libcuda(driver: &Path) -> Result<()> {
    let (uri, suite, signed_by) = debian_source()?;
    let apt = driver.join("apt");
    let lists = apt.join("lists");
    std::fs::create_dir_all(lists.join("partial"))?;
    let list = apt.join("sources.list");
    std::fs::write(
        &list,
        format!("deb [signed-by={signed_by}] {uri} {suite} non-free\n"),
    )?;
    let opts = [
        format!("-oDir::Etc::SourceList={}", list.display()),
        "-oDir::Etc::SourceParts=/nonexistent".to_string(),
        format!("-oDir::State::Lists={}", lists.display()),
        "-oAPT::Sandbox::User=root".to_string(),
    ];
    if !process::status(Command::new("apt-get").args(&opts).args(["-qq", "update"]))? {
        bail!("apt-get update failed");
    }
    if !process::status(
        Command::new("apt-get")
            .args(&opts)
            .args(["-qq", "download", "libcuda1"])
            .current_dir(&apt),
    )? {
        bail!("apt-get download libcuda1 failed");
    }
    let deb = std::fs::read_dir(&apt)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get left no .deb")?;
    if !process::status(Command::new("dpkg").arg("-x").arg(&deb).arg(driver))? {
        bail!("dpkg -x {} failed", deb.display());
    }
    Ok(())
}

/// The first Debian source of the system: URI, suite and keyring.
fn debian_source() -> Result<(String, String, String)> {
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg".to_string();
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sources"))
    {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for stanza in text.split("\n\n") {
            let field = |key: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.split_whitespace().next())
                    .map(str::to_string)
            };
            if let (Some(uri), Some(suite)) = (field("URIs:"), field("Suites:")) {
                if uri.trim_end_matches('/').ends_with("/debian") {
                    return Ok((uri, suite, field("Signed-By:").unwrap_or(keyring)));
                }
            }
        }
    }
    let text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for line in text.lines() {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('['))
            .collect();
        if let ["deb", uri, suite, ..] = words.as_slice() {
            if uri.trim_end_matches('/').ends_with("/debian") {
                return Ok((uri.to_string(), suite.to_string(), keyring));
            }
        }
    }
    bail!("no Debian package source found in /etc/apt")
}
