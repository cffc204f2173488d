//! The house rules that CONTRIBUTING states, held by a test: no function over 80 lines but the
//! declarative tables CONTRIBUTING names, and no source file over 700 lines, in the Rust, Python,
//! shell and C sources the project tracks. Run with `--nocapture` for the longest functions and the
//! largest files (the numbers a clean-up is measured by).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use syn::visit::Visit;

const MAX_FUNCTION_LINES: usize = 80;
const MAX_FILE_LINES: usize = 700;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files git tracks (and the untracked ones it does not ignore), relative to the root.
fn sources(extensions: &[&str]) -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .current_dir(root())
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .filter(|p| root().join(p).is_file())
        .collect()
}

#[derive(Debug)]
struct Function {
    /// `path::name`, with the impl's type for a method: `src/lib.rs::run`, `crates/x/src/a.rs::T::new`.
    name: String,
    lines: usize,
}

struct Functions<'a> {
    file: &'a str,
    owner: Vec<String>,
    found: Vec<Function>,
}

impl Functions<'_> {
    fn add(&mut self, ident: &syn::Ident, span: proc_macro2::Span, block: &syn::Block) {
        let start = span.start().line;
        let end = block.brace_token.span.close().end().line;
        let mut name = self.file.to_string();
        for part in self.owner.iter().chain(std::iter::once(&ident.to_string())) {
            name.push_str("::");
            name.push_str(part);
        }
        self.found.push(Function {
            name,
            lines: end + 1 - start,
        });
    }
}

fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        _ => "_".to_string(),
    }
}

impl<'ast> Visit<'ast> for Functions<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.add(&f.sig.ident, f.sig.fn_token.span, &f.block);
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.add(&f.sig.ident, f.sig.fn_token.span, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.add(&f.sig.ident, f.sig.fn_token.span, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        self.owner.push(type_name(&i.self_ty));
        syn::visit::visit_item_impl(self, i);
        self.owner.pop();
    }
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.owner.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.owner.pop();
    }
}

fn rust_functions() -> Vec<Function> {
    let mut all = Vec::new();
    for path in sources(&["rs"]) {
        let text = std::fs::read_to_string(root().join(&path)).expect("read a source");
        let file = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        let name = path.to_string_lossy().into_owned();
        let mut visitor = Functions {
            file: &name,
            owner: Vec::new(),
            found: Vec::new(),
        };
        visitor.visit_file(&file);
        all.extend(visitor.found);
    }
    all
}

/// Python's own parser gives each function's first and last line (its decorators left out).
fn python_functions() -> Vec<Function> {
    let files = sources(&["py"]);
    let script = r#"
import ast, sys
for path in sys.argv[1:]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    def walk(node, owner):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                print(f"{path}::{owner}{child.name}\t{child.end_lineno - child.lineno + 1}")
                walk(child, f"{owner}{child.name}::")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{owner}{child.name}::")
    walk(tree, "")
"#;
    let python = std::env::var("LENET_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(&files)
        .current_dir(root())
        .output()
        .expect("python3 to read the Python sources");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (name, lines) = line.split_once('\t').expect("name<TAB>lines");
            Function {
                name: name.to_string(),
                lines: lines.parse().expect("a line count"),
            }
        })
        .collect()
}

/// The functions CONTRIBUTING names as declarative tables, in the list under its heading
/// "Declarative tables": one `` `path::function` `` per item.
fn declarative_tables() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("CONTRIBUTING.md")).expect("CONTRIBUTING.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Declarative tables"))
        .expect("CONTRIBUTING.md has a section \"Declarative tables\"");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

fn all_functions() -> Vec<Function> {
    let mut all = rust_functions();
    all.extend(python_functions());
    all.sort_by(|a, b| b.lines.cmp(&a.lines).then(a.name.cmp(&b.name)));
    all
}

#[test]
fn no_function_is_over_80_lines_but_the_declarative_tables() {
    let all = all_functions();
    let tables = declarative_tables();
    println!("longest functions:");
    for f in all.iter().take(15) {
        println!("{:5} {}", f.lines, f.name);
    }
    let long: Vec<String> = all
        .iter()
        .filter(|f| f.lines > MAX_FUNCTION_LINES && !tables.contains(&f.name))
        .map(|f| format!("{} ({} lines)", f.name, f.lines))
        .collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them, or name a declarative table in \
         CONTRIBUTING.md):\n  {}",
        long.join("\n  ")
    );
    let names: BTreeSet<&str> = all.iter().map(|f| f.name.as_str()).collect();
    let stale: Vec<&String> = tables
        .iter()
        .filter(|t| !names.contains(t.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "CONTRIBUTING.md names declarative tables that are not functions: {stale:?}"
    );
}

#[test]
fn no_source_file_is_over_700_lines() {
    let mut sizes: Vec<(usize, PathBuf)> = sources(&["rs", "py", "sh", "c"])
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(root().join(&p)).unwrap_or_default();
            (text.lines().count(), p)
        })
        .collect();
    sizes.sort_by(|a, b| b.cmp(a));
    println!("files over 600 lines:");
    for (n, p) in sizes.iter().filter(|(n, _)| *n > 600) {
        println!("{n:5} {}", p.display());
    }
    let big: Vec<String> = sizes
        .iter()
        .filter(|(n, _)| *n > MAX_FILE_LINES)
        .map(|(n, p)| format!("{} ({n} lines)", p.display()))
        .collect();
    assert!(
        big.is_empty(),
        "files over {MAX_FILE_LINES} lines (one job a file):\n  {}",
        big.join("\n  ")
    );
}

/// The frameworks' names: the root package's default features (one per framework crate, and the
/// serving row `ort`'s) and the names the registry in `src/lib.rs` gives its rows (`name:
/// "keras".into()`, ...).
fn framework_names() -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let default = manifest
        .lines()
        .find_map(|l| l.strip_prefix("default = ["))
        .expect("the root Cargo.toml has a default feature list");
    let mut names: BTreeSet<String> = default
        .split(',')
        .map(|n| n.trim().trim_matches(|c| c == '"' || c == ']').to_string())
        .filter(|n| !n.is_empty())
        .collect();
    let registry = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs");
    for part in registry.split("name: \"").skip(1) {
        if let Some(name) = part.split('"').next() {
            names.insert(name.to_string());
        }
    }
    names
}

/// The folders of the crates that the root's default features turn on (`dep:CRATE`): each
/// framework's `crates/NAME-impl/`, and the serving row `ort`'s `crates/onnx-serve/`, where the row
/// they bring may be named.
fn row_crates(names: &BTreeSet<String>) -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    manifest
        .lines()
        .filter_map(|l| {
            let (feature, entries) = l.split_once(" = [")?;
            names.contains(feature.trim()).then_some(entries)
        })
        .flat_map(|entries| {
            entries
                .split("\"dep:")
                .skip(1)
                .filter_map(|e| e.split('"').next())
                .map(|krate| format!("crates/{krate}/"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether a string literal or an identifier names a framework: a literal that is a name, or a
/// crate path or feature of one (`burn-impl/cuda`), an identifier with the name as a word
/// (`has_tch`, `TCH`).
fn names_a_framework(names: &BTreeSet<String>, text: &str, literal: bool) -> Option<String> {
    names
        .iter()
        .find(|n| {
            if literal {
                text == n.as_str() || text.starts_with(&format!("{n}-impl"))
            } else {
                text.to_lowercase()
                    .split('_')
                    .any(|word| word == n.as_str())
            }
        })
        .cloned()
}

struct Names<'a> {
    names: &'a BTreeSet<String>,
    file: String,
    found: Vec<String>,
}

impl Names<'_> {
    fn literal(&mut self, text: &str, line: usize) {
        if let Some(n) = names_a_framework(self.names, text, true) {
            self.found
                .push(format!("{}:{line}: \"{text}\" names {n}", self.file));
        }
    }

    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        for token in tokens {
            match token {
                proc_macro2::TokenTree::Literal(l) => {
                    if let Ok(syn::Lit::Str(s)) = syn::parse_str::<syn::Lit>(&l.to_string()) {
                        self.literal(&s.value(), l.span().start().line);
                    }
                }
                proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                _ => {}
            }
        }
    }
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        (a.path().is_ident("cfg") || a.path().is_ident("test")) && quote_free(a).contains("test")
    })
}

/// An attribute's text, without a dependency on `quote`.
fn quote_free(a: &syn::Attribute) -> String {
    match &a.meta {
        syn::Meta::Path(p) => p.segments.iter().map(|s| s.ident.to_string()).collect(),
        syn::Meta::List(l) => l.tokens.to_string(),
        syn::Meta::NameValue(_) => String::new(),
    }
}

impl<'ast> Visit<'ast> for Names<'_> {
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_lit_str(&mut self, s: &'ast syn::LitStr) {
        self.literal(&s.value(), s.span().start().line);
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
    }
    fn visit_ident(&mut self, i: &'ast proc_macro2::Ident) {
        if let Some(n) = names_a_framework(self.names, &i.to_string(), false) {
            let line = i.span().start().line;
            self.found
                .push(format!("{}:{line}: `{i}` names {n}", self.file));
        }
    }
}

/// Where a framework may be named: the registry, the framework crates (`crates/NAME-impl/`, and
/// the serving rows' crates, as the root's features turn them on: [`row_crates`]), the
/// Python rows with their requirements and bundle parts (`python/`), the measurement plans
/// (`scripts/`, which name what they measure, as a results folder does), and the tests.
fn may_name(file: &str, framework_crates: &[String]) -> bool {
    file.contains("/tests/")
        || file.starts_with("tests/")
        || file.starts_with("benches/")
        || file.starts_with("examples/")
        || file.starts_with("python/")
        || file.starts_with("scripts/")
        || file == "src/lib.rs"
        || framework_crates.iter().any(|c| file.starts_with(c))
}

/// The shell's words on a line that are not comment: a framework named in code, as in
/// `--framework burn` or `grep -vx tch`; a word is split at anything but a letter or a digit
/// (`burn-impl`, `LENET_TCH_X`).
fn shell_names(names: &BTreeSet<String>, file: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with('#') {
            continue;
        }
        let code = code.split(" # ").next().unwrap_or(code);
        let lower = code.to_lowercase();
        for word in lower.split(|c: char| !c.is_ascii_alphanumeric()) {
            if names.contains(word) {
                found.push(format!("{file}:{}: `{word}` in `{}`", i + 1, code.trim()));
            }
        }
    }
    found
}

/// A framework's name on a line of code, not in a comment, is found; one in a comment is not.
#[test]
fn shell_names_are_found_in_code_only() {
    let names: BTreeSet<String> = ["tch", "burn"].map(String::from).into();
    let text = "# burn's libdevice\nrun --framework burn\nx=\"$(grep -vx tch)\" # tch\nLENET_TCH_X=1\nburner\n";
    assert_eq!(
        shell_names(&names, "f.sh", text),
        [
            "f.sh:2: `burn` in `run --framework burn`",
            "f.sh:3: `tch` in `x=\"$(grep -vx tch)\"`",
            "f.sh:4: `tch` in `LENET_TCH_X=1`",
        ]
    );
}

/// ARCHITECTURE.md's invariant: no code names a framework but where [`may_name`] allows, in Rust
/// (literals and identifiers, outside `#[cfg(test)]`) and in shell (`*.sh`, `.ci/run`; code, not
/// comments).
#[test]
fn no_code_outside_the_registry_names_a_framework() {
    let names = framework_names();
    assert!(
        names.contains("tch") && names.contains("keras"),
        "{names:?}"
    );
    let framework_crates = row_crates(&names);
    assert!(
        framework_crates.contains(&"crates/tch-impl/".to_string()),
        "{framework_crates:?}"
    );
    let mut found = Vec::new();
    for path in sources(&["rs"]) {
        let file = path.to_string_lossy().into_owned();
        if may_name(&file, &framework_crates) {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&path)).expect("read a source");
        let parsed = syn::parse_file(&text).expect("a source parses");
        let mut visitor = Names {
            names: &names,
            file,
            found: Vec::new(),
        };
        visitor.visit_file(&parsed);
        found.extend(visitor.found);
    }
    let mut shell = sources(&["sh"]);
    shell.push(PathBuf::from(".ci/run"));
    for path in shell {
        let file = path.to_string_lossy().into_owned();
        if !may_name(&file, &framework_crates) {
            let text = std::fs::read_to_string(root().join(&path)).expect("read a script");
            found.extend(shell_names(&names, &file, &text));
        }
    }
    assert!(
        found.is_empty(),
        "code outside the registry names a framework (ask the registry: `lenet frameworks \
         --json`, `cargo xtask frameworks`, or a crate's `[package.metadata.lenet]`):\n  {}",
        found.join("\n  ")
    );
}
