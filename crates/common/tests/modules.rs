//! The crate's modules depend on each other in one direction only: no module reaches, through
//! `crate::` paths, a module that reaches it back.

use std::collections::{BTreeMap, BTreeSet};

/// Each module of `src/` with the modules it names as `crate::NAME`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let used: BTreeSet<String> = text
            .match_indices("crate::")
            .map(|(i, _)| {
                text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .filter(|m| *m != name)
            .collect();
        modules.insert(name, used);
    }
    modules
}

/// A path from `from` back to itself, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            if next == from {
                let mut p = path.clone();
                p.push(next.clone());
                return Some(p);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push(p);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let graph = graph();
    assert!(graph.contains_key("harness") && graph.contains_key("mnist"));
    // Every `crate::` path starts with a module (not a re-export at the root, which would hide the
    // dependency from this check).
    for (module, used) in &graph {
        if let Some(path) = cycle(&graph, module) {
            panic!("{module} imports itself through {}", path.join(" -> "));
        }
        for u in used {
            assert!(
                graph.contains_key(u),
                "{module} names crate::{u}: name the module it comes from"
            );
        }
    }
}

/// The check finds a circle where there is one.
#[test]
fn a_circle_is_found() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&g, "a").unwrap().join(" -> "), "a -> b -> c -> a");
}
