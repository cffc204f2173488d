//! Running commands, and the places xtask works in: `cargo` from the repository root, a command's
//! exit status, how a process ended in words, the repository root, the project's cache folder and
//! the links into it. Every task and every shared module runs its commands through these.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result};

/// `cargo` (the one running xtask), run from the repository root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command with inherited output; `Ok(false)` when it exits non-zero.
pub fn status(cmd: &mut Command) -> Result<bool> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    Ok(status.success())
}

/// The repository root.
pub fn root() -> PathBuf {
    // xtask/ sits in the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The project's cache folder, shared by every checkout (`LENET_CACHE`, else the user's cache
/// folder's `lenet-compare`): the Python environment, the CUDA toolkit, LLVM and the wheels.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LENET_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no cache folder: set LENET_CACHE or HOME")?;
    Ok(base.join("lenet-compare"))
}

/// Makes `link` a symbolic link to `target`, replacing whatever it was (nothing is done when it
/// already points there).
pub fn relink(link: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

/// Makes a file executable by everyone (`rwxr-xr-x`).
pub fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

/// The signal that ended a process, if one did.
#[cfg(unix)]
pub fn signal(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

/// The signal that ended a process: none where there are no signals.
#[cfg(not(unix))]
pub fn signal(_: ExitStatus) -> Option<i32> {
    None
}

/// How a process ended, in words (for a failed report or an error).
pub fn ended(status: ExitStatus) -> String {
    match (status.code(), signal(status)) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(9)) => "was killed (SIGKILL: killed from outside, or out of memory)".into(),
        (None, Some(6)) => "aborted (SIGABRT)".into(),
        (None, Some(11)) => "crashed (SIGSEGV)".into(),
        (None, Some(n)) => format!("was killed by signal {n}"),
        (None, None) => format!("ended ({status})"),
    }
}
