//! `cargo xtask frameworks`: the framework features of the root Cargo.toml, one per line, in its
//! order (the one list of frameworks that xtask, CI and the scripts read; see `workspace.rs`), or
//! with `--without NEED` those whose CPU build does not need it (CI's build without libtorch).

use anyhow::Result;

use crate::flags;
use crate::workspace::{self, Need};

/// Prints the list.
pub fn run(flags: flags::Frameworks) -> Result<bool> {
    let without = flags
        .without
        .as_deref()
        .map(|n| Need::named("--without", n))
        .transpose()?;
    let workspace = workspace::workspace()?;
    for name in &workspace.frameworks {
        if let Some(need) = without {
            if workspace
                .needs_of_feature("--without", name)?
                .contains(&need)
            {
                continue;
            }
        }
        println!("{name}");
    }
    Ok(true)
}
