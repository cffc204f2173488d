//! `cargo xtask bundle --cuda`: a folder that runs the comparison on a GPU machine that has python3
//! with torch 2.11 and the NVIDIA libraries but no Rust toolchain. It holds the CUDA-enabled `lenet`
//! binary, this xtask binary (which drives `compare`), the PyTorch reference script and `run.sh`,
//! which points the dynamic loader at that machine's own torch and NVIDIA libraries.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::setup;

#[derive(clap::Args)]
pub struct Args {
    /// Build the CUDA-enabled binaries (the only kind of bundle there is so far)
    #[arg(long)]
    pub cuda: bool,
    /// Where to put the bundle
    #[arg(long, default_value = ".bundle")]
    pub out: PathBuf,
}

/// The most a bundle may weigh, so that it can be copied around easily.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

const RUN_SH: &str = r#"#!/usr/bin/env bash
# Runs the lenet-compare comparison with the binaries beside this script, against this machine's own
# torch 2.11 and NVIDIA libraries. Usage: ./run.sh RESULTS_DIR [compare options...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: run.sh RESULTS_DIR [compare options]}"
shift
python="${PYTHON:-python3}"
site="$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
version="$("$python" -c 'import torch; print(torch.__version__)')"
case "$version" in
  2.11.0*) ;;
  *) echo "error: $python has torch $version, the bundle needs 2.11.0" >&2; exit 1 ;;
esac
libs="$site/torch/lib"
for d in "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib; do
  [ -d "$d" ] && libs="$libs:$d"
done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$here/xtask" compare --lenet "$here/lenet" --python "$python" \
  --reference "$here/reference.py" --out "$out" "$@"
"#;

pub fn run(args: Args) -> Result<()> {
    if !args.cuda {
        bail!("only CUDA bundles exist: pass --cuda");
    }
    let env = setup::run()?;
    if !env.libtorch.join("lib").join("libtorch_cuda.so").exists() {
        bail!(
            "{} has no libtorch_cuda.so: a CUDA bundle needs a CUDA build of libtorch",
            env.libtorch.display()
        );
    }
    let release = env.build_release(&["lenet-compare", "xtask"])?;
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        env.root.join(&args.out)
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for bin in ["lenet", "xtask"] {
        strip_copy(&release.join(bin), &out.join(bin))?;
    }
    std::fs::copy(
        env.root.join("python").join("reference.py"),
        out.join("reference.py"),
    )
    .context("cannot copy python/reference.py")?;
    let run_sh = out.join("run.sh");
    std::fs::write(&run_sh, RUN_SH)
        .with_context(|| format!("cannot write {}", run_sh.display()))?;
    set_executable(&run_sh)?;
    let size = dir_size(&out)?;
    if size > MAX_BYTES {
        bail!(
            "the bundle in {} weighs {} MiB, over the {} MiB limit",
            out.display(),
            size >> 20,
            MAX_BYTES >> 20
        );
    }
    println!(
        "bundle: {} ({:.1} MiB); run it there as {}/run.sh RESULTS_DIR [compare options]",
        out.display(),
        size as f64 / (1 << 20) as f64,
        out.display()
    );
    Ok(())
}

fn strip_copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    // Debug line tables are of no use on the GPU machine; a missing `strip` only costs size.
    let _ = std::process::Command::new("strip").arg(to).status();
    set_executable(to)
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        total += meta.len();
    }
    Ok(total)
}
