//! `cargo xtask frameworks`: the framework features of the root Cargo.toml, one per line, in its
//! order (the one list of frameworks that xtask, CI and the scripts read; see `workspace.rs`).

use anyhow::Result;

use crate::workspace;

/// Prints the list.
pub fn run() -> Result<bool> {
    for name in workspace::framework_features()? {
        println!("{name}");
    }
    Ok(true)
}
