//! Which `lenet` binary, Python and frameworks a comparison runs: the catalogue the binary prints,
//! the frameworks selected from it, and the binaries given for some of them.

use super::*;

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

pub(super) fn parse_lenet_for(value: &str) -> Result<(String, PathBuf), String> {
    let (framework, file) = value
        .split_once('=')
        .ok_or_else(|| format!("'{value}' is not FRAMEWORK=FILE"))?;
    if framework.is_empty() || file.is_empty() {
        return Err(format!("'{value}' is not FRAMEWORK=FILE"));
    }
    Ok((framework.to_string(), PathBuf::from(file)))
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
            ended(output.status),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Catalogue::from_json(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("`{} frameworks --json`", lenet.display()))
}

pub(super) fn tools(args: &Args) -> Result<Tools> {
    // The project's set-up, checked once, when a binary or Python is not given.
    let mut env: Option<setup::Env> = None;
    let features = setup::Features::new("--features", args.features.as_deref())?;
    let lenet = match &args.lenet {
        Some(l) => l.clone(),
        None if features.is_default() => env.insert(setup::run()?).build_lenet()?,
        None => setup::build_lenet_with(&features)?,
    };
    let catalogue = catalogue(&lenet)?;
    let frameworks = selected(args, &catalogue, features.is_default())?;
    let needs_python = frameworks.iter().any(|f| f.runner == Runner::Python);
    let python = match (&args.python, needs_python) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(match env {
            Some(env) => env.python,
            None => setup::run()?.python,
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
    args: &Args,
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
