//! Compiles the tuned profile's C++ over the libtorch that torch-sys found (`src/shim/`): fused
//! Adam always, and CUDA graphs where that libtorch has CUDA and the CUDA runtime's headers are
//! there (the PyPI wheel's `nvidia/cu13/include`, `$CUDA_PATH/include` or `/usr/local/cuda`).
//! The Rust side sees `cfg(lenet_tch_shim)` and `cfg(lenet_tch_graphs)`; without them the tuned
//! profile reports those settings as fallen back, and everything else builds as before.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lenet_tch_shim)");
    println!("cargo::rustc-check-cfg=cfg(lenet_tch_graphs)");
    println!("cargo:rerun-if-changed=src/shim");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CUDA_PATH");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        println!("cargo:warning=torch-sys named no libtorch folder: the tuned profile's fused Adam and CUDA graphs are left out");
        return;
    };
    let lib = lib.canonicalize().unwrap_or(lib);
    let include = lib.join("..").join("include");
    if !include.join("ATen").join("ATen.h").exists() {
        println!(
            "cargo:warning=no libtorch headers in {}: the tuned profile's fused Adam and CUDA graphs are left out",
            include.display()
        );
        return;
    }
    let build = || {
        let mut b = cc::Build::new();
        b.cpp(true)
            .pic(true)
            .warnings(false)
            .flag("-std=c++17")
            .define("_GLIBCXX_USE_CXX11_ABI", "1")
            .define("GLOG_USE_GLOG_EXPORT", None)
            .include(&include)
            .include(
                include
                    .join("torch")
                    .join("csrc")
                    .join("api")
                    .join("include"),
            );
        b
    };
    build()
        .file("src/shim/fused_adam.cpp")
        .compile("lenet_tch_fused_adam");
    println!("cargo:rustc-cfg=lenet_tch_shim");
    if !lib.join("libtorch_cuda.so").exists() {
        return;
    }
    let Some(cuda_include) = cuda_headers(&lib) else {
        println!("cargo:warning=libtorch has CUDA but no cuda_runtime_api.h was found (set CUDA_PATH): the tuned profile's CUDA graphs are left out");
        return;
    };
    build()
        .include(cuda_include)
        .file("src/shim/cuda_graph.cpp")
        .compile("lenet_tch_cuda_graph");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-cfg=lenet_tch_graphs");
}

/// A folder with the CUDA runtime's headers, which libtorch's CUDA headers include.
fn cuda_headers(lib: &Path) -> Option<PathBuf> {
    // torch/lib -> site-packages/nvidia/...
    let site = lib.join("..").join("..");
    let mut candidates = vec![
        site.join("nvidia").join("cu13").join("include"),
        site.join("nvidia").join("cuda_runtime").join("include"),
    ];
    if let Some(cuda) = std::env::var_os("CUDA_PATH") {
        candidates.push(PathBuf::from(cuda).join("include"));
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates
        .into_iter()
        .find(|d| d.join("cuda_runtime_api.h").exists())
}
