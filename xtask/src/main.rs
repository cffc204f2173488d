//! `cargo xtask`: the project's set-up, builds and comparisons, so that nobody has to prepare
//! anything by hand. `flags` holds every command's options; each task (subcommand) is a module of
//! its own, and what several tasks share is in modules that no task owns: running commands
//! (`process`), the workspace's manifests and a build's features and needs (`workspace`,
//! `features`), libtorch and the Python environment (`python_env`), the `lenet` binary's registry
//! and CUDA builds (`registry`), and the toolchains (`cuda`, `llvm`, `counter`). A task uses shared
//! modules only, never another task. Runs are separate processes of the `lenet` binary (and of the
//! Python rows' scripts), and their JSON reports are the only thing read back.

mod flags;

// The tasks, one per subcommand.
mod build;
mod bundle;
mod compare;
mod cost;
mod frameworks;
mod lint;
mod report;
mod serve;
mod setup;
mod test;

// What the tasks share.
mod counter;
mod cuda;
mod features;
mod llvm;
mod process;
mod python_env;
mod registry;
mod workspace;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use flags::Command;

fn main() -> ExitCode {
    let cli = flags::Cli::parse();
    let result = match cli.command {
        Command::Setup(flags) => setup::run(flags),
        Command::Compare(flags) => compare::run(*flags),
        Command::Test(flags) => test::run(flags),
        Command::Report(flags) => report::run(flags),
        Command::Bundle(flags) => bundle::run(flags).map(|()| true),
        Command::Build(flags) => build::run(flags).map(|_| true),
        Command::Cost(flags) => cost::run(flags),
        Command::Lint(flags) => lint::run(flags),
        Command::Frameworks(flags) => frameworks::run(flags),
        Command::Serve(flags) => serve::run(*flags),
    };
    exit_code(result)
}

/// A task's result as the exit status: 0 when it succeeded, 1 when it failed or could not run (its
/// error printed), 130 when Ctrl-C stopped a comparison.
fn exit_code(result: Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // Ctrl-C: what was kept is not an error, but the comparison is not complete either.
        Err(e) if e.is::<compare::Interrupted>() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
