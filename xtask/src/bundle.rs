//! `cargo xtask bundle --cuda`: a folder that runs the comparison on a GPU machine that has python3
//! with torch 2.11 and the NVIDIA libraries but no Rust toolchain. It holds the CUDA-enabled `lenet`
//! binary (every framework's GPU code; xz-compressed, since candle's kernels make it large), this
//! xtask binary (which drives `compare`), the PyTorch reference script and `run.sh`, which unpacks
//! the binary and points the dynamic loader at that machine's own torch and NVIDIA libraries.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::{cuda, setup};

/// Where the CUDA-enabled build goes, apart from the CPU build so that neither rebuilds the other.
pub const CUDA_TARGET_DIR: &str = "target/cuda";

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
[ -d /usr/local/nvidia/lib64 ] && libs="$libs:/usr/local/nvidia/lib64"
for d in "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib; do
  [ -d "$d" ] && libs="$libs:$d"
done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ ! -x "$here/lenet" ] || [ "$here/lenet.xz" -nt "$here/lenet" ]; then
  "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$here/lenet.xz" "$here/lenet.tmp"
  chmod +x "$here/lenet.tmp"
  mv "$here/lenet.tmp" "$here/lenet"
fi
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
    let toolkit = cuda::setup()?;
    eprintln!("building lenet with every framework's CUDA code (release, {CUDA_TARGET_DIR})");
    let mut cmd = env.cargo();
    cmd.args(["build", "--release", "--quiet", "--features", "cudnn"])
        .args(["--package", "lenet-compare", "--bin", "lenet"])
        .args(["--target-dir", CUDA_TARGET_DIR]);
    toolkit.apply(&mut cmd);
    if !setup::status(&mut cmd)? {
        bail!("cargo build --features cudnn failed");
    }
    let release = env.build_release(&["xtask"])?;
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        env.root.join(&args.out)
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let _ = std::fs::remove_file(out.join("lenet"));
    strip_copy(
        &env.root.join(CUDA_TARGET_DIR).join("release").join("lenet"),
        &out.join("lenet.xz"),
        true,
    )?;
    strip_copy(&release.join("xtask"), &out.join("xtask"), false)?;
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

/// Copies a binary without its debug line tables (a missing `strip` only costs size), compressed
/// with `xz` when `compress` is set.
fn strip_copy(from: &Path, to: &Path, compress: bool) -> Result<()> {
    let plain = if compress {
        to.with_extension("")
    } else {
        to.to_path_buf()
    };
    std::fs::copy(from, &plain)
        .with_context(|| format!("cannot copy {} to {}", from.display(), plain.display()))?;
    let _ = std::process::Command::new("strip").arg(&plain).status();
    if compress {
        let ok = setup::status(
            std::process::Command::new("xz")
                .args(["-6", "--force", "--threads=0", "--keep"])
                .arg(&plain),
        )
        .context("the bundle compresses with xz (Debian package xz-utils)")?;
        std::fs::remove_file(&plain)?;
        if !ok {
            bail!("xz failed on {}", plain.display());
        }
        let xz = PathBuf::from(format!("{}.xz", plain.display()));
        if xz != to {
            std::fs::rename(&xz, to)?;
        }
        return Ok(());
    }
    set_executable(&plain)
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
