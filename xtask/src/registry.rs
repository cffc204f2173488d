//! The frameworks as a `lenet` binary knows them: the binary built as the tests build it (with
//! every framework, or with some alone), its registry read back (`lenet frameworks --json`, a
//! [`Catalogue`]), and the CUDA builds that registry asks for (which binaries, with which
//! features, in [`CUDA_TARGET_DIR`]). xtask keeps no framework list of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use common::framework::FrameworkInfo;
use reports::Catalogue;

use crate::features::Features;
use crate::process;
use crate::python_env::{self, Env};
use crate::workspace::{Need, Workspace};

/// Where the CUDA-enabled builds go, apart from the CPU build so that neither rebuilds the other.
pub const CUDA_TARGET_DIR: &str = "target/cuda";

/// Builds the `lenet` binary the way `cargo xtask test` builds it (`cargo test --release
/// --workspace --no-run`: the same features, so the same artifacts), and returns its path; `env`
/// is the libtorch it links. A plain `cargo build -p lenet-compare` resolves the dependencies'
/// features without the test targets' and would build most of the frameworks a second time.
pub fn build_lenet(env: &Env) -> Result<PathBuf> {
    eprintln!("building lenet (release, as the tests build it)");
    let mut cmd = process::cargo();
    cmd.args(["test", "--release", "--workspace", "--no-run", "--quiet"]);
    if !process::status(&mut cmd)? {
        bail!("cargo test --release --workspace --no-run failed");
    }
    Ok(env.root.join("target").join("release").join("lenet"))
}

/// Builds `lenet` with only the frameworks of `features` and returns its path; set-up of libtorch
/// only when the build needs it. As [`build_lenet`] does for the default build, it builds the
/// way `cargo xtask test --features ...` does (`cargo test --release --no-run`, with
/// [`Features::cargo_args`]), so that the two share their artifacts.
pub fn build_lenet_with(features: &Features) -> Result<PathBuf> {
    let mut cmd = process::cargo();
    if features.needs(Need::Libtorch) {
        // LIBTORCH for torch-sys, as the default build has it.
        python_env::setup()?;
    }
    eprintln!(
        "building lenet with {} alone (release)",
        features.names().join(", ")
    );
    cmd.args(["test", "--release", "--no-run", "--quiet"])
        .args(features.cargo_args());
    if !process::status(&mut cmd)? {
        bail!("cargo build of lenet failed");
    }
    Ok(process::root().join("target").join("release").join("lenet"))
}

/// The frameworks a `lenet` binary holds, and the references beside them.
pub fn catalogue(lenet: &Path) -> Result<Catalogue> {
    let output = Command::new(lenet)
        .args(["frameworks", "--json"])
        .output()
        .with_context(|| format!("cannot start {}", lenet.display()))?;
    if !output.status.success() {
        bail!(
            "`{} frameworks --json` {}: {}",
            lenet.display(),
            process::ended(output.status),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Catalogue::from_json(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("`{} frameworks --json`", lenet.display()))
}

/// One CUDA build of `lenet`, made from the registry's `CudaBuild`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaBinary {
    /// `package/feature`s that compile the CUDA code of its frameworks.
    pub features: Vec<String>,
    /// Its compressed binary in the bundle.
    pub binary: String,
    /// Whether building it needs LLVM (see `llvm.rs`), as its crates' manifests say.
    pub llvm: bool,
    /// The frameworks that need this binary rather than the main one (`--lenet-for`).
    pub own: Vec<String>,
}

/// The CUDA binaries the frameworks of `catalogue` need: `lenet`, with the CUDA code of every
/// framework that can share it, then one `lenet-NAME` for each framework that needs its own; what
/// each build needs comes from `workspace`'s manifests.
pub fn cuda_builds(catalogue: &Catalogue, workspace: &Workspace) -> Vec<CudaBinary> {
    let llvm = |features: &[String]| workspace.needs_of_entries(features).contains(&Need::Llvm);
    let mut main = CudaBinary {
        features: Vec::new(),
        binary: "lenet.xz".into(),
        llvm: false,
        own: Vec::new(),
    };
    let mut own = Vec::new();
    for f in &catalogue.frameworks {
        let Some(build) = &f.cuda_build else { continue };
        if build.own_binary {
            own.push(CudaBinary {
                features: build.features.clone(),
                binary: format!("lenet-{}.xz", f.name),
                llvm: llvm(&build.features),
                own: vec![f.name.clone()],
            });
        } else {
            for feature in &build.features {
                if !main.features.contains(feature) {
                    main.features.push(feature.clone());
                }
            }
        }
    }
    main.llvm = llvm(&main.features);
    std::iter::once(main).chain(own).collect()
}

/// Whether `framework` has CUDA code of its own to compile (tch's CUDA is in libtorch, the Python
/// rows have none).
pub fn compiles_cuda(framework: &FrameworkInfo) -> bool {
    framework
        .cuda_build
        .as_ref()
        .is_some_and(|b| !b.features.is_empty())
}

/// The CUDA builds `cargo xtask setup --cuda` checks: those of every framework with CUDA code of
/// its own to compile, or of the frameworks named in `only` (`--check`), each of which must have
/// some, or none for `--check none`.
pub fn checked_builds(
    catalogue: &Catalogue,
    workspace: &Workspace,
    only: Option<&[String]>,
) -> Result<Vec<CudaBinary>> {
    if only.is_some_and(|o| o.len() == 1 && o[0] == "none") {
        return Ok(Vec::new());
    }
    let compiled: Vec<&FrameworkInfo> = catalogue
        .frameworks
        .iter()
        .filter(|f| compiles_cuda(f))
        .collect();
    let names: Vec<&str> = compiled.iter().map(|f| f.name.as_str()).collect();
    if let Some(only) = only {
        if only.is_empty() {
            bail!(
                "--check needs at least one framework ({}), or none",
                names.join(", ")
            );
        }
        if let Some(other) = only.iter().find(|o| !names.contains(&o.as_str())) {
            bail!(
                "--check {other}: the frameworks with CUDA code of their own to check are {} (or none)",
                names.join(", ")
            );
        }
    }
    let chosen = Catalogue::new(
        compiled
            .into_iter()
            .filter(|f| only.is_none_or(|o| o.contains(&f.name)))
            .cloned()
            .collect(),
    );
    // The shared binary's build is empty when none of its frameworks was chosen.
    Ok(cuda_builds(&chosen, workspace)
        .into_iter()
        .filter(|b| !b.features.is_empty())
        .collect())
}

/// A registry as the tests of this module and of the bundle's scripts use it.
#[cfg(test)]
pub mod sample {
    use common::framework::{CudaBuild, CudaCode, FrameworkDefaults, FrameworkInfo, Runner};
    use reports::Catalogue;

    use crate::workspace::Workspace;

    fn info(name: &str, build: Option<CudaBuild>) -> FrameworkInfo {
        FrameworkInfo {
            name: name.into(),
            runner: if build.is_some() {
                Runner::Lenet
            } else {
                Runner::Python
            },
            script: None,
            baseline: false,
            compared_by_default: true,
            cuda_available: false,
            cuda_build: build,
            colour: [0, 0, 0],
            defaults: FrameworkDefaults::row([name; 8]),
            model_source: None,
            step_tolerance: None,
            parity_reference: false,
        }
    }

    /// The manifests' needs as they are: burn's CUDA build needs LLVM, candle's the toolkit alone.
    pub fn workspace() -> Workspace {
        crate::workspace::workspace_of(&serde_json::json!({ "packages": [
            { "name": "lenet-compare", "features": {
                "default": ["candle", "burn"],
                "candle": ["dep:candle-impl"],
                "burn": ["dep:burn-impl"],
            } },
            { "name": "burn-impl", "features": { "cuda": [] },
              "metadata": { "lenet": { "feature-needs": {
                "cuda": ["cuda-toolkit", "llvm"] } } } },
            { "name": "candle-impl", "features": { "cudnn": [] },
              "metadata": { "lenet": { "feature-needs": {
                "cudnn": ["cuda-toolkit"] } } } },
        ] }))
        .expect("a sample workspace")
    }

    /// The registry's CUDA builds as they are: candle's (and its first-max variant's) shared in the
    /// main binary, burn's in one of its own, with LLVM.
    pub fn registry() -> Catalogue {
        let shared = |f: &str| CudaBuild {
            features: vec![f.into()],
            own_binary: false,
        };
        Catalogue::new(vec![
            info("pytorch", None),
            info("tch", Some(CudaCode::LIBRARY.into())),
            info("candle", Some(shared("candle-impl/cudnn"))),
            info("candle-firstmax", Some(shared("candle-impl/cudnn"))),
            info(
                "burn",
                Some(CudaBuild {
                    features: vec!["burn-impl/cuda".into()],
                    own_binary: true,
                }),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `setup --cuda` checks the builds of the frameworks with CUDA code of their own, all of them or
    /// those named (tch's CUDA is in libtorch, the Python rows have none), and refuses other names.
    #[test]
    fn the_cuda_check_builds_what_it_is_asked_to() {
        let catalogue = sample::registry();
        let features = |only: Option<&[String]>| {
            checked_builds(&catalogue, &sample::workspace(), only)
                .unwrap()
                .into_iter()
                .map(|b| b.features.join(","))
                .collect::<Vec<_>>()
        };
        assert_eq!(features(None), ["candle-impl/cudnn", "burn-impl/cuda"]);
        // The shared binary's build is left out when none of its frameworks is asked for.
        assert_eq!(features(Some(&["burn".into()])), ["burn-impl/cuda"]);
        assert_eq!(features(Some(&["candle".into()])), ["candle-impl/cudnn"]);
        for wrong in ["tch", "pytorch", "jax"] {
            let e = checked_builds(&catalogue, &sample::workspace(), Some(&[wrong.into()]))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("--check {wrong}: the frameworks with CUDA code of their own to check are candle, candle-firstmax, burn (or none)")
            );
        }
        assert!(checked_builds(&catalogue, &sample::workspace(), Some(&[])).is_err());
        assert!(features(Some(&["none".into()])).is_empty());
        assert!(checked_builds(
            &catalogue,
            &sample::workspace(),
            Some(&["none".into(), "burn".into()])
        )
        .is_err());
    }

    /// Every framework's CUDA code is in exactly one binary: the shared one, or one of its own;
    /// with LLVM where the manifest of its crate says that its build needs it.
    #[test]
    fn every_framework_is_in_one_binary() {
        let builds = cuda_builds(&sample::registry(), &sample::workspace());
        assert_eq!(builds.len(), 2);
        assert_eq!(builds[0].features, ["candle-impl/cudnn"]);
        assert!(!builds[0].llvm && builds[0].own.is_empty());
        assert_eq!(builds[1].binary, "lenet-burn.xz");
        assert_eq!(builds[1].features, ["burn-impl/cuda"]);
        assert!(builds[1].llvm);
    }
}
