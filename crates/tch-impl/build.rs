//! Compiles the tuned profile's C++ over the libtorch that torch-sys found (`src/shim/`): fused
//! Adam always, and CUDA graphs where that libtorch has CUDA and the CUDA runtime's headers are
//! there, complete (the PyPI wheels' `nvidia/cu13/include` once `cargo xtask setup --cuda` has added
//! the `crt/` headers, `$CUDA_PATH/include` or `/usr/local/cuda`; see `build/cuda_headers.rs`).
//! The Rust side sees `cfg(lenet_tch_shim)` and `cfg(lenet_tch_graphs)`; without them the tuned
//! profile reports those settings as fallen back, and everything else builds as before.
//! `LENET_TCH_GRAPHS=off` leaves the CUDA graphs out where the headers are there (the build CI
//! lints first, on a machine without them).

use std::path::PathBuf;

#[path = "build/cuda_headers.rs"]
mod cuda_headers;

use cuda_headers::Found;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lenet_tch_shim)");
    println!("cargo::rustc-check-cfg=cfg(lenet_tch_graphs)");
    println!("cargo:rerun-if-changed=src/shim");
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CUDA_PATH");
    println!("cargo:rerun-if-env-changed=LENET_TCH_GRAPHS");
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
    // The build a user without the CUDA headers gets, on a machine that has them (to lint it).
    if std::env::var_os("LENET_TCH_GRAPHS").is_some_and(|v| v == "off") {
        println!("cargo:warning=LENET_TCH_GRAPHS=off: the tuned profile's CUDA graphs are left out of this build");
        return;
    }
    let cuda_path = std::env::var_os("CUDA_PATH").map(PathBuf::from);
    let candidates = cuda_headers::candidates(&lib, cuda_path.as_deref());
    // Installing the missing headers later (`cargo xtask setup --cuda`) runs this script again.
    for dir in candidates.iter().filter(|d| d.is_dir()) {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let cuda_include = match cuda_headers::find(&candidates) {
        Found::Complete(dir) => dir,
        Found::Incomplete(dir, lacks) => {
            println!(
                "cargo:warning=the CUDA headers in {} lack {} (`cargo xtask setup --cuda` installs them): the tuned profile's CUDA graphs are left out of this build",
                dir.display(),
                lacks.join(", ")
            );
            return;
        }
        Found::None => {
            println!("cargo:warning=libtorch has CUDA but no cuda_runtime_api.h was found (set CUDA_PATH, or run `cargo xtask setup --cuda`): the tuned profile's CUDA graphs are left out of this build");
            return;
        }
    };
    build()
        .include(cuda_include)
        .file("src/shim/cuda_graph.cpp")
        .compile("lenet_tch_cuda_graph");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-cfg=lenet_tch_graphs");
}
