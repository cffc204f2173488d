//! The one list of frameworks: the root `Cargo.toml`'s framework features (those that turn on a
//! `*-impl` crate, which `cargo xtask frameworks` prints and xtask, CI and the scripts read) are
//! exactly the features of the registry's [`lenet_compare::FEATURES`], and the guard against a
//! build without any framework names each of them. Runs in every build, whichever frameworks it has.

use std::collections::BTreeSet;

fn manifest() -> toml::Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    std::fs::read_to_string(path)
        .expect("the root Cargo.toml")
        .parse()
        .expect("Cargo.toml is TOML")
}

/// The features that turn on an optional `*-impl` dependency.
fn framework_features(manifest: &toml::Table) -> BTreeSet<String> {
    manifest["features"]
        .as_table()
        .expect("a [features] table")
        .iter()
        .filter(|(_, on)| {
            on.as_array().is_some_and(|on| {
                on.iter().any(|v| {
                    v.as_str()
                        .and_then(|v| v.strip_prefix("dep:"))
                        .is_some_and(|d| d.ends_with("-impl"))
                })
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[test]
fn every_framework_feature_has_its_registry_entry_and_back() {
    let manifest = manifest();
    let cargo = framework_features(&manifest);
    let registry: BTreeSet<String> = lenet_compare::FEATURES
        .iter()
        .map(|(_, feature)| feature.to_string())
        .collect();
    assert_eq!(
        cargo, registry,
        "the root Cargo.toml's framework features against lenet_compare::FEATURES"
    );
    // Every framework is built by default, and its crate is a member of the workspace.
    let default: BTreeSet<String> = manifest["features"]["default"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(
        cargo.is_subset(&default),
        "{cargo:?} not all in default {default:?}"
    );
    let members = manifest["workspace"]["members"].as_array().unwrap();
    for feature in &cargo {
        let on = manifest["features"][feature.as_str()].as_array().unwrap();
        let krate = on
            .iter()
            .filter_map(|v| v.as_str()?.strip_prefix("dep:"))
            .find(|d| d.ends_with("-impl"))
            .unwrap();
        assert!(
            members
                .iter()
                .any(|m| m.as_str() == Some(&format!("crates/{krate}"))),
            "{krate} is not a workspace member"
        );
    }
}

#[test]
fn the_guard_against_no_framework_names_every_feature() {
    let lib = include_str!("../src/lib.rs");
    let guard = lib
        .lines()
        .find(|l| l.starts_with("#[cfg(not(any(feature"))
        .expect("src/lib.rs's guard: #[cfg(not(any(feature = ...)))] compile_error!");
    for feature in framework_features(&manifest()) {
        assert!(
            guard.contains(&format!("feature = \"{feature}\"")),
            "the guard does not name {feature}: {guard}"
        );
    }
}
