//! build.rs's choice of CUDA headers for the CUDA-graph shim: a folder with `cuda_runtime_api.h`
//! but without the `crt/` headers (PyTorch's wheel alone) is not used, and says what it lacks.

#[path = "../build/cuda_headers.rs"]
#[allow(dead_code)]
mod cuda_headers;

use cuda_headers::{find, missing, Found, NEEDED};
use std::path::Path;

fn touch(dir: &Path, header: &str) {
    let path = dir.join(header);
    std::fs::create_dir_all(path.parent().expect("header path has a parent")).expect("mkdir");
    std::fs::write(path, "/* test */\n").expect("write header");
}

#[test]
fn runtime_headers_without_crt_are_incomplete() {
    let wheel = tempfile::tempdir().expect("tempdir");
    touch(wheel.path(), "cuda_runtime_api.h");
    touch(wheel.path(), "cuda_runtime.h");
    assert_eq!(
        missing(wheel.path()),
        ["crt/host_config.h", "crt/host_defines.h"]
    );
    assert_eq!(
        find(&[wheel.path().to_path_buf()]),
        Found::Incomplete(
            wheel.path().to_path_buf(),
            vec!["crt/host_config.h", "crt/host_defines.h"]
        )
    );
}

#[test]
fn complete_folder_is_chosen_after_an_incomplete_one() {
    let wheel = tempfile::tempdir().expect("tempdir");
    touch(wheel.path(), "cuda_runtime_api.h");
    let toolkit = tempfile::tempdir().expect("tempdir");
    for h in NEEDED {
        touch(toolkit.path(), h);
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let candidates = [
        empty.path().to_path_buf(),
        wheel.path().to_path_buf(),
        toolkit.path().to_path_buf(),
    ];
    assert_eq!(
        find(&candidates),
        Found::Complete(toolkit.path().to_path_buf())
    );
    assert!(missing(toolkit.path()).is_empty());
}

#[test]
fn no_runtime_header_anywhere_is_none() {
    let empty = tempfile::tempdir().expect("tempdir");
    // crt/ alone, without the runtime's API header, is not a candidate.
    touch(empty.path(), "crt/host_config.h");
    assert_eq!(find(&[empty.path().to_path_buf()]), Found::None);
    assert_eq!(find(&[]), Found::None);
}
