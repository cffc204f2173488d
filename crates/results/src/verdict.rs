//! The front page's answer: for each need a user has, the Rust framework the committed results say
//! wins, by how much, on which machine, with a link to the folder; or, where the results cannot say,
//! that they cannot. Made from the results folders, the build-cost records, the registry and the
//! models' listings; `cargo xtask report` writes it into the README between two marker lines, and a
//! test fails when the README and the results disagree.
//!
//! The rules: a Rust row is a framework the registry runs with `lenet` (not a Python row); a
//! framework's time is the mean over its repeats of each run's median epoch (epochs 2..N), in its
//! faster profile; a comparison is read from the folder with the most Rust frameworks that meet the
//! need's conditions (the most recent one on a tie), never assembled across folders, so that every
//! ratio is between runs of one machine.
//!
//! By job: `filters` (which runs a need reads, the folder it reads them from, each framework's
//! time there), `needs` (each need's answer), `serving` (the serving needs', from a serving
//! folder), `headlines` (the headline tables) and `text` (how the numbers are written); here, the
//! page itself.

mod filters;
mod headlines;
mod needs;
mod serving;
mod text;

use std::collections::BTreeMap;
use std::path::Path;

use crate::folder::ResultsFolder;
use reports::cost::BuildCost;
use reports::Catalogue;

pub use filters::{FEW_CORES, LARGE_BATCH};
pub use serving::ServeFolder;

/// The line that opens the generated verdict in the README.
pub const BEGIN: &str =
    "<!-- verdict: written by `cargo xtask report` from results/; edit crates/results/src/verdict.rs instead -->";
/// The line that closes it.
pub const END: &str = "<!-- end of verdict -->";

/// One need and what the results say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub need: &'static str,
    /// The winner, or `None` where the results cannot tell.
    pub winner: Option<String>,
    /// By how much, or why the results cannot tell.
    pub says: String,
    /// The folder the figures come from, relative to the repository, when there is one.
    pub source: Option<String>,
}

/// What the verdict is made from.
pub struct Evidence<'a> {
    /// The repository: links are relative to it.
    pub root: &'a Path,
    pub folders: &'a [ResultsFolder],
    /// Each build-cost folder (relative to the repository) with its records.
    pub costs: &'a [(String, Vec<BuildCost>)],
    pub catalogue: &'a Catalogue,
    /// Code lines of each framework's two model listings (docs/models.md).
    pub listing_lines: &'a BTreeMap<String, usize>,
    /// Each serving folder (relative to the repository) with its reports.
    pub serving: &'a [ServeFolder],
}

/// The generated part of the front page: the verdict, then the headline tables.
pub fn front_page(evidence: &Evidence) -> String {
    let mut out = markdown(&evidence.verdicts());
    for (title, table) in evidence.headlines() {
        out.push_str(&format!(
            "\n**{title}**, median epoch (2..N), batch 32:\n\n{table}"
        ));
    }
    if let Some((title, table)) = evidence.device_headline() {
        out.push_str(&format!(
            "\n**{title}**, from each row's kernel pass (CUPTI), batch 32: the kernels a step \
             launches, the time a kernel was running per step, the device floor (that time times \
             an epoch's steps: a host with no overhead) and the timed epoch over it:\n\n{table}"
        ));
    }
    out
}

/// The verdict as a Markdown table, links relative to the README (the repository's root).
pub fn markdown(verdicts: &[Verdict]) -> String {
    let mut out =
        String::from("| if you need | take | because (measured) | from |\n|---|---|---|---|\n");
    for v in verdicts {
        let winner = v
            .winner
            .as_deref()
            .map_or("not known yet".to_string(), |w| format!("**{w}**"));
        let source = match &v.source {
            Some(s) if Path::new(s).extension().is_none() && s.starts_with("results") => {
                format!("[{s}]({s}/summary.md)")
            }
            Some(s) => s.clone(),
            None => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {winner} | {} | {source} |\n",
            v.need, v.says
        ));
    }
    out
}

/// The page the verdict is on, relative to the repository.
pub const PAGE: &str = "README.md";

/// The front page's generated part from the repository at `root`: its results folders and
/// build-cost records under `results/`, and its models' listings.
pub fn front_page_at(root: &Path, catalogue: &Catalogue) -> Result<String, common::Error> {
    let out = root.join("results");
    let folders = crate::folder::load_all(&out, catalogue)?;
    let mut costs = Vec::new();
    for dir in crate::folder::cost_dirs(&out)? {
        let rel = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        costs.push((rel, reports::cost::load(&dir)?));
    }
    let mut serving = Vec::new();
    for dir in crate::folder::serve_dirs(&out)? {
        let rel = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        serving.push((rel, reports::serve::ServeReport::load(&dir)?));
    }
    let sources = crate::listings::sources(catalogue, root)?;
    let listing_lines = crate::listings::line_counts(&sources)?;
    Ok(front_page(&Evidence {
        root,
        folders: &folders,
        costs: &costs,
        catalogue,
        listing_lines: &listing_lines,
        serving: &serving,
    }))
}

/// The front page ([`PAGE`]) at `root`, as it is and as the results say it should be.
pub fn page(root: &Path, catalogue: &Catalogue) -> Result<(String, String), common::Error> {
    let file = root.join(PAGE);
    let current = std::fs::read_to_string(&file)
        .map_err(|e| common::Error::io(format!("cannot read {}", file.display()), e))?;
    let wanted = replace_region(&current, &front_page_at(root, catalogue)?)?;
    Ok((current, wanted))
}

/// Rewrites the front page's generated part; returns whether it changed.
pub fn update_page(root: &Path, catalogue: &Catalogue) -> Result<bool, common::Error> {
    let (current, wanted) = page(root, catalogue)?;
    if current == wanted {
        return Ok(false);
    }
    let file = root.join(PAGE);
    common::fsio::write_atomic(&file, wanted.as_bytes())
        .map_err(|e| common::Error::io(format!("cannot write {}", file.display()), e))?;
    Ok(true)
}

/// `text` with the region between [`BEGIN`] and [`END`] replaced by `body`; an error when the
/// markers are missing or out of order.
pub fn replace_region(text: &str, body: &str) -> Result<String, common::Error> {
    let invalid = |what: &str| common::Error::Invalid(format!("the verdict's markers: {what}"));
    let start = text.find(BEGIN).ok_or_else(|| invalid("no opening line"))?;
    let end = text[start..]
        .find(END)
        .map(|e| start + e)
        .ok_or_else(|| invalid("no closing line after the opening one"))?;
    Ok(format!(
        "{}{BEGIN}\n\n{}\n{}",
        &text[..start],
        body.trim_end(),
        &text[end..]
    ))
}
