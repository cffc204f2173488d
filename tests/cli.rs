//! The `lenet` command as a user meets it: clear one-line errors for bad input, never a panic.

use std::path::Path;
use std::process::Command;

use common::idx::encode_u8;

fn lenet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(args)
        .env_remove("MNIST_DIR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A data folder with tiny but valid files, then `spoil` applied to it.
fn data_dir(spoil: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let images = encode_u8(&[4, 28, 28], &[0u8; 4 * 784]);
    let labels = encode_u8(&[4], &[1, 2, 3, 4]);
    for (name, bytes) in [
        ("train-images-idx3-ubyte", &images),
        ("train-labels-idx1-ubyte", &labels),
        ("t10k-images-idx3-ubyte", &images),
        ("t10k-labels-idx1-ubyte", &labels),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    spoil(dir.path());
    dir
}

/// Runs `lenet train` on a spoiled folder and checks for a one-line error with `text` in it.
fn check(spoil: impl FnOnce(&Path), text: &str) {
    let dir = data_dir(spoil);
    let path = dir.path().to_str().unwrap();
    let (ok, _, err) = lenet(&["train", "-q", "--epochs", "1", "--data-dir", path]);
    assert!(!ok, "should fail: {err}");
    assert!(err.contains(text), "{err:?} should say {text:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
}

#[test]
fn bad_data_gets_a_clear_error() {
    check(
        |d| std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap(),
        "t10k-labels-idx1-ubyte.gz: missing",
    );
    check(
        |d| {
            std::fs::write(
                d.join("train-labels-idx1-ubyte"),
                encode_u8(&[4], &[1, 2, 10, 4]),
            )
            .unwrap()
        },
        "train-labels-idx1-ubyte: label 10 at index 2",
    );
    check(
        |d| std::fs::write(d.join("train-images-idx3-ubyte"), [0, 0, 8, 3, 0]).unwrap(),
        "train-images-idx3-ubyte: truncated",
    );
    check(
        |d| {
            std::fs::write(
                d.join("t10k-labels-idx1-ubyte"),
                encode_u8(&[3], &[1, 2, 3]),
            )
            .unwrap()
        },
        "3 labels but",
    );
    check(|d| std::fs::remove_dir_all(d).unwrap(), "does not exist");
}

#[test]
fn bad_options_get_a_clear_error() {
    let (ok, _, err) = lenet(&["train", "--model", "lenet9"]);
    assert!(!ok && err.contains("unknown model 'lenet9'"), "{err}");
    let (ok, _, err) = lenet(&["train", "--framework", "keras"]);
    assert!(!ok && err.contains("unknown framework 'keras'"), "{err}");
    let (ok, _, err) = lenet(&["train", "--epochs", "0"]);
    assert!(!ok && err.contains("epochs must be"), "{err}");
    let (ok, _, err) = lenet(&["train", "--device", "tpu"]);
    assert!(!ok && err.contains("unknown device 'tpu'"), "{err}");
}

#[test]
fn cuda_where_there_is_none_is_an_error() {
    if lenet_compare::cuda_available("tch") {
        return; // a machine with a GPU runs it: nothing to refuse
    }
    let dir = data_dir(|_| {});
    let path = dir.path().to_str().unwrap();
    let (ok, _, err) = lenet(&["train", "-q", "--device", "cuda", "--data-dir", path]);
    assert!(!ok);
    assert!(err.contains("CUDA was asked for"), "{err}");
}

#[test]
fn summary_lists_both_models() {
    let (ok, out, _) = lenet(&["summary"]);
    assert!(ok);
    assert!(
        out.contains("total parameters: 61706 in 10 tensors"),
        "{out}"
    );
    assert!(
        out.contains("total parameters: 121994 in 10 tensors"),
        "{out}"
    );
    assert!(
        out.contains("conv3: Conv2d(64, 64, kernel 3x3, padding 0)"),
        "{out}"
    );
}

#[test]
fn a_tiny_run_writes_its_report() {
    let dir = data_dir(|_| {});
    let path = dir.path().to_str().unwrap();
    let report = dir.path().join("report.json");
    let (ok, out, err) = lenet(&[
        "train",
        "-q",
        "--epochs",
        "2",
        "--data-dir",
        path,
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("test accuracy"), "{out}");
    let r = common::RunReport::read(&report).unwrap();
    assert!(r.succeeded());
    assert_eq!(r.epochs.len(), 2);
    assert_eq!(r.train_examples, 4);
    assert_eq!(r.backend.unwrap().framework, "tch");
}

#[test]
fn a_saved_model_evaluates_in_other_frameworks() {
    let dir = data_dir(|_| {});
    let path = dir.path().to_str().unwrap();
    let model = dir.path().join("model.safetensors");
    let (ok, _, err) = lenet(&[
        "train",
        "-q",
        "--epochs",
        "1",
        "--model",
        "lenet3",
        "--data-dir",
        path,
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = lenet(&[
        "eval",
        "--load",
        model.to_str().unwrap(),
        "--framework",
        "tch,burn",
        "--device",
        "cpu",
        "--data-dir",
        path,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("(lenet3, trained with tch)"), "{out}");
    let accuracies: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once("test accuracy ").map(|(_, a)| a))
        .collect();
    assert_eq!(accuracies.len(), 2, "{out}");
    assert_eq!(accuracies[0], accuracies[1], "{out}");
}

#[test]
fn bad_model_files_get_a_clear_error() {
    let dir = data_dir(|_| {});
    let path = dir.path().to_str().unwrap();
    let bad = dir.path().join("bad.safetensors");
    let eval = |file: &Path| {
        let (ok, _, err) = lenet(&["eval", "--load", file.to_str().unwrap(), "--data-dir", path]);
        assert!(!ok, "should fail: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
        err
    };
    std::fs::write(&bad, b"not a model").unwrap();
    let err = eval(&bad);
    assert!(
        err.contains("bad.safetensors: not a safetensors file"),
        "{err}"
    );
    let mut weights = common::Weights::init(&common::ModelKind::LeNet2.spec(), 0);
    weights.tensors.remove("fc3.bias");
    std::fs::write(&bad, weights.to_safetensors(&Vec::new(), None).unwrap()).unwrap();
    let err = eval(&bad);
    assert!(err.contains("fit neither model"), "{err}");
    assert!(err.contains("no tensor named fc3.bias"), "{err}");
    let err = eval(&dir.path().join("absent.safetensors"));
    assert!(err.contains("cannot read"), "{err}");
    let (ok, _, err) = lenet(&[
        "train",
        "--save",
        "/nonexistent/folder/model.safetensors",
        "--data-dir",
        path,
    ]);
    assert!(
        !ok && err.contains("the folder /nonexistent/folder does not exist"),
        "{err}"
    );
}
