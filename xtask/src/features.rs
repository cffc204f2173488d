//! Which frameworks and root features a build holds ([`Features`]: all of them, or those of
//! `--features`/`--frameworks`, and `--with`'s extra ones), the cargo arguments that make that
//! build, and what it needs beyond cargo, from the manifests' needs (`workspace.rs`): libtorch, LLVM,
//! or the CUDA toolkit of a CUDA build.

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use crate::workspace::{self, Need, Workspace};

/// Which frameworks a `lenet` build holds: all of them (the default), or those named with
/// `--features` (framework features of the root `Cargo.toml`), and the root's other features it
/// turns on (`burn-cpu`, ...; see [`Features::with_extra`]). What it needs (tch: libtorch) comes
/// from the manifests ([`Features::needs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    chosen: Option<Vec<String>>,
    /// Root features beyond the frameworks', in the order given.
    extra: Vec<String>,
    /// The workspace: every framework feature, in the root's order, their crates and needs.
    workspace: Workspace,
}

impl Features {
    /// `--features` (or the list of the `option` named) as given: `None` for the default build.
    pub fn new(option: &str, named: Option<&[String]>) -> Result<Self> {
        Self::among(workspace::workspace()?, option, named)
    }

    /// As [`Features::new`], in the workspace given.
    pub fn among(workspace: &Workspace, option: &str, named: Option<&[String]>) -> Result<Self> {
        let workspace = workspace.clone();
        let all = &workspace.frameworks;
        let Some(named) = named else {
            return Ok(Self {
                chosen: None,
                extra: Vec::new(),
                workspace,
            });
        };
        if named.is_empty() {
            bail!("{option} needs at least one of {}", all.join(", "));
        }
        let mut features = Vec::new();
        for f in named {
            if !all.contains(f) {
                bail!(
                    "{option}: unknown framework feature '{f}': expected {}",
                    all.join(", ")
                );
            }
            if !features.contains(f) {
                features.push(f.clone());
            }
        }
        // In the root's order, so that `burn,tch` and `tch,burn` are one build.
        features.sort_by_key(|f| all.iter().position(|k| k == f));
        Ok(Self {
            chosen: Some(features),
            extra: Vec::new(),
            workspace,
        })
    }

    /// Also turns on `extra`, features of the root package beyond the frameworks' (`option`: the
    /// flag that named them). A name the root does not have is refused, and so is one that turns
    /// on a framework this build leaves out (`burn-cpu` turns on burn).
    pub fn with_extra(mut self, option: &str, extra: &[String]) -> Result<Self> {
        let names = self.names();
        for f in extra {
            let on = self.workspace.expand_named(option, f)?;
            if let Some(left_out) = on
                .iter()
                .find(|o| self.workspace.frameworks.contains(o) && !names.contains(o))
            {
                bail!("{option} {f} turns on {left_out}, which --features leaves out");
            }
            if !self.extra.contains(f) {
                self.extra.push(f.clone());
            }
        }
        Ok(self)
    }

    /// Whether this is the build with every framework (no `--features`).
    pub fn is_default(&self) -> bool {
        self.chosen.is_none()
    }

    /// The frameworks' features, all of them for the default build.
    pub fn names(&self) -> Vec<String> {
        self.chosen
            .clone()
            .unwrap_or_else(|| self.workspace.frameworks.clone())
    }

    /// Whether this build needs `need`: a crate it compiles (every member of the workspace but
    /// those it leaves out, see [`Features::cargo_args`]) or a feature it turns on (its
    /// frameworks', the extra ones, the other members' defaults) needs it.
    pub fn needs(&self, need: Need) -> bool {
        self.all_needs().contains(&need)
    }

    /// Everything this build needs (see [`Features::needs`]).
    fn all_needs(&self) -> BTreeSet<Need> {
        let left_out = self.left_out();
        let built = |krate: &str| !left_out.contains(&krate);
        let mut needs: BTreeSet<Need> = self
            .workspace
            .needs
            .iter()
            .filter(|(krate, _)| built(krate))
            .flat_map(|(_, n)| n.always.iter().copied())
            .collect();
        for feature in self.names().iter().chain(&self.extra) {
            for entry in self.workspace.expand(feature).into_iter().flatten() {
                needs.extend(self.workspace.needs_of_entry(&entry));
            }
        }
        for default in &self.workspace.member_defaults {
            if default.split('/').next().is_some_and(built) {
                needs.extend(self.workspace.needs_of_entry(default));
            }
        }
        needs
    }

    /// The crates of the frameworks this build leaves out whose build needs something beyond cargo
    /// whatever its features (tch's, which links libtorch): left out of the workspace's build, so
    /// that it needs none of that. The other frameworks' crates are built as the default build
    /// builds them, so that the dependencies' features resolve the same.
    fn left_out(&self) -> Vec<&str> {
        let Some(chosen) = &self.chosen else {
            return Vec::new();
        };
        self.workspace
            .frameworks
            .iter()
            .filter(|f| !chosen.contains(f))
            .filter_map(|f| self.workspace.crate_of(f))
            .filter(|krate| {
                let needs = self.workspace.needs.get(*krate);
                needs.is_some_and(|n| !n.always.is_empty())
            })
            .collect()
    }

    /// cargo's package selection and features: the whole workspace, with the root's framework
    /// features as chosen. Every build selects the whole workspace, so that the dependencies'
    /// features resolve as in the default build and only the root package is compiled again for a
    /// set of frameworks (a build of the root alone resolves them differently and compiles most of
    /// the dependency graph again); the other members keep their default features. A build without
    /// tch leaves tch's crate out, so that it needs no libtorch (see `left_out`). The
    /// extra features join the chosen ones.
    pub fn cargo_args(&self) -> Vec<String> {
        let mut args = vec!["--workspace".to_string()];
        let Some(chosen) = &self.chosen else {
            if !self.extra.is_empty() {
                args.extend(["--features".to_string(), self.extra.join(",")]);
            }
            return args;
        };
        for krate in self.left_out() {
            args.extend(["--exclude".to_string(), krate.to_string()]);
        }
        let features: Vec<String> = chosen
            .iter()
            .chain(&self.extra)
            .map(|f| format!("lenet-compare/{f}"))
            .chain(self.workspace.member_defaults.iter().cloned())
            .collect();
        args.extend([
            "--no-default-features".to_string(),
            "--features".to_string(),
            features.join(","),
        ]);
        args
    }
}

/// Refuses, among the root features that the flag `option` names for a build beside the default
/// one's (`test --with`, `build --features`), an unknown name and one that makes a CUDA build: the
/// CUDA toolkit is set up by `setup --cuda` and the bundle, not by these.
pub fn refuse_cuda(workspace: &Workspace, option: &str, features: &[String]) -> Result<()> {
    for f in features {
        if workspace
            .needs_of_feature(option, f)?
            .contains(&Need::CudaToolkit)
        {
            bail!(
                "{option} {f}: a CUDA build needs the CUDA toolkit: `cargo xtask setup --cuda` \
                 checks it and `cargo xtask bundle --cuda` builds it"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::CrateNeeds;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// What the manifests say the framework crates need: tch's links libtorch, burn's `cpu`
    /// feature needs LLVM, and its `cuda` feature the CUDA toolkit and LLVM.
    fn needs() -> std::collections::BTreeMap<String, CrateNeeds> {
        let tch = CrateNeeds {
            always: BTreeSet::from([Need::Libtorch]),
            features: Default::default(),
        };
        let burn = CrateNeeds {
            always: BTreeSet::new(),
            features: [
                ("cpu".to_string(), BTreeSet::from([Need::Llvm])),
                (
                    "cuda".to_string(),
                    BTreeSet::from([Need::Llvm, Need::CudaToolkit]),
                ),
            ]
            .into(),
        };
        [
            ("tch-impl".to_string(), tch),
            ("burn-impl".to_string(), burn),
        ]
        .into()
    }

    /// `--features`: the default build selects the workspace and needs libtorch; a list is
    /// checked, deduplicated and put in one order, turns the other members' defaults back on,
    /// leaves tch's crate out when tch is not in it, and only a list with tch needs libtorch.
    #[test]
    fn features_make_one_build_per_set() {
        let all = list(&["tch", "candle", "burn"]);
        let workspace = Workspace {
            frameworks: all.clone(),
            crates: ["tch", "candle", "burn"]
                .map(|f| (f.to_string(), format!("{f}-impl")))
                .to_vec(),
            member_defaults: list(&["burn-impl/simd"]),
            features: Default::default(),
            needs: needs(),
        };
        let new =
            |option: &str, named: Option<&[String]>| Features::among(&workspace, option, named);
        let default = new("--features", None).unwrap();
        assert!(default.is_default() && default.needs(Need::Libtorch));
        assert_eq!(default.cargo_args(), ["--workspace"]);
        assert_eq!(default.names(), all);
        let burn = new("--features", Some(&list(&["burn", "candle", "burn"]))).unwrap();
        assert!(!burn.is_default() && !burn.needs(Need::Libtorch));
        assert_eq!(
            burn.cargo_args(),
            list(&[
                "--workspace",
                "--exclude",
                "tch-impl",
                "--no-default-features",
                "--features",
                "lenet-compare/candle,lenet-compare/burn,burn-impl/simd"
            ])
        );
        assert_eq!(
            new("--features", Some(&list(&["candle", "burn"]))).unwrap(),
            burn
        );
        let tch = new("--features", Some(&list(&["tch"]))).unwrap();
        assert!(tch.needs(Need::Libtorch));
        assert_eq!(
            tch.cargo_args(),
            list(&[
                "--workspace",
                "--no-default-features",
                "--features",
                "lenet-compare/tch,burn-impl/simd"
            ])
        );
        let e = new("--frameworks", Some(&list(&["dfdx"])))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--frameworks: unknown framework feature 'dfdx': expected tch, candle, burn"
        );
        assert!(new("--features", Some(&[])).is_err());
    }

    /// A workspace of two frameworks, tch and burn, with the root `features` given.
    fn two_frameworks(features: &[(&str, &[&str])]) -> Workspace {
        Workspace {
            frameworks: list(&["tch", "burn"]),
            crates: ["tch", "burn"]
                .map(|f| (f.to_string(), format!("{f}-impl")))
                .to_vec(),
            member_defaults: Vec::new(),
            features: features
                .iter()
                .map(|(k, v)| (k.to_string(), list(v)))
                .collect(),
            needs: needs(),
        }
    }

    /// `--with`: root features beyond the frameworks' join the default build's features or the
    /// chosen frameworks' (once each); an unknown name, or one that turns on a framework the build
    /// leaves out, is refused.
    #[test]
    fn extra_features_join_the_build() {
        let workspace = two_frameworks(&[
            ("tch", &["dep:tch-impl"]),
            ("burn", &["dep:burn-impl"]),
            ("burn-cpu", &["burn", "burn-impl/cpu"]),
        ]);
        let new = |named: Option<&[String]>| Features::among(&workspace, "--features", named);
        let cpu = list(&["burn-cpu", "burn-cpu"]);
        let default = new(None).unwrap().with_extra("--with", &cpu).unwrap();
        assert_eq!(
            default.cargo_args(),
            list(&["--workspace", "--features", "burn-cpu"])
        );
        let burn = new(Some(&list(&["burn"])))
            .unwrap()
            .with_extra("--with", &cpu)
            .unwrap();
        assert_eq!(
            burn.cargo_args(),
            list(&[
                "--workspace",
                "--exclude",
                "tch-impl",
                "--no-default-features",
                "--features",
                "lenet-compare/burn,lenet-compare/burn-cpu"
            ])
        );
        let e = new(Some(&list(&["tch"])))
            .unwrap()
            .with_extra("--with", &cpu)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--with burn-cpu turns on burn, which --features leaves out"
        );
        let e = new(None)
            .unwrap()
            .with_extra("--with", &list(&["burn-gpu"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--with: unknown feature 'burn-gpu': expected one of burn, burn-cpu, tch"
        );
    }

    /// burn-cpu needs LLVM (through burn-impl/cpu), burn-rayon does not; CUDA builds and unknown
    /// names are refused with what to do.
    #[test]
    fn features_say_what_the_build_needs() {
        let workspace = two_frameworks(&[
            ("tch", &["dep:tch-impl"]),
            ("burn", &["dep:burn-impl"]),
            ("burn-cpu", &["burn", "burn-impl/cpu"]),
            ("burn-rayon", &["burn", "burn-impl/rayon"]),
            ("burn-cuda", &["burn", "burn-impl/cuda"]),
        ]);
        let with = |extra: &[&str]| {
            Features::among(&workspace, "--features", None)
                .unwrap()
                .with_extra("--features", &list(extra))
                .unwrap()
        };
        assert!(with(&["burn-cpu"]).needs(Need::Llvm));
        assert!(!with(&["burn-rayon"]).needs(Need::Llvm));
        assert!(!with(&[]).needs(Need::Llvm) && with(&[]).needs(Need::Libtorch));
        assert!(refuse_cuda(&workspace, "--features", &list(&["burn-cpu", "burn-rayon"])).is_ok());
        let e = refuse_cuda(&workspace, "--features", &list(&["burn-cuda"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cargo xtask bundle --cuda"), "{e}");
        let e = refuse_cuda(&workspace, "--features", &list(&["burn-gpu"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--features: unknown feature 'burn-gpu'"),
            "{e}"
        );
    }
}
