//! `cargo xtask build --features F,...`: `lenet` with cargo features beyond the framework ones
//! (`burn-cpu`, burn's compiled CPU backend; `burn-rayon`), given what the build needs that cargo
//! alone would not find: libtorch for tch, and LLVM 23.1 for burn's cubecl compilers (see
//! `llvm.rs`). The binary is copied to `target/lenet-FEATURES`, where the next ordinary build does
//! not replace it, for `compare --lenet` or `--lenet-for burn=...`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::{llvm, setup};

/// The features of the workspace's crates that link LLVM: burn's cubecl compilers (its CPU
/// runtime and its CUDA one).
pub const LLVM_FEATURES: [&str; 2] = ["burn-impl/cpu", "burn-impl/cuda"];

#[derive(clap::Args)]
pub struct Args {
    /// Comma-separated features of the root Cargo.toml, added to the default build's (burn-cpu,
    /// burn-rayon, ...)
    #[arg(long, value_delimiter = ',', value_name = "F,...", required = true)]
    pub features: Vec<String>,
}

/// What a build with `features` (named by the flag `option`) needs: whether it links LLVM. An
/// unknown name, or a CUDA build (which the bundle makes, with its toolkit), is refused.
pub fn needs_llvm(workspace: &setup::Workspace, option: &str, features: &[String]) -> Result<bool> {
    let mut llvm = false;
    for f in features {
        let Some(on) = workspace.expand(f) else {
            let known: Vec<&str> = workspace.features.keys().map(String::as_str).collect();
            bail!(
                "{option}: unknown feature '{f}': expected one of {}",
                known.join(", ")
            );
        };
        if on
            .iter()
            .any(|o| o == "candle-impl/cuda" || o == "burn-impl/cuda")
        {
            bail!(
                "{option} {f}: a CUDA build needs the CUDA toolkit: `cargo xtask setup --cuda` \
                 checks it and `cargo xtask bundle --cuda` builds it"
            );
        }
        llvm |= on.iter().any(|o| LLVM_FEATURES.contains(&o.as_str()));
    }
    Ok(llvm)
}

pub fn run(args: Args) -> Result<PathBuf> {
    let workspace = setup::workspace()?;
    let llvm = needs_llvm(workspace, "--features", &args.features)?;
    // The default build's frameworks (tch among them: libtorch for torch-sys's build script).
    setup::run()?;
    let mut cmd = setup::cargo();
    let features = args.features.join(",");
    cmd.args(["build", "--release", "--workspace", "--features", &features]);
    if llvm {
        let llvm = llvm::setup()?;
        println!("llvm: {}", llvm.prefix.display());
        llvm.apply(&mut cmd);
    }
    eprintln!("building lenet with --features {features} (release)");
    if !setup::status(&mut cmd)? {
        bail!("cargo build --features {features} failed");
    }
    let target = setup::root().join("target");
    let built = target.join("release").join("lenet");
    let out = target.join(format!("lenet-{}", args.features.join("-")));
    std::fs::copy(&built, &out)
        .with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
    println!("{}", out.display());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// burn-cpu needs LLVM (through burn-impl/cpu), burn-rayon does not; CUDA builds and unknown
    /// names are refused with what to do.
    #[test]
    fn features_say_what_the_build_needs() {
        let table = |entries: &[(&str, &[&str])]| {
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        let workspace = setup::Workspace {
            frameworks: vec!["burn".into()],
            crates: vec![("burn".into(), "burn-impl".into())],
            member_defaults: Vec::new(),
            features: table(&[
                ("burn", &["dep:burn-impl"]),
                ("burn-cpu", &["burn", "burn-impl/cpu"]),
                ("burn-rayon", &["burn", "burn-impl/rayon"]),
                ("burn-cuda", &["burn", "burn-impl/cuda"]),
            ]),
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(needs_llvm(&workspace, "--features", &names(&["burn-cpu"])).unwrap());
        assert!(!needs_llvm(&workspace, "--features", &names(&["burn-rayon"])).unwrap());
        let e = needs_llvm(&workspace, "--features", &names(&["burn-cuda"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cargo xtask bundle --cuda"), "{e}");
        let e = needs_llvm(&workspace, "--features", &names(&["burn-gpu"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--features: unknown feature 'burn-gpu'"),
            "{e}"
        );
    }
}
