//! The summary of a `build-cost` folder (see `reports::cost` for the records): one table of the
//! builds, one of the first epochs.

use std::path::Path;

use common::Error;
use reports::cost::{load, BuildCost, FirstEpoch};

use crate::folder::write_file;

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

fn minutes(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// How the build-cost tables were measured, below them.
const MEASURED: &str =
    "\nCold build: `cargo build --release` of `lenet` with that framework alone \
     (`--no-default-features --features FRAMEWORK`) in an empty target folder, the sources of \
     the dependencies already downloaded (`cargo fetch`; libtorch, for tch, already installed): \
     what a user pays on the first build after the downloads. Rebuild: the same build after \
     touching the framework crate's `lib.rs`. Stripped: `strip` of a copy. Native libraries: \
     what `ldd` lists outside the system's folders (for tch, libtorch and the CUDA libraries \
     its PyPI wheel links; libraries loaded later with `dlopen`, as CUDA backends do, are not \
     in it), and their count. Crates: the dependency tree of `cargo metadata` for this build \
     (normal and build dependencies, this platform), the project's own crates included. The \
     first epochs come from this machine's comparison (the reports named): the time before the \
     first step (model, data upload) and what the first epoch costs beyond a steady one \
     (kernel compilation, autotuning, caches). Build times are single measurements on a \
     machine that was doing nothing else, not tests.\n";

/// The summary of a `build-cost` folder: one table of the builds, one of the first epochs.
pub fn summary(title: &str, costs: &[BuildCost]) -> String {
    let mut text = format!("# Build costs: {title}\n\n");
    text.push_str(&builds_table(costs));
    text.push_str(&first_epochs_table(costs));
    if let Some(c) = costs.first() {
        let e = &c.environment;
        text.push_str(&format!(
            "\n- Machine: {} ({} logical CPUs), {} {}; {}\n",
            e.cpu_model, e.logical_cpus, e.os, e.arch, c.rustc
        ));
    }
    let mut commands: Vec<String> = Vec::new();
    for c in costs {
        let e = &c.environment;
        let line = format!("- Command: `{}`, {}\n", e.command.join(" "), e.started_utc);
        if !commands.contains(&line) {
            commands.push(line);
        }
    }
    text.push_str(&commands.concat());
    text.push_str(MEASURED);
    text
}

/// The builds: times, sizes, native libraries, dependency counts.
fn builds_table(costs: &[BuildCost]) -> String {
    let mut text = String::from(
        "| framework | build | cold build (min:s) | rebuild after a change (min:s) | binary (MiB) | \
         stripped (MiB) | native libraries (MiB) | crates | build scripts |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for c in costs {
        let missing = if c.missing_libraries.is_empty() {
            String::new()
        } else {
            format!(", not found here: {}", c.missing_libraries.join(", "))
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} ({}{missing}) | {} | {} |\n",
            c.framework,
            c.device,
            minutes(c.cold_build_seconds),
            minutes(c.rebuild_seconds),
            mib(c.binary_bytes),
            mib(c.stripped_bytes),
            mib(c.native_bytes()),
            c.native_libraries.len(),
            c.crates,
            c.build_scripts
        ));
    }
    text
}

/// The first epochs of each build's framework, where the records have them; empty otherwise.
fn first_epochs_table(costs: &[BuildCost]) -> String {
    let firsts: Vec<(&BuildCost, &FirstEpoch)> = costs
        .iter()
        .flat_map(|c| c.first_epochs.iter().map(move |f| (c, f)))
        .collect();
    if firsts.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n| framework | model | before the first step (s) | epoch 1 (s) | median epoch 2..N (s) \
         | first-epoch extra (s) | report |\n|---|---|---|---|---|---|---|\n",
    );
    for (c, f) in firsts {
        text.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |\n",
            c.framework,
            f.model,
            f.setup_seconds,
            f.first_epoch_seconds,
            f.steady_epoch_seconds,
            f.extra_seconds(),
            f.report
        ));
    }
    text
}

/// Writes `summary.md` of the build-cost folder `dir` from its JSON files.
pub fn write_summary(dir: &Path, title: &str) -> Result<usize, Error> {
    let costs = load(dir)?;
    write_file(&dir.join("summary.md"), summary(title, &costs).as_bytes())?;
    Ok(costs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_read_as_a_clock() {
        assert_eq!(minutes(5.4), "0:05");
        assert_eq!(minutes(65.0), "1:05");
        assert_eq!(minutes(600.2), "10:00");
        assert_eq!(minutes(119.6), "2:00");
    }
}
