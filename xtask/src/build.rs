//! `cargo xtask build --features F,...`: `lenet` with cargo features beyond the framework ones
//! (`burn-cpu`, burn's compiled CPU backend; `burn-rayon`), given what the build needs that cargo
//! alone would not find, as the manifests say (`workspace.rs`): libtorch for tch, and LLVM 23.1 for
//! burn's cubecl compilers (see `llvm.rs`). The binary is copied to `target/lenet-FEATURES`, where
//! the next ordinary build does not replace it, for `compare --lenet` or `--lenet-for burn=...`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::features::{self, Features};
use crate::workspace::{self, Need};
use crate::{flags, llvm, process, python_env};

/// Builds and returns the copy's path.
pub fn run(flags: flags::Build) -> Result<PathBuf> {
    // An unknown name, or a CUDA build (which the bundle makes, with its toolkit), is refused.
    features::refuse_cuda(workspace::workspace()?, "--features", &flags.features)?;
    // The default build's frameworks with the features asked for.
    let build = Features::new("--features", None)?.with_extra("--features", &flags.features)?;
    if build.needs(Need::Libtorch) {
        // libtorch for torch-sys's build script.
        python_env::setup()?;
    }
    let mut cmd = process::cargo();
    let features = flags.features.join(",");
    cmd.args(["build", "--release", "--workspace", "--features", &features]);
    if build.needs(Need::Llvm) {
        let llvm = llvm::setup()?;
        println!("llvm: {}", llvm.prefix.display());
        llvm.apply(&mut cmd);
    }
    eprintln!("building lenet with --features {features} (release)");
    if !process::status(&mut cmd)? {
        bail!("cargo build --features {features} failed");
    }
    let target = process::root().join("target");
    let built = target.join("release").join("lenet");
    let out = target.join(format!("lenet-{}", flags.features.join("-")));
    std::fs::copy(&built, &out)
        .with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
    println!("{}", out.display());
    Ok(out)
}
