//! `cargo xtask setup`: libtorch and the Python rows' environment (`python_env.rs`), and with
//! `--cuda` what the frameworks' CUDA code needs to build (the CUDA toolkit, `cuda.rs`; LLVM,
//! `llvm.rs`), the kernel counter (`counter.rs`), and a check that the CUDA builds the registry asks
//! for compile.

use std::path::Path;

use anyhow::Result;

use crate::cuda::Toolkit;
use crate::llvm::Llvm;
use crate::registry::{self, CudaBinary};
use crate::{counter, cuda, flags, llvm, process, python_env, workspace};

/// Sets up, then with `--cuda` checks the CUDA builds; `Ok(false)` when one does not compile.
pub fn run(flags: flags::Setup) -> Result<bool> {
    let env = python_env::setup()?;
    println!("libtorch: {}", env.libtorch.display());
    println!("python:   {}", env.python.display());
    if !flags.cuda {
        return Ok(true);
    }
    // The CUDA builds the registry asks for (candle's and burn's CUDA code go into separate
    // binaries, see the root Cargo.toml), known before anything is downloaded.
    let lenet = registry::build_lenet(&env)?;
    let builds = registry::checked_builds(
        &registry::catalogue(&lenet)?,
        workspace::workspace()?,
        flags.check.as_deref(),
    )?;
    let toolkit = cuda::setup()?;
    println!("cuda:     {}", toolkit.root.display());
    let counter = counter::build(&toolkit, &process::root().join(counter::OUT_DIR))?;
    println!("counter:  {} (lenet train --kernels)", counter.display());
    let llvm = llvm::setup()?;
    println!("llvm:     {}", llvm.prefix.display());
    let target_dir = flags
        .target_dir
        .as_deref()
        .unwrap_or(Path::new(registry::CUDA_TARGET_DIR));
    for build in builds {
        if !check(&build, target_dir, &toolkit, &llvm)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `cargo check` of one CUDA build into `target_dir`; whether it compiles.
fn check(build: &CudaBinary, target_dir: &Path, toolkit: &Toolkit, llvm: &Llvm) -> Result<bool> {
    let mut cmd = process::cargo();
    // `--workspace`: the features every other workspace build resolves, plus the CUDA ones,
    // so that only the crates CUDA changes are checked again in a folder that holds those
    // builds (CI's `--target-dir target`).
    cmd.args([
        "check",
        "--release",
        "--workspace",
        "--features",
        &build.features.join(","),
        "--all-targets",
    ])
    .arg("--target-dir")
    .arg(target_dir);
    toolkit.apply(&mut cmd);
    if build.llvm {
        llvm.apply(&mut cmd);
    }
    process::status(&mut cmd)
}
