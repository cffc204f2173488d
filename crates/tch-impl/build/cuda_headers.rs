//! Where build.rs finds the CUDA runtime's headers for the CUDA-graph shim, and whether they are
//! complete. Shared with `tests/cuda_headers.rs` (a build script has no tests of its own).
//!
//! PyTorch's wheel brings `cuda_runtime_api.h` (nvidia-cuda-runtime) but not the `crt/` headers
//! that `cuda_runtime.h` includes (nvidia-cuda-crt, which `cargo xtask setup --cuda` installs): a
//! folder with the first and without the second cannot compile the shim, so it is not chosen.

use std::path::{Path, PathBuf};

/// The headers the shim's include chain needs from the CUDA runtime's folder: libtorch's CUDA
/// headers include `cuda_runtime_api.h` and `cuda_runtime.h`, which include the `crt/` ones.
pub const NEEDED: [&str; 4] = [
    "cuda_runtime_api.h",
    "cuda_runtime.h",
    "crt/host_config.h",
    "crt/host_defines.h",
];

/// What the search found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A folder with every header of [`NEEDED`].
    Complete(PathBuf),
    /// The first folder with `cuda_runtime_api.h`, and the headers of [`NEEDED`] it lacks.
    Incomplete(PathBuf, Vec<&'static str>),
    /// No folder holds `cuda_runtime_api.h`.
    None,
}

/// The headers of [`NEEDED`] that `dir` lacks.
pub fn missing(dir: &Path) -> Vec<&'static str> {
    NEEDED
        .into_iter()
        .filter(|h| !dir.join(h).is_file())
        .collect()
}

/// The first complete folder of `candidates`, in order; otherwise the first one that has the
/// runtime's API header, with what it lacks.
pub fn find(candidates: &[PathBuf]) -> Found {
    let mut incomplete = None;
    for dir in candidates {
        if !dir.join(NEEDED[0]).is_file() {
            continue;
        }
        let lacks = missing(dir);
        if lacks.is_empty() {
            return Found::Complete(dir.clone());
        }
        incomplete.get_or_insert((dir.clone(), lacks));
    }
    match incomplete {
        Some((dir, lacks)) => Found::Incomplete(dir, lacks),
        None => Found::None,
    }
}

/// Where to look, in order, for a libtorch whose libraries are in `lib` (`torch/lib` of a wheel):
/// the NVIDIA wheels beside torch, `$CUDA_PATH/include`, `/usr/local/cuda/include`.
pub fn candidates(lib: &Path, cuda_path: Option<&Path>) -> Vec<PathBuf> {
    // torch/lib -> site-packages/nvidia/...
    let site = lib.join("..").join("..");
    let site = site.canonicalize().unwrap_or(site);
    let mut dirs = vec![
        site.join("nvidia").join("cu13").join("include"),
        site.join("nvidia").join("cuda_runtime").join("include"),
    ];
    if let Some(cuda) = cuda_path {
        dirs.push(cuda.join("include"));
    }
    dirs.push(PathBuf::from("/usr/local/cuda/include"));
    dirs
}
