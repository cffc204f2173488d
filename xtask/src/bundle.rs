//! `cargo xtask bundle --cuda`: a folder that runs the comparison on a GPU machine that has python3
//! with torch 2.11 and the NVIDIA libraries but no Rust toolchain. It holds two CUDA-enabled `lenet`
//! binaries (tch and candle in `lenet`, burn in `lenet-burn`, with LLVM linked in statically for
//! burn's kernel compiler: candle's and burn's CUDA code cannot share one; xz-compressed, since
//! candle's kernels and LLVM make them large), this xtask binary (which drives `compare`), the
//! PyTorch reference script and `run.sh`, which unpacks the binaries and points the dynamic loader
//! at that machine's own torch and NVIDIA libraries.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use results::Catalogue;

use crate::{compare, cuda, llvm, setup};

/// Where the CUDA-enabled build goes, apart from the CPU build so that neither rebuilds the other.
pub const CUDA_TARGET_DIR: &str = "target/cuda";
/// One CUDA build of `lenet`, made from the registry's `CudaBuild`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaBinary {
    /// `package/feature`s that compile the CUDA code of its frameworks.
    pub features: Vec<String>,
    /// Its compressed binary in the bundle.
    pub binary: String,
    /// Whether it links burn's CUDA backend, which needs LLVM (see `llvm.rs`).
    pub llvm: bool,
    /// The frameworks that need this binary rather than the main one (`--lenet-for`).
    pub own: Vec<String>,
}

/// The CUDA binaries the frameworks of `catalogue` need: `lenet`, with the CUDA code of every
/// framework that can share it, then one `lenet-NAME` for each framework that needs its own.
pub fn cuda_builds(catalogue: &Catalogue) -> Vec<CudaBinary> {
    let mut main = CudaBinary {
        features: Vec::new(),
        binary: "lenet.xz".into(),
        llvm: false,
        own: Vec::new(),
    };
    let mut own = Vec::new();
    for f in &catalogue.frameworks {
        let Some(build) = &f.cuda_build else { continue };
        if build.own_binary {
            own.push(CudaBinary {
                features: build.features.clone(),
                binary: format!("lenet-{}.xz", f.name),
                llvm: build.llvm,
                own: vec![f.name.clone()],
            });
        } else {
            for feature in &build.features {
                if !main.features.contains(feature) {
                    main.features.push(feature.clone());
                }
            }
            main.llvm |= build.llvm;
        }
    }
    std::iter::once(main).chain(own).collect()
}

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
# burn's CUDA backend links some kernels against libdevice (CUDA's math library), which it looks for
# at $CUDA_PATH/nvvm/libdevice/libdevice.10.bc: use a toolkit that has it, else the copy that triton
# (which torch depends on) ships, laid out as burn expects in a folder beside this script.
has_libdevice() { [ -f "$1/nvvm/libdevice/libdevice.10.bc" ]; }
if [ -z "${CUDA_PATH:-}" ] || ! has_libdevice "$CUDA_PATH"; then
  for d in "$site/nvidia/cu13" "$site/nvidia/cuda_nvcc" /usr/local/cuda; do
    if has_libdevice "$d"; then
      export CUDA_PATH="$d"
      break
    fi
  done
fi
if [ -z "${CUDA_PATH:-}" ] || ! has_libdevice "$CUDA_PATH"; then
  triton="$site/triton/backends/nvidia/lib/libdevice.10.bc"
  if [ -f "$triton" ]; then
    mkdir -p "$here/cuda/nvvm/libdevice"
    ln -sf "$triton" "$here/cuda/nvvm/libdevice/libdevice.10.bc"
    export CUDA_PATH="$here/cuda"
  else
    echo "warning: no libdevice.10.bc here (set CUDA_PATH to a CUDA toolkit): burn's CUDA kernels" \
      "that need CUDA's math functions will fail" >&2
  fi
fi
unxz() { # FILE.xz -> FILE, once
  if [ ! -e "${1%.xz}" ] || [ "$1" -nt "${1%.xz}" ]; then
    "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$1" "${1%.xz}.tmp"
    chmod +x "${1%.xz}.tmp"
    mv "${1%.xz}.tmp" "${1%.xz}"
  fi
}
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for packed in "$here"/*.xz; do
  unxz "$packed"
done
exec "$here/xtask" compare --lenet "$here/lenet"LENET_FOR \
  --python "$python" --reference "$here/reference.py" --out "$out" "$@"
"#;

/// `run.sh` for these binaries: each framework with a binary of its own is run with it.
fn run_sh(builds: &[CudaBinary]) -> String {
    let lenet_for: String = builds
        .iter()
        .flat_map(|b| {
            b.own.iter().map(move |f| {
                format!(
                    " --lenet-for \"{f}=$here/{}\"",
                    b.binary.trim_end_matches(".xz")
                )
            })
        })
        .collect();
    RUN_SH.replace("LENET_FOR", &lenet_for)
}

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
    let llvm = llvm::setup()?;
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        env.root.join(&args.out)
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let lenet = env.build_lenet()?;
    let builds = cuda_builds(&compare::catalogue(&lenet)?);
    for build in &builds {
        let features = build.features.join(",");
        eprintln!("building lenet with --features {features} (release, {CUDA_TARGET_DIR})");
        let mut cmd = env.cargo();
        cmd.args(["build", "--release", "--quiet", "--features", &features])
            .args(["--package", "lenet-compare", "--bin", "lenet"])
            .args(["--target-dir", CUDA_TARGET_DIR]);
        toolkit.apply(&mut cmd);
        if build.llvm {
            llvm.apply(&mut cmd);
        }
        if !setup::status(&mut cmd)? {
            bail!("cargo build --features {features} failed");
        }
        let _ = std::fs::remove_file(out.join(build.binary.trim_end_matches(".xz")));
        strip_copy(
            &env.root.join(CUDA_TARGET_DIR).join("release").join("lenet"),
            &out.join(&build.binary),
            true,
        )?;
    }
    let release = env.build_release(&["xtask"])?;
    strip_copy(&release.join("xtask"), &out.join("xtask"), false)?;
    // Bundles before LLVM was linked statically carried its shared libraries here.
    let lib = out.join("lib");
    if lib.exists() {
        std::fs::remove_dir_all(&lib).with_context(|| format!("cannot clear {}", lib.display()))?;
    }
    std::fs::copy(
        env.root.join("python").join("reference.py"),
        out.join("reference.py"),
    )
    .context("cannot copy python/reference.py")?;
    let script = out.join("run.sh");
    std::fs::write(&script, run_sh(&builds))
        .with_context(|| format!("cannot write {}", script.display()))?;
    set_executable(&script)?;
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
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use common::framework::{CudaBuild, FrameworkDefaults, FrameworkInfo, Runner};
    use results::Catalogue;

    fn info(name: &str, build: Option<CudaBuild>) -> FrameworkInfo {
        FrameworkInfo {
            name: name.into(),
            runner: if build.is_some() {
                Runner::Lenet
            } else {
                Runner::Python
            },
            script: None,
            baseline: false,
            compared_by_default: true,
            cuda_available: false,
            cuda_build: build,
            colour: [0, 0, 0],
            defaults: FrameworkDefaults::row([name; 8]),
            model_source: None,
        }
    }

    /// Every framework's CUDA code is in exactly one binary, and run.sh runs each framework with a
    /// binary of its own with that binary.
    #[test]
    fn every_framework_is_in_one_binary_and_run_sh() {
        let shared = |f: &str| CudaBuild {
            features: vec![f.into()],
            own_binary: false,
            llvm: false,
        };
        let catalogue = Catalogue::new(vec![
            info("pytorch", None),
            info("tch", Some(CudaBuild::library())),
            info("candle", Some(shared("candle-impl/cudnn"))),
            info("candle-firstmax", Some(shared("candle-impl/cudnn"))),
            info(
                "burn",
                Some(CudaBuild {
                    features: vec!["burn-impl/cuda".into()],
                    own_binary: true,
                    llvm: true,
                }),
            ),
        ]);
        let builds = super::cuda_builds(&catalogue);
        assert_eq!(builds.len(), 2);
        assert_eq!(builds[0].features, ["candle-impl/cudnn"]);
        assert!(!builds[0].llvm && builds[0].own.is_empty());
        assert_eq!(builds[1].binary, "lenet-burn.xz");
        assert_eq!(builds[1].features, ["burn-impl/cuda"]);
        assert!(builds[1].llvm);
        let script = super::run_sh(&builds);
        assert!(
            script.contains(r#"--lenet "$here/lenet" --lenet-for "burn=$here/lenet-burn" \"#),
            "{script}"
        );
    }
}
