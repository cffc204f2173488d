//! What the workspace's manifests say, read once through `cargo metadata`: the root package's
//! framework features and the crate each turns on, every root feature and what it turns on, the
//! other members' default features, and what building each member needs beyond cargo ([`Need`]).
//!
//! The needs are data in each crate's own manifest, not in the `lenet` binary's registry, because
//! they must be known before `lenet` can be built (libtorch is installed before tch's crate links
//! it):
//!
//! ```toml
//! [package.metadata.lenet]
//! needs = ["libtorch"]              # what building the crate needs, whatever its features
//! [package.metadata.lenet.feature-needs]
//! cuda = ["cuda-toolkit", "llvm"]   # what a feature of the crate adds
//! ```

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::process;

/// The root package, whose features choose the frameworks.
const ROOT_PACKAGE: &str = "lenet-compare";

/// Something a build needs that cargo does not fetch, which xtask sets up before it builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// libtorch, which a build script links (`python_env.rs` installs it).
    Libtorch,
    /// LLVM 23.1, linked in statically (`llvm.rs`).
    Llvm,
    /// The CUDA toolkit (`cuda.rs`): a CUDA build, which `setup --cuda` checks and `bundle --cuda`
    /// makes.
    CudaToolkit,
}

impl Need {
    /// Every need, by its name in the manifests.
    const NAMES: [(&'static str, Need); 3] = [
        ("libtorch", Need::Libtorch),
        ("llvm", Need::Llvm),
        ("cuda-toolkit", Need::CudaToolkit),
    ];

    /// The need of that name, or an error that `option` named none.
    pub fn named(option: &str, name: &str) -> Result<Need> {
        Self::parse(name).with_context(|| {
            let known: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "{option}: unknown need '{name}': expected one of {}",
                known.join(", ")
            )
        })
    }

    fn parse(name: &str) -> Option<Need> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, need)| *need)
    }
}

/// What building one member crate needs beyond cargo, from its `[package.metadata.lenet]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CrateNeeds {
    /// What it needs whatever its features (`needs`).
    pub always: BTreeSet<Need>,
    /// What each of its features adds (`feature-needs`).
    pub features: BTreeMap<String, BTreeSet<Need>>,
}

/// What xtask reads from the workspace's manifests (through `cargo metadata`, once).
#[derive(Clone, Debug, PartialEq)]
pub struct Workspace {
    /// The root package's framework features ([`framework_features`]).
    pub frameworks: Vec<String>,
    /// Each framework feature's crate, the `*-impl` dependency it turns on.
    pub crates: Vec<(String, String)>,
    /// The default features of the other workspace members, as `member/feature`: a build that
    /// turns the root's defaults off turns theirs off too (`--no-default-features` applies to every
    /// package selected), and these turn them back on.
    pub member_defaults: Vec<String>,
    /// Every feature of the root package and what it turns on, as its manifest says.
    pub features: BTreeMap<String, Vec<String>>,
    /// What building each member needs beyond cargo, by package name; a member whose manifest
    /// says nothing needs nothing.
    pub needs: BTreeMap<String, CrateNeeds>,
}

impl Workspace {
    /// Everything `feature` of the root package turns on, itself and transitively (a name that is
    /// not one of its features: `None`).
    pub fn expand(&self, feature: &str) -> Option<Vec<String>> {
        self.features.get(feature)?;
        let mut seen = vec![feature.to_string()];
        let mut i = 0;
        while i < seen.len() {
            for on in self.features.get(&seen[i]).into_iter().flatten() {
                if !seen.contains(on) {
                    seen.push(on.clone());
                }
            }
            i += 1;
        }
        Some(seen)
    }

    /// The root's default features that are not frameworks' (the serving row `ort`'s, which
    /// loads nothing at start), in the manifest's order.
    pub fn default_extras(&self) -> Vec<String> {
        self.features
            .get("default")
            .into_iter()
            .flatten()
            .filter(|f| !self.frameworks.contains(f))
            .cloned()
            .collect()
    }

    /// [`Workspace::expand`], or an error that `option` named a feature the root does not have.
    pub fn expand_named(&self, option: &str, feature: &str) -> Result<Vec<String>> {
        let Some(on) = self.expand(feature) else {
            let known: Vec<&str> = self.features.keys().map(String::as_str).collect();
            bail!(
                "{option}: unknown feature '{feature}': expected one of {}",
                known.join(", ")
            );
        };
        Ok(on)
    }

    /// What one entry of a feature list needs: `dep:CRATE` the crate's needs, `CRATE/FEATURE` the
    /// crate's and its feature's, `CRATE?/FEATURE` (the crate only if something else turns it on)
    /// the feature's. A plain feature name needs nothing by itself: [`Workspace::expand`] lists
    /// what it turns on.
    pub fn needs_of_entry(&self, entry: &str) -> BTreeSet<Need> {
        let (krate, feature) = match entry.strip_prefix("dep:") {
            Some(krate) => (krate, None),
            None => match entry.split_once('/') {
                Some((krate, feature)) => (krate, Some(feature)),
                None => return BTreeSet::new(),
            },
        };
        let (krate, weak) = match krate.strip_suffix('?') {
            Some(krate) => (krate, true),
            None => (krate, false),
        };
        let Some(needs) = self.needs.get(krate) else {
            return BTreeSet::new();
        };
        let mut out = if weak {
            BTreeSet::new()
        } else {
            needs.always.clone()
        };
        let added = feature.and_then(|f| needs.features.get(f));
        out.extend(added.into_iter().flatten().copied());
        out
    }

    /// What the entries of a feature list need together ([`Workspace::needs_of_entry`]).
    pub fn needs_of_entries(&self, entries: &[String]) -> BTreeSet<Need> {
        entries
            .iter()
            .flat_map(|e| self.needs_of_entry(e))
            .collect()
    }

    /// What turning on the root's `feature` (named by the flag `option`) needs, with everything it
    /// turns on; an unknown name is an error.
    pub fn needs_of_feature(&self, option: &str, feature: &str) -> Result<BTreeSet<Need>> {
        let on = self.expand_named(option, feature)?;
        Ok(on.iter().flat_map(|e| self.needs_of_entry(e)).collect())
    }

    /// The crate a framework feature turns on.
    pub fn crate_of(&self, framework: &str) -> Option<&str> {
        self.crates
            .iter()
            .find(|(f, _)| f == framework)
            .map(|(_, krate)| krate.as_str())
    }
}

/// The root package's framework features, in the order of its `default` list: the features that
/// turn on a framework crate (an optional dependency named `*-impl`, `dep:burn-impl` say). The root
/// `Cargo.toml` is the one list of frameworks; xtask, CI (`cargo xtask frameworks`) and the scripts
/// read it from here, and `tests/registry.rs` holds it to the registry of `lenet`.
pub fn framework_features() -> Result<&'static [String]> {
    Ok(&workspace()?.frameworks)
}

/// The workspace's manifests, read once.
pub fn workspace() -> Result<&'static Workspace> {
    static WORKSPACE: std::sync::OnceLock<Workspace> = std::sync::OnceLock::new();
    if let Some(w) = WORKSPACE.get() {
        return Ok(w);
    }
    let out = process::cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let metadata: Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let workspace = workspace_of(&metadata)?;
    Ok(WORKSPACE.get_or_init(|| workspace))
}

/// [`Workspace`] from `cargo metadata --no-deps`'s JSON (its packages are the workspace's members).
pub fn workspace_of(metadata: &Value) -> Result<Workspace> {
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata lists no packages")?;
    let root = packages
        .iter()
        .find(|p| p["name"] == ROOT_PACKAGE)
        .with_context(|| format!("cargo metadata lists no {ROOT_PACKAGE} package"))?;
    let frameworks = frameworks_of(&root["features"]);
    if frameworks.is_empty() {
        bail!("the root Cargo.toml has no framework feature (one that turns on a `dep:*-impl`)");
    }
    let crates = frameworks
        .iter()
        .filter_map(|f| {
            Some((
                f.clone(),
                framework_crate(&root["features"][f])?.to_string(),
            ))
        })
        .collect();
    let mut needs = BTreeMap::new();
    for p in packages {
        let crate_needs = needs_of(p)?;
        if crate_needs != CrateNeeds::default() {
            needs.insert(
                p["name"].as_str().unwrap_or_default().to_string(),
                crate_needs,
            );
        }
    }
    Ok(Workspace {
        frameworks,
        crates,
        member_defaults: member_defaults(packages),
        features: features_table(&root["features"]),
        needs,
    })
}

/// The default features of every member but the root, as `member/feature`, sorted.
fn member_defaults(packages: &[Value]) -> Vec<String> {
    let mut member_defaults = Vec::new();
    for p in packages.iter().filter(|p| p["name"] != ROOT_PACKAGE) {
        let (Some(name), Some(default)) = (p["name"].as_str(), p["features"]["default"].as_array())
        else {
            continue;
        };
        member_defaults.extend(
            default
                .iter()
                .filter_map(|f| f.as_str())
                .map(|f| format!("{name}/{f}")),
        );
    }
    member_defaults.sort();
    member_defaults
}

/// A package's features table (cargo metadata's JSON object) as names and what each turns on.
fn features_table(features: &Value) -> BTreeMap<String, Vec<String>> {
    features
        .as_object()
        .map(|table| {
            table
                .iter()
                .map(|(name, on)| {
                    let on = on
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect();
                    (name.clone(), on)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A package's [`CrateNeeds`], from its `[package.metadata.lenet]` table (cargo metadata's
/// `metadata.lenet`); a feature it does not have, or a need xtask does not know, is an error.
fn needs_of(package: &Value) -> Result<CrateNeeds> {
    let name = package["name"].as_str().unwrap_or_default();
    let table = &package["metadata"]["lenet"];
    let mut needs = CrateNeeds {
        always: needs_list(name, "needs", &table["needs"])?,
        features: BTreeMap::new(),
    };
    let by_feature = &table["feature-needs"];
    if by_feature.is_null() {
        return Ok(needs);
    }
    let Some(by_feature) = by_feature.as_object() else {
        bail!(
            "{name}: [package.metadata.lenet.feature-needs] must be a table of feature = [needs]"
        );
    };
    for (feature, list) in by_feature {
        if package["features"].get(feature).is_none() {
            bail!("{name}: [package.metadata.lenet.feature-needs] names '{feature}', which is not one of its features");
        }
        let key = format!("feature-needs.{feature}");
        needs
            .features
            .insert(feature.clone(), needs_list(name, &key, list)?);
    }
    Ok(needs)
}

/// The needs listed under `key` of a package's `[package.metadata.lenet]` (none when absent).
fn needs_list(package: &str, key: &str, list: &Value) -> Result<BTreeSet<Need>> {
    let known: Vec<&str> = Need::NAMES.iter().map(|(n, _)| *n).collect();
    if list.is_null() {
        return Ok(BTreeSet::new());
    }
    let Some(items) = list.as_array() else {
        bail!(
            "{package}: [package.metadata.lenet] {key} must be a list of needs ({})",
            known.join(", ")
        );
    };
    items
        .iter()
        .map(|item| {
            item.as_str().and_then(Need::parse).with_context(|| {
                format!(
                    "{package}: [package.metadata.lenet] {key}: unknown need {item}: expected one \
                     of {}",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// The framework crate a feature turns on (what it lists, as cargo metadata gives it): its optional
/// `*-impl` dependency, if any.
fn framework_crate(on: &Value) -> Option<&str> {
    on.as_array()?
        .iter()
        .filter_map(|v| v.as_str()?.strip_prefix("dep:"))
        .find(|dep| dep.ends_with("-impl"))
}

/// The framework features of a package's `features` table (cargo metadata's JSON object of
/// feature -> what it turns on): those that turn on an optional `*-impl` dependency, in the order
/// of `default`, then by name.
pub fn frameworks_of(features: &Value) -> Vec<String> {
    let Some(table) = features.as_object() else {
        return Vec::new();
    };
    let mut names: Vec<String> = table
        .iter()
        .filter(|(_, on)| framework_crate(on).is_some())
        .map(|(name, _)| name.clone())
        .collect();
    let default: Vec<&str> = table
        .get("default")
        .and_then(|d| d.as_array())
        .map(|d| d.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    names.sort_by_key(|n| {
        (
            default.iter().position(|d| d == n).unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workspace as cargo metadata lists it: the root's frameworks and their crates, the other
    /// members' default features, and what each member (and a feature of it) needs.
    #[test]
    fn the_workspace_comes_from_cargo_metadata() {
        let metadata = serde_json::json!({ "packages": [
            { "name": "burn-impl", "features": { "default": ["simd"], "simd": [], "cuda": [], "cpu": [] },
              "metadata": { "lenet": { "feature-needs": {
                  "cuda": ["cuda-toolkit", "llvm"], "cpu": ["llvm"] } } } },
            { "name": "lenet-compare", "features": {
                "default": ["tch", "burn"],
                "tch": ["dep:tch-impl", "dep:torch-sys"],
                "burn": ["dep:burn-impl"],
                "burn-cuda": ["burn", "burn-impl/cuda"],
            }, "metadata": null },
            { "name": "tch-impl", "features": {}, "metadata": { "lenet": { "needs": ["libtorch"] } } },
            { "name": "common", "features": { "cli": ["dep:clap"] } },
        ] });
        let w = workspace_of(&metadata).unwrap();
        assert_eq!(w.frameworks, ["tch", "burn"]);
        assert_eq!(
            w.crates,
            [
                ("tch".into(), "tch-impl".into()),
                ("burn".into(), "burn-impl".into())
            ]
        );
        assert_eq!(w.member_defaults, ["burn-impl/simd"]);
        // Only the members that need something are listed.
        assert_eq!(
            w.needs.keys().collect::<Vec<_>>(),
            ["burn-impl", "tch-impl"]
        );
        assert_eq!(w.needs["tch-impl"].always, BTreeSet::from([Need::Libtorch]));
        assert!(w.needs["burn-impl"].always.is_empty());
        assert_eq!(
            w.needs["burn-impl"].features["cuda"],
            BTreeSet::from([Need::Llvm, Need::CudaToolkit])
        );
        // A root feature needs what the crates and features it turns on need.
        let needs = |f: &str| w.needs_of_feature("--with", f).unwrap();
        assert_eq!(needs("tch"), BTreeSet::from([Need::Libtorch]));
        assert_eq!(needs("burn"), BTreeSet::new());
        assert_eq!(
            needs("burn-cuda"),
            BTreeSet::from([Need::Llvm, Need::CudaToolkit])
        );
        let e = workspace_of(&serde_json::json!({ "packages": [] })).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cargo metadata lists no lenet-compare package"
        );
    }

    /// A need xtask does not know, or a feature the crate does not have, is refused with the
    /// crate's name, so that a typing error in a manifest does not go unnoticed.
    #[test]
    fn a_manifests_needs_are_checked() {
        let with = |lenet: Value| {
            let metadata = serde_json::json!({ "packages": [
                { "name": "lenet-compare", "features": { "tch": ["dep:tch-impl"] } },
                { "name": "tch-impl", "features": { "cuda": [] }, "metadata": { "lenet": lenet } },
            ] });
            workspace_of(&metadata).map_err(|e| e.to_string())
        };
        assert!(with(serde_json::json!({ "needs": ["libtorch"] })).is_ok());
        let e = with(serde_json::json!({ "needs": ["libtorch", "cudnn"] })).unwrap_err();
        assert_eq!(
            e,
            "tch-impl: [package.metadata.lenet] needs: unknown need \"cudnn\": expected one of \
             libtorch, llvm, cuda-toolkit"
        );
        let e = with(serde_json::json!({ "needs": "libtorch" })).unwrap_err();
        assert!(e.contains("needs must be a list of needs"), "{e}");
        let e =
            with(serde_json::json!({ "feature-needs": { "gpu": ["cuda-toolkit"] } })).unwrap_err();
        assert!(
            e.contains("names 'gpu', which is not one of its features"),
            "{e}"
        );
    }

    /// The framework features are those that turn on a `*-impl` crate, in the default list's
    /// order (then by name), whatever else the table holds.
    #[test]
    fn framework_features_come_from_the_features_table() {
        let table = serde_json::json!({
            "default": ["tch", "candle", "burn"],
            "burn": ["dep:burn-impl"],
            "burn-cuda": ["burn", "burn-impl/cuda"],
            "candle": ["dep:candle-impl"],
            "cuda": ["candle", "candle-impl/cuda"],
            "dfdx": ["dep:dfdx-impl"],
            "tch": ["dep:tch-impl", "dep:torch-sys"],
            "quiet": ["dep:indicatif"],
        });
        assert_eq!(frameworks_of(&table), ["tch", "candle", "burn", "dfdx"]);
        assert!(frameworks_of(&serde_json::json!([])).is_empty());
    }

    /// This workspace's own list: the three frameworks of the root Cargo.toml; and its manifests'
    /// needs: tch's crate links libtorch, burn's compiled CPU backend needs LLVM, and the CUDA
    /// features (candle's, and burn's, which needs LLVM too) make CUDA builds.
    #[test]
    fn this_workspace_has_its_frameworks() {
        assert_eq!(framework_features().unwrap(), ["tch", "candle", "burn"]);
        let w = workspace().unwrap();
        let needs = |f: &str| w.needs_of_feature("--with", f).unwrap();
        assert_eq!(needs("tch"), BTreeSet::from([Need::Libtorch]));
        assert_eq!(needs("candle"), BTreeSet::new());
        assert_eq!(needs("burn"), BTreeSet::new());
        assert_eq!(needs("burn-cpu"), BTreeSet::from([Need::Llvm]));
        assert_eq!(needs("burn-rayon"), BTreeSet::new());
        assert_eq!(
            needs("burn-cuda"),
            BTreeSet::from([Need::Llvm, Need::CudaToolkit])
        );
        for candle_cuda in ["cuda", "cudnn"] {
            assert_eq!(needs(candle_cuda), BTreeSet::from([Need::CudaToolkit]));
        }
    }
}
