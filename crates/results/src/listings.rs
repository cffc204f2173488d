//! The "same model in each framework" page (`docs/models.md`), made from the sources themselves: each
//! framework's model file marks its LeNet2 and LeNet3 with a line `listing: lenet2` (in a `//` or
//! `#` comment) before and `end listing` after; this module cuts those regions out, lays them side
//! by side in an HTML table of fenced code blocks, and puts the result between two marker comments
//! in that page. `cargo xtask report` writes it; a test checks that the page holds what the sources
//! give.

use std::path::Path;

use common::fsio;
use common::spec::ModelKind;
use common::Error;

use reports::Catalogue;

/// The line that opens the generated section in the page.
pub const BEGIN: &str =
    "<!-- listings: written by `cargo xtask report` from the models' sources; edit those instead -->";
/// The line that closes it.
pub const END: &str = "<!-- end of listings -->";

/// One framework's model source.
#[derive(Debug, Clone)]
pub struct Source {
    /// The framework's name as the tables show it (`pytorch`, `tch`, ...).
    pub framework: String,
    /// The file, relative to the repository, as docs/models.md names it.
    pub path: String,
    pub text: String,
}

impl Source {
    /// The fenced block's language, from the file's extension.
    fn language(&self) -> &'static str {
        if self.path.ends_with(".py") {
            "python"
        } else {
            "rust"
        }
    }

    /// The region marked `listing: NAME`, without its markers and without the indentation that
    /// all its lines share. Exactly one such region, closed, must exist.
    pub fn listing(&self, name: &str) -> Result<String, Error> {
        let invalid = |what: String| Error::Invalid(format!("{}: {what}", self.path));
        let marker = |line: &str| -> Option<String> {
            let t = line.trim();
            let t = t.strip_prefix("//").or_else(|| t.strip_prefix('#'))?.trim();
            Some(t.to_string())
        };
        let open = format!("listing: {name}");
        let mut found: Option<Vec<&str>> = None;
        let mut current: Option<Vec<&str>> = None;
        for (i, line) in self.text.lines().enumerate() {
            let m = marker(line);
            match (&mut current, m.as_deref()) {
                (None, Some(m)) if m == open => {
                    if found.is_some() {
                        return Err(invalid(format!("a second '{open}' at line {}", i + 1)));
                    }
                    current = Some(Vec::new());
                }
                (Some(_), Some(m)) if m.starts_with("listing:") => {
                    return Err(invalid(format!(
                        "'{m}' at line {} inside the region '{open}'",
                        i + 1
                    )))
                }
                (Some(_), Some("end listing")) => found = current.take(),
                (Some(lines), _) => lines.push(line),
                (None, _) => {}
            }
        }
        if current.is_some() {
            return Err(invalid(format!("'{open}' has no 'end listing'")));
        }
        let lines = found.ok_or_else(|| invalid(format!("no region '{open}'")))?;
        let indent = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start().len())
            .min()
            .unwrap_or(0);
        let body: Vec<&str> = lines
            .iter()
            .map(|l| l.get(indent..).unwrap_or("").trim_end())
            .collect();
        let text = body.join("\n");
        let text = text.trim_matches('\n');
        if text.is_empty() {
            return Err(invalid(format!("the region '{open}' is empty")));
        }
        Ok(text.to_string())
    }
}

/// Lines of `listing` (in `language`, `rust` or `python`) that are neither blank nor only a comment.
pub fn code_lines(listing: &str, language: &str) -> usize {
    let comment = if language == "python" { "#" } else { "//" };
    listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(comment))
        .count()
}

/// The generated section, markers included: for each model, the listings two to a row (LeNet2
/// open, LeNet3 folded).
pub fn section(sources: &[Source]) -> Result<String, Error> {
    let mut out = vec![BEGIN.to_string()];
    for model in ModelKind::ALL {
        let title = match model {
            ModelKind::LeNet2 => "LeNet2",
            ModelKind::LeNet3 => "LeNet3",
        };
        let folded = model != ModelKind::LeNet2;
        if folded {
            out.push(format!("<details><summary>{title}</summary>\n"));
        } else {
            out.push(format!("**{title}**\n"));
        }
        out.push("<table>".into());
        for row in sources.chunks(2) {
            let mut cells = Vec::new();
            for source in row {
                let listing = source.listing(model.name())?;
                let lines = code_lines(&listing, source.language());
                cells.push(format!(
                    "<td>\n\n**{}**, {lines} line{} ([{}]({}))\n\n```{}\n{}\n```\n\n</td>",
                    source.framework,
                    if lines == 1 { "" } else { "s" },
                    source.path,
                    source.path,
                    source.language(),
                    listing
                ));
            }
            out.push(format!("<tr>\n{}\n</tr>", cells.join("\n")));
        }
        out.push("</table>".into());
        if folded {
            out.push("\n</details>".into());
        }
        out.push(String::new());
    }
    out.push(END.to_string());
    Ok(out.join("\n"))
}

/// The model source of every framework in `catalogue` that names one, read from the repository at
/// `root`, in the catalogue's order; configurations that share a file (candle and candle-firstmax)
/// show it once, under the first name.
pub fn sources(catalogue: &Catalogue, root: &Path) -> Result<Vec<Source>, Error> {
    let mut out: Vec<Source> = Vec::new();
    for f in &catalogue.frameworks {
        let Some(path) = &f.model_source else {
            continue;
        };
        if out.iter().any(|s| &s.path == path) {
            continue;
        }
        let file = root.join(path);
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
        out.push(Source {
            framework: f.name.clone(),
            path: path.clone(),
            text,
        });
    }
    Ok(out)
}

/// Code lines (no comments, no blank lines) of each framework's LeNet2 and LeNet3 listings
/// together, by the framework that names the source.
pub fn line_counts(sources: &[Source]) -> Result<std::collections::BTreeMap<String, usize>, Error> {
    let mut out = std::collections::BTreeMap::new();
    for s in sources {
        let mut n = 0;
        for model in ModelKind::ALL {
            n += code_lines(&s.listing(model.name())?, s.language());
        }
        out.insert(s.framework.clone(), n);
    }
    Ok(out)
}

/// The page that holds the listings, relative to the repository.
pub const PAGE: &str = "docs/models.md";

/// The listings page at `root` ([`PAGE`]) as it should be: its listings section rebuilt from the
/// sources. Returns the current text and the wanted one.
pub fn page(catalogue: &Catalogue, root: &Path) -> Result<(String, String), Error> {
    let file = root.join(PAGE);
    let current = std::fs::read_to_string(&file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    let wanted = replace(&current, &section(&sources(catalogue, root)?)?)?;
    Ok((current, wanted))
}

/// Rewrites the listings page's section from the sources; returns whether it changed.
pub fn update_page(catalogue: &Catalogue, root: &Path) -> Result<bool, Error> {
    let (current, wanted) = page(catalogue, root)?;
    if current == wanted {
        return Ok(false);
    }
    let file = root.join(PAGE);
    fsio::write_atomic(&file, wanted.as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", file.display()), e))?;
    Ok(true)
}

/// `readme` with its generated section replaced by `section`. The page must hold both markers,
/// in order, each on a line of its own.
pub fn replace(readme: &str, section: &str) -> Result<String, Error> {
    let missing = |what: &str| {
        Error::Invalid(format!(
            "{PAGE} has no line '{what}': put the two marker lines where the listings go"
        ))
    };
    let start = readme.find(BEGIN).ok_or_else(|| missing(BEGIN))?;
    let end = readme[start..]
        .find(END)
        .map(|i| start + i + END.len())
        .ok_or_else(|| missing(END))?;
    Ok(format!("{}{}{}", &readme[..start], section, &readme[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source {
            framework: "f".into(),
            path: "m.rs".into(),
            text: text.into(),
        }
    }

    #[test]
    fn comments_and_blank_lines_are_not_counted() {
        assert_eq!(
            code_lines("#[derive(Debug)]\nstruct A; // a\n\n// b\n", "rust"),
            2
        );
        assert_eq!(
            code_lines("class A:\n    # a\n\n    pass  # b\n", "python"),
            2
        );
    }

    #[test]
    fn a_region_is_cut_out_and_dedented() {
        let s = source(
            "use x;\n    // listing: lenet2\n    struct A;\n\n    impl A {}\n    // end listing\n",
        );
        assert_eq!(s.listing("lenet2").unwrap(), "struct A;\n\nimpl A {}");
        let py = Source {
            path: "m.py".into(),
            ..source("# listing: lenet3\nclass A:\n    pass\n# end listing\n")
        };
        assert_eq!(py.listing("lenet3").unwrap(), "class A:\n    pass");
    }

    #[test]
    fn bad_markers_are_errors_that_name_the_file() {
        for (text, says) in [
            ("struct A;\n", "no region 'listing: lenet2'"),
            ("// listing: lenet2\nstruct A;\n", "has no 'end listing'"),
            (
                "// listing: lenet2\na\n// end listing\n// listing: lenet2\nb\n// end listing\n",
                "a second",
            ),
            (
                "// listing: lenet2\n// listing: lenet3\n// end listing\n",
                "inside the region",
            ),
            ("// listing: lenet2\n\n// end listing\n", "is empty"),
        ] {
            let e = source(text).listing("lenet2").unwrap_err().to_string();
            assert!(e.contains("m.rs") && e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_section_replaces_only_what_is_between_the_markers() {
        let sources = vec![
            source("// listing: lenet2\nstruct A; // a\n// end listing\n// listing: lenet3\nstruct B;\n// comment\n\nimpl B {}\n// end listing\n"),
            Source {
                framework: "g".into(),
                ..source("// listing: lenet2\nstruct C;\n// end listing\n// listing: lenet3\nstruct D;\n// end listing\n")
            },
        ];
        let section = section(&sources).unwrap();
        assert!(section.contains("**f**, 1 line ([m.rs](m.rs))"));
        assert!(section.contains("**f**, 2 lines ([m.rs](m.rs))"));
        assert!(section.contains("```rust\nstruct D;\n```"));
        let readme = format!("# T\n\nbefore\n{BEGIN}\nold\n{END}\nafter\n");
        let new = replace(&readme, &section).unwrap();
        assert_eq!(new, format!("# T\n\nbefore\n{section}\nafter\n"));
        assert_eq!(replace(&new, &section).unwrap(), new);
        assert!(replace("# T\n", &section)
            .unwrap_err()
            .to_string()
            .contains("has no line"));
    }
}
