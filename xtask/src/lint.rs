//! `cargo xtask lint`: clippy on every crate and target (release, warnings are errors), of the
//! build with every framework or with those of `--features` alone, with libtorch set up first
//! where that build links it.

use anyhow::Result;

use crate::features::Features;
use crate::workspace::Need;
use crate::{flags, process, python_env};

/// Lints; `Ok(false)` when clippy finds something.
pub fn run(flags: flags::Lint) -> Result<bool> {
    let features = Features::new("--features", flags.features.as_deref())?;
    if features.needs(Need::Libtorch) {
        // libtorch for torch-sys's build script.
        python_env::setup()?;
    }
    let mut cmd = process::cargo();
    cmd.args(["clippy", "--release", "--all-targets"])
        .args(features.cargo_args())
        .args(["--", "-D", "warnings"]);
    process::status(&mut cmd)
}
