//! Which `lenet` binary, Python and frameworks a comparison runs: the binary built or given, the
//! catalogue it prints, the frameworks selected from it, and the binaries given for some of them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use common::framework::{FrameworkInfo, Runner};
use reports::Catalogue;

use crate::features::Features;
use crate::python_env::{self, Env};
use crate::{flags, registry};

/// What a comparison runs its runs with.
pub(super) struct Tools {
    pub(super) lenet: PathBuf,
    /// Other binaries for some frameworks.
    pub(super) lenet_for: Vec<(String, PathBuf)>,
    /// Python, when a Python row runs.
    pub(super) python: Option<PathBuf>,
    /// What the binary says it holds.
    pub(super) catalogue: Catalogue,
    /// The frameworks to compare, from the catalogue.
    pub(super) frameworks: Vec<FrameworkInfo>,
}

impl Tools {
    /// The `lenet` binary that runs `framework`.
    pub(super) fn lenet(&self, framework: &str) -> &Path {
        self.lenet_for
            .iter()
            .find(|(f, _)| f == framework)
            .map_or(&self.lenet, |(_, file)| file)
    }
}

/// The binaries, Python and frameworks of the comparison `args` asks for, each built, set up or
/// checked.
pub(super) fn tools(args: &flags::Compare) -> Result<Tools> {
    // The project's set-up, checked once, when a binary or Python is not given.
    let mut env: Option<Env> = None;
    let features = Features::new("--features", args.features.as_deref())?;
    let lenet = match &args.lenet {
        Some(l) => l.clone(),
        None if features.is_default() => registry::build_lenet(env.insert(python_env::setup()?))?,
        None => registry::build_lenet_with(&features)?,
    };
    let catalogue = registry::catalogue(&lenet)?;
    let frameworks = selected(args, &catalogue, features.is_default())?;
    let needs_python = frameworks.iter().any(|f| f.runner == Runner::Python);
    let python = match (&args.python, needs_python) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(match env {
            Some(env) => env.python,
            None => python_env::setup()?.python,
        }),
        (None, false) => None,
    };
    for (framework, _) in &args.lenet_for {
        if catalogue
            .get(framework)
            .is_none_or(|f| f.runner != Runner::Lenet)
        {
            bail!(
                "--lenet-for: unknown framework '{framework}': the binary runs {}",
                lenet_names(&catalogue)
            );
        }
    }
    Ok(Tools {
        lenet,
        lenet_for: args.lenet_for.clone(),
        python,
        catalogue,
        frameworks,
    })
}

/// The frameworks the binary runs itself, as a list in words.
pub(super) fn lenet_names(catalogue: &Catalogue) -> String {
    catalogue
        .frameworks
        .iter()
        .filter(|f| f.runner == Runner::Lenet)
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The frameworks to compare: those named, or those the catalogue compares by default (of a build
/// with some frameworks alone, its own: the Python rows only when named).
pub(super) fn selected(
    args: &flags::Compare,
    catalogue: &Catalogue,
    every_framework: bool,
) -> Result<Vec<FrameworkInfo>> {
    match &args.frameworks {
        None => Ok(catalogue
            .frameworks
            .iter()
            .filter(|f| f.compared_by_default && (every_framework || f.runner == Runner::Lenet))
            .cloned()
            .collect()),
        Some(names) => {
            let mut out: Vec<FrameworkInfo> = Vec::new();
            for name in names {
                // `rust`: every Rust framework of the build that is compared by default.
                let found: Vec<FrameworkInfo> = if name == RUST_ROWS {
                    catalogue
                        .frameworks
                        .iter()
                        .filter(|f| f.runner == Runner::Lenet && f.compared_by_default)
                        .cloned()
                        .collect()
                } else {
                    vec![one(catalogue, name)?]
                };
                for f in found {
                    if !out.iter().any(|o| o.name == f.name) {
                        out.push(f);
                    }
                }
            }
            Ok(out)
        }
    }
}

/// The `--frameworks` name that stands for every Rust framework of the build compared by default.
pub const RUST_ROWS: &str = "rust";

/// The framework `name` of the catalogue, or why there is none.
fn one(catalogue: &Catalogue, name: &str) -> Result<FrameworkInfo> {
    if let Some(feature) = catalogue.feature_of(name) {
        bail!(
            "{name} is not in this lenet build: it needs the cargo feature `{feature}` \
             (add it to --features, or leave --features out to build every framework)"
        );
    }
    catalogue.get(name).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "unknown framework '{name}': expected one of {} (or {RUST_ROWS}: every Rust framework)",
            catalogue.names().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::test_args::args;

    fn info(name: &str, runner: Runner) -> FrameworkInfo {
        FrameworkInfo {
            name: name.into(),
            runner,
            script: None,
            baseline: false,
            compared_by_default: true,
            cuda_available: false,
            cuda_build: None,
            colour: [1, 2, 3],
            defaults: common::framework::FrameworkDefaults::row([name; 8]),
            model_source: None,
            step_tolerance: None,
            parity_reference: false,
        }
    }

    /// A build of burn alone compares burn by default (the Python rows only when named), and a
    /// framework it left out is named with its feature, not as unknown.
    #[test]
    fn a_build_with_some_frameworks_compares_its_own() {
        let catalogue = Catalogue::new(vec![
            info("pytorch", Runner::Python),
            info("burn", Runner::Lenet),
        ])
        .with_not_built(vec![reports::catalogue::NotBuilt {
            name: "tch".into(),
            feature: "tch".into(),
        }]);
        let names = |list: Vec<FrameworkInfo>| list.into_iter().map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(
            names(selected(&args(&[]), &catalogue, false).unwrap()),
            ["burn"]
        );
        assert_eq!(
            names(selected(&args(&[]), &catalogue, true).unwrap()),
            ["pytorch", "burn"]
        );
        assert_eq!(
            names(selected(&args(&["--frameworks", "pytorch,burn"]), &catalogue, false).unwrap()),
            ["pytorch", "burn"]
        );
        let e = selected(&args(&["--frameworks", "tch"]), &catalogue, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tch is not in this lenet build: it needs the cargo feature `tch`"),
            "{e}"
        );
        let e = selected(&args(&["--frameworks", "dfdx"]), &catalogue, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown framework 'dfdx': expected one of pytorch, burn (or rust: every Rust framework)"
        );
        // `rust`: the build's Rust frameworks, each once, beside a name given too.
        assert_eq!(
            names(
                selected(
                    &args(&["--frameworks", "pytorch,rust,burn"]),
                    &catalogue,
                    false
                )
                .unwrap()
            ),
            ["pytorch", "burn"]
        );
    }
}
