//! Every crate of the workspace keeps its modules in one direction: no module reaches, through
//! `crate::` paths, a module that reaches it back. And ARCHITECTURE.md's code map names exactly the
//! crates there are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The source folder of every package of the workspace, by its folder (`crates/common`, `xtask`,
/// `.` for the root package).
fn crates() -> BTreeMap<String, PathBuf> {
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut out = BTreeMap::new();
    out.insert(".".to_string(), root().join("src"));
    for m in manifest["workspace"]["members"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        out.insert(m.to_string(), root().join(m).join("src"));
    }
    out
}

/// Each top-level module of the crate in `src` (a file `NAME.rs` or a folder `NAME/`) with the
/// modules of the crate it names as `crate::NAME`, wherever in it.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main"].contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect();
            inside.sort();
            files.entry(name).or_default().extend(inside);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.entry(name).or_default().push(path);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .into_iter()
        .map(|(name, paths)| {
            let mut used = BTreeSet::new();
            for path in paths {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("crate::") {
                    let m: String = text[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    // Items of the crate's root (lib.rs) are not modules.
                    if m != name && modules.contains(&m) {
                        used.insert(m);
                    }
                }
            }
            (name, used)
        })
        .collect()
}

/// A path from `from` back to itself, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            let mut p = path.clone();
            p.push(next.clone());
            if next == from {
                return Some(p);
            }
            if seen.insert(next.clone()) {
                stack.push(p);
            }
        }
    }
    None
}

#[test]
fn no_module_of_any_crate_imports_one_that_imports_it() {
    let crates = crates();
    assert!(crates.contains_key("crates/common") && crates.contains_key("xtask"));
    let mut checked = 0;
    for (krate, src) in &crates {
        let graph = graph(src);
        for module in graph.keys() {
            if let Some(path) = cycle(&graph, module) {
                panic!(
                    "{krate}: {module} imports itself through {}",
                    path.join(" -> ")
                );
            }
        }
        checked += graph.len();
    }
    assert!(checked > 30, "only {checked} modules found");
    // The graph of a crate that has been split: results' folder and cost once imported each other.
    let results = graph(&crates["crates/results"]);
    assert!(results["cost"].contains("folder"), "{results:?}");
    assert!(!results["folder"].contains("cost"), "{results:?}");
}

/// The check finds a circle where there is one.
#[test]
fn a_circle_is_found() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    g.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&g, "a").unwrap().join(" -> "), "a -> b -> c -> a");
    assert!(cycle(&g, "d").is_none());
}

/// ARCHITECTURE.md's code map has a heading for every crate under `crates/` (and xtask), and names
/// no crate that is not there.
#[test]
fn the_code_map_names_every_crate() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut named = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("### ")) {
        for (i, _) in line.match_indices('`') {
            let rest = &line[i + 1..];
            if let Some(end) = rest.find('`') {
                let name = &rest[..end];
                if name.starts_with("crates/") || name == "xtask" {
                    named.insert(name.to_string());
                }
            }
        }
    }
    let members: BTreeSet<String> = crates().into_keys().filter(|c| c != ".").collect();
    assert_eq!(
        named, members,
        "ARCHITECTURE.md's code map against the workspace's members"
    );
}
