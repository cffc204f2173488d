//! Links the `lenet` binary, the tests and the benches to libtorch so that they find it at run time
//! and really load its CUDA part.
//!
//! rustc links with `--as-needed`, which drops `libtorch_cuda` because no symbol of it is referenced
//! directly; CUDA would then silently be unavailable. It is re-added without `--as-needed`, and an
//! rpath to the libtorch folder that torch-sys found spares users a hand-set `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = std::path::PathBuf::from(lib);
    let lib = lib.canonicalize().unwrap_or(lib);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--pop-state");
    }
}
