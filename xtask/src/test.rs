//! `cargo xtask test`: the whole workspace's tests in a release build, of every framework or of
//! those of `--features` alone, with `--with`'s extra root features, after setting up what that
//! build needs (libtorch and the Python rows' environment, LLVM); extra arguments go to
//! `cargo test`.

use anyhow::Result;

use crate::features::{self, Features};
use crate::workspace::{self, Need};
use crate::{flags, llvm, process, python_env};

/// Runs the tests; `Ok(false)` when one fails.
pub fn run(flags: flags::Test) -> Result<bool> {
    let with = flags.with.as_deref().unwrap_or_default();
    // `--with`'s names are checked first: a CUDA build is not this command's to make.
    features::refuse_cuda(workspace::workspace()?, "--with", with)?;
    let features =
        Features::new("--features", flags.features.as_deref())?.with_extra("--with", with)?;
    let mut cmd = process::cargo();
    if features.needs(Need::Llvm) {
        let llvm = llvm::setup()?;
        println!("llvm: {}", llvm.prefix.display());
        llvm.apply(&mut cmd);
    }
    if features.needs(Need::Libtorch) {
        let env = python_env::setup()?;
        // The Python with torch that the reference's tests run (tests/reference.rs).
        cmd.env("LENET_PYTHON", &env.python);
    }
    // The whole workspace's tests, the root's with the frameworks chosen (see `cargo_args`).
    cmd.args(["test", "--release"]).args(features.cargo_args());
    cmd.args(&flags.args);
    // Test binaries run in their own package's folder: a relative MNIST_DIR must not depend on that.
    if let Some(dir) = std::env::var_os("MNIST_DIR").filter(|d| !d.is_empty()) {
        let dir = std::path::PathBuf::from(dir);
        if let Ok(abs) = std::path::absolute(&dir) {
            cmd.env("MNIST_DIR", abs);
        }
    }
    process::status(&mut cmd)
}
