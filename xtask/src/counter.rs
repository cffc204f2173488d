//! The kernel counter's library (`crates/meters/cupti/kernel_counter.c`, read by
//! `meters::kernels`), compiled with the system's C compiler against the CUPTI that the torch
//! install's NVIDIA wheels bring (headers and `libcupti.so.13`, laid out by `cuda::setup`). No GPU
//! is needed to build it; it records only where CUDA's driver runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cuda, process};

/// The counter's source, from the repository root.
pub const SOURCE: &str = "crates/meters/cupti/kernel_counter.c";
/// Where `cargo xtask setup --cuda` puts it, from the repository root.
pub const OUT_DIR: &str = "target/kernel-counter";
/// The library's file name (`lenet train --kernels` takes its path).
pub const LIBRARY: &str = "liblenet_kernels.so";
/// What the library exports: the driver's entry point, and the harness's.
pub const EXPORTS: [&str; 4] = [
    "InitializeInjection",
    "lenet_kernels_start",
    "lenet_kernels_mark",
    "lenet_kernels_finish",
];

/// Compiles the counter into `out_dir` and returns the library's path; fails on any compiler
/// warning, and when the library does not export [`EXPORTS`].
pub fn build(toolkit: &cuda::Toolkit, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let library = out_dir.join(LIBRARY);
    let lib64 = toolkit.root.join("lib64");
    // The versioned library the unversioned link name points at: the folder to find it in at run
    // time, where no LD_LIBRARY_PATH says otherwise.
    let cupti_dir = std::fs::canonicalize(lib64.join("libcupti.so"))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| lib64.clone());
    let compiler = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(&compiler);
    cmd.current_dir(process::root())
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-std=c11",
            "-D_POSIX_C_SOURCE=200809L",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg("-I")
        .arg(toolkit.root.join("include"))
        .arg(SOURCE)
        .arg("-o")
        .arg(&library)
        .arg("-L")
        .arg(&lib64)
        .arg("-lcupti")
        .arg(format!("-Wl,-rpath,{}", cupti_dir.display()));
    if !process::status(&mut cmd)? {
        bail!(
            "{} could not compile the kernel counter ({SOURCE})",
            compiler.to_string_lossy()
        );
    }
    let symbols = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&library)
        .output()
        .context("cannot run nm on the kernel counter")?;
    let symbols = String::from_utf8_lossy(&symbols.stdout);
    let missing: Vec<&str> = EXPORTS
        .into_iter()
        .filter(|e| {
            !symbols
                .lines()
                .any(|l| l.split_whitespace().last() == Some(*e))
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} does not export {}",
            library.display(),
            missing.join(", ")
        );
    }
    Ok(library)
}
