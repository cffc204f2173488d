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
    common::mnist::write_dir(dir.path(), &[0u8; 4 * 784], &[1, 2, 3, 4]).unwrap();
    spoil(dir.path());
    dir
}

/// Runs `lenet train -q --data-dir DIR ARGS` on a folder of tiny files spoiled by `spoil` (`DIR` in
/// an argument becomes the folder's path) and checks that it fails with a clear error:
/// its first line holds `expected`, there is no panic, and our own errors are one line.
fn check(args: &[&str], spoil: impl FnOnce(&Path), expected: &str) {
    let dir = data_dir(spoil);
    let path = dir.path().to_str().unwrap();
    let args: Vec<String> = args.iter().map(|a| a.replace("DIR", path)).collect();
    let mut all = vec!["train", "-q", "--data-dir", path];
    all.extend(args.iter().map(String::as_str));
    let (ok, _, err) = lenet(&all);
    assert!(!ok, "{args:?} should fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains(expected),
        "{args:?}: {err:?} should say {expected:?}"
    );
    // clap adds a hint line ("For more information, try '--help'") to the errors it reports.
    if !err.contains("--help") {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

const IMAGES: &str = "train-images-idx3-ubyte";
const LABELS: &str = "train-labels-idx1-ubyte";

#[test]
fn bad_data_gets_a_clear_error() {
    let images = encode_u8(&[4, 28, 28], &[0u8; 4 * 784]);
    check(
        &[],
        |d| std::fs::remove_dir_all(d).unwrap(),
        "--data-dir does not exist",
    );
    check(
        &[],
        |d| std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap(),
        "t10k-labels-idx1-ubyte.gz: missing",
    );
    check(
        &[],
        |d| write(d, IMAGES, &[]),
        "train-images-idx3-ubyte: empty file",
    );
    check(
        &[],
        |d| write(d, IMAGES, &images[..1000]),
        "train-images-idx3-ubyte: truncated: 984 of the 3136 data bytes",
    );
    check(
        &[],
        |d| write(d, IMAGES, &images[..7]),
        "train-images-idx3-ubyte: truncated: the header ends",
    );
    check(
        &[],
        |d| write(d, IMAGES, &[&images[..], &[0]].concat()),
        "more data than dimensions",
    );
    check(
        &[],
        |d| {
            std::fs::remove_file(d.join(IMAGES)).unwrap();
            write(d, "train-images-idx3-ubyte.gz", &images)
        },
        "not a gzip file",
    );
    check(
        &[],
        |d| {
            std::fs::remove_file(d.join(IMAGES)).unwrap();
            let z = gz(&images);
            write(d, "train-images-idx3-ubyte.gz", &z[..z.len() / 2])
        },
        "truncated",
    );
    check(
        &[],
        |d| write(d, IMAGES, &[&[8u8, 8][..], &images[2..]].concat()),
        "wrong magic number 0x08080803",
    );
    check(
        &[],
        |d| write(d, IMAGES, &[&[0u8, 0, 0x0d][..], &images[3..]].concat()),
        "element type 0x0d (32-bit float)",
    );
    check(
        &[],
        |d| write(d, IMAGES, &encode_u8(&[4, 27, 27], &[0u8; 4 * 729])),
        "dimensions [4, 27, 27], expected [count, 28, 28]",
    );
    check(
        &[],
        |d| {
            write(d, IMAGES, &encode_u8(&[0, 28, 28], &[]));
            write(d, LABELS, &encode_u8(&[0], &[]))
        },
        "holds no images",
    );
    check(
        &[],
        |d| write(d, LABELS, &encode_u8(&[4, 1], &[1, 2, 3, 4])),
        "dimensions [4, 1], expected [count]",
    );
    check(
        &[],
        |d| write(d, "t10k-labels-idx1-ubyte", &encode_u8(&[3], &[1, 2, 3])),
        "3 labels but",
    );
    check(
        &[],
        |d| write(d, LABELS, &encode_u8(&[4], &[1, 2, 10, 4])),
        "train-labels-idx1-ubyte: label 10 at index 2 is outside 0..9",
    );
}

#[test]
fn bad_options_get_a_clear_error() {
    let keep = |_: &Path| {};
    check(&["--framework", "flax"], keep, "unknown framework 'flax'");
    check(
        &["--framework", "keras"],
        keep,
        "keras runs in Python (python/keras_reference.py), from a plan file",
    );
    check(&["--model", "lenet9"], keep, "unknown model 'lenet9'");
    check(&["--dataset", "cifar"], keep, "unknown dataset 'cifar'");
    check(&["--device", "tpu"], keep, "unknown device 'tpu'");
    check(&["--init", "zeros"], keep, "unknown init 'zeros'");
    check(&["--epochs", "0"], keep, "epochs must be 1 to 10000, not 0");
    check(
        &["--epochs", "4000000000"],
        keep,
        "epochs must be 1 to 10000",
    );
    check(&["--epochs=-1"], keep, "invalid value '-1' for '--epochs");
    check(
        &["--batch-size", "0"],
        keep,
        "batch size must be 1 to 65536, not 0",
    );
    check(
        &["--batch-size", "1000000000"],
        keep,
        "batch size must be 1 to 65536",
    );
    check(&["--limit", "0"], keep, "image limit must be at least 1");
    check(
        &["--limit", "1000000000000"],
        keep,
        "image limit 1000000000000 must be 1 to 4",
    );
    check(&["--threads", "0"], keep, "threads must be 1 to 4096");
    check(
        &["--learning-rate=-1"],
        keep,
        "learning rate must be positive",
    );
    check(
        &["--learning-rate", "NaN"],
        keep,
        "learning rate must be positive",
    );
    check(
        &["--out", "DIR/train-images-idx3-ubyte/r.json"],
        keep,
        "train-images-idx3-ubyte is a file, not a folder",
    );
    check(
        &["--out", "DIR/absent/r.json"],
        keep,
        "absent does not exist",
    );
    check(&["--out", "DIR"], keep, "it is a folder");
    check(
        &["--save", "/nonexistent/folder/m.safetensors"],
        keep,
        "the folder /nonexistent/folder does not exist",
    );
    check(
        &["--kernels", "DIR/liblenet_kernels.so"],
        keep,
        "liblenet_kernels.so: no such file (the kernel counter's library",
    );
}

/// A kernel pass where no CUDA is says so in its report, never zeros: every framework, on the CPU
/// (the counter is not even loaded there) and on `--device auto` without a GPU (it cannot record:
/// a file that is no library, or CUPTI without a driver).
#[test]
fn a_kernel_pass_without_cuda_measures_nothing_and_says_so() {
    let dir = data_dir(|_| {});
    let path = dir.path().to_str().unwrap();
    // Any file: on the CPU it is never loaded; elsewhere loading it fails, and the report says why.
    let counter = dir.path().join("train-labels-idx1-ubyte");
    for f in lenet_compare::FRAMEWORKS {
        for device in ["cpu", "auto"] {
            let report = dir.path().join(format!("{}-{device}.json", f.name()));
            let (ok, _, err) = lenet(&[
                "train",
                "-q",
                "--framework",
                f.name(),
                "--device",
                device,
                "--data-dir",
                path,
                "--epochs",
                "1",
                "--kernels",
                counter.to_str().unwrap(),
                "--out",
                report.to_str().unwrap(),
            ]);
            assert!(ok, "{} {device}: {err}", f.name());
            let r = reports::RunReport::read(&report).unwrap();
            assert!(r.succeeded(), "{:?}", r.failure);
            let pass = r
                .kernel_pass
                .expect("a kernel pass's report says what it measured");
            assert!(!pass.measured);
            let note = pass.note.unwrap();
            assert!(
                note.starts_with("no device activity measured: "),
                "{} {device}: {note}",
                f.name()
            );
            if device == "cpu" {
                assert_eq!(
                    note,
                    "no device activity measured: the run trained on the CPU"
                );
            }
            assert!(r.epochs.iter().all(|e| e.device_activity.is_none()));
        }
    }
}

#[test]
fn cuda_where_a_framework_has_none_is_an_error() {
    for framework in lenet_compare::FRAMEWORKS {
        if !framework.cuda_available() {
            // Never a silent CPU run.
            check(
                &["--framework", framework.name(), "--device", "cuda"],
                |_| {},
                "CUDA was asked for",
            );
        }
    }
}

/// Serves `body` to every request on the loopback interface; returns the base URL.
fn serve(body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    base
}

/// `lenet train` with no data folder, so that it downloads into an empty cache from `mirror`:
/// it must fail with `expected` and leave no file in the cache.
fn check_download(mirror: &str, expected: &str) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(["train", "-q", "--epochs", "1"])
        .env_remove("MNIST_DIR")
        .env("XDG_CACHE_HOME", cache.path())
        .env("MNIST_MIRROR", mirror)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains(expected), "{err:?} should say {expected:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    let left: Vec<_> = walk(cache.path());
    assert!(left.is_empty(), "the cache should hold no file: {left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn failed_downloads_get_a_clear_error_and_leave_nothing() {
    // Nothing listens on port 9 of the loopback interface.
    check_download("http://127.0.0.1:9/mnist", "could not be downloaded");
    // A valid gzip file whose content is not MNIST's.
    check_download(
        &serve(gz(&[0u8; 1000])),
        "decompressed size 1000 bytes, expected",
    );
    check_download(
        &serve(b"<html>not found</html>".to_vec()),
        "not a valid gzip download",
    );
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
    let r = reports::RunReport::read(&report).unwrap();
    assert!(r.succeeded());
    assert_eq!(r.epochs.len(), 2);
    assert_eq!(r.train_examples, 4);
    // A timed run is no kernel pass.
    assert!(r.kernel_pass.is_none());
    assert!(r.epochs.iter().all(|e| e.device_activity.is_none()));
    assert_eq!(
        r.backend.unwrap().framework,
        lenet_compare::default_framework()
    );
}

/// A report names no path of the machine it was written on: run from a temporary folder with
/// absolute paths (the binary's, the data's, the report's and the model file's), every path in the
/// report is relative to that folder or a file name alone.
#[test]
fn a_report_names_no_local_path() {
    let work = tempfile::tempdir().unwrap();
    let data = data_dir(|_| {});
    let report = work.path().join("out").join("report.json");
    std::fs::create_dir(work.path().join("out")).unwrap();
    let model = work.path().join("m.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .current_dir(work.path())
        .args(["train", "-q", "--epochs", "1", "--data-dir"])
        .arg(data.path())
        .arg("--out")
        .arg(&report)
        .arg(format!("--save={}", model.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let r = reports::RunReport::read(&report).unwrap();
    let data_name = data.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(
        r.environment.command,
        [
            "lenet",
            "train",
            "-q",
            "--epochs",
            "1",
            "--data-dir",
            data_name,
            "--out",
            "out/report.json",
            "--save=m.safetensors",
        ]
    );
    for local in [
        work.path().to_str().unwrap(),
        data.path().to_str().unwrap(),
        env!("CARGO_BIN_EXE_lenet"),
        env!("CARGO_MANIFEST_DIR"),
    ] {
        assert!(!text.contains(local), "the report names {local}:\n{text}");
    }
}

/// `RunSpec::to_args` is the one way a run's settings reach a child process: what it writes parses
/// back, through `lenet train`'s own options, to the same run, every field included.
#[test]
fn run_specs_round_trip_through_the_command_line() {
    use clap::Parser;
    use common::harness::{DeviceRequest, InitKind, Profile, RunSpec};
    use common::{Dataset, ModelKind};
    let every_field = RunSpec {
        framework: "burn".into(),
        model: ModelKind::LeNet3,
        dataset: Dataset::FashionMnist,
        init: InitKind::Native,
        device: DeviceRequest::Cuda,
        epochs: 7,
        batch_size: 256,
        learning_rate: 0.1 + 0.2,
        seed: 12_345_678_901,
        limit: Some(500),
        threads: Some(3),
        profile: Profile::Tuned,
    };
    let specs = [
        RunSpec::recipe("tch", ModelKind::LeNet2),
        every_field.clone(),
        RunSpec {
            learning_rate: 1e30,
            device: DeviceRequest::Cpu,
            ..every_field
        },
    ];
    for spec in specs {
        let mut argv = vec!["lenet train".to_string()];
        argv.extend(spec.to_args());
        let parsed = lenet_compare::cli::TrainArgs::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .spec();
        assert_eq!(parsed, spec, "{argv:?}");
    }
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
        "all",
        "--device",
        "cpu",
        "--data-dir",
        path,
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "(lenet3, trained with {})",
            lenet_compare::default_framework()
        )),
        "{out}"
    );
    let accuracies: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once("test accuracy ").map(|(_, a)| a))
        .collect();
    assert_eq!(accuracies.len(), lenet_compare::FRAMEWORKS.len(), "{out}");
    assert!(accuracies.iter().all(|a| *a == accuracies[0]), "{out}");
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
    // Weights that are not finite are named where the file enters, before any framework sees
    // them (candle's ReLU maps NaN to 0 and would report a merely untrained model).
    for (value, word) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let mut file = common::weights::ModelFile {
            model: common::ModelKind::LeNet2,
            weights: common::Weights::init(&common::ModelKind::LeNet2.spec(), 0),
            metadata: Default::default(),
        };
        let conv = file.weights.tensors.get_mut("conv2.weight").unwrap();
        conv.data[7] = value;
        conv.data[9] = value;
        file.write(&bad).unwrap();
        let said = format!(
            "bad.safetensors: tensor conv2.weight holds 2 values that are not finite (the first, at index 7, is {word}): a broken model, not loaded"
        );
        let err = eval(&bad);
        assert!(err.contains(&said), "{err}");
        // Each framework alone says the same: none of them gets to read the file's weights.
        for framework in lenet_compare::FRAMEWORKS {
            let (ok, out, err) = lenet(&[
                "eval",
                "--load",
                bad.to_str().unwrap(),
                "--data-dir",
                path,
                "--framework",
                framework.name(),
            ]);
            assert!(!ok && out.is_empty(), "{}: {out}", framework.name());
            assert!(err.contains(&said), "{}: {err}", framework.name());
        }
    }
}

/// Output into a pipe that is already closed (`lenet frameworks --json | head -0`) ends the
/// command quietly, without a panic.
#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(["frameworks", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// A framework that this build left out is listed as such by `lenet frameworks`, and training with
/// it fails with one line that names its cargo feature; in the default build nothing is left out.
#[test]
fn a_framework_left_out_of_the_build_is_named() {
    let (ok, out, err) = lenet(&["frameworks"]);
    assert!(ok, "{err}");
    let not_built = lenet_compare::not_built();
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("not in this build"))
            .count(),
        not_built.len(),
        "{out}"
    );
    if cfg!(all(feature = "tch", feature = "candle", feature = "burn")) {
        assert!(not_built.is_empty());
    }
    for n in &not_built {
        let (ok, _, err) = lenet(&["train", "--framework", &n.name, "--epochs", "1"]);
        assert!(!ok);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
        assert!(
            err.contains(&format!("{} is not in this build", n.name))
                && err.contains(&format!("`{}`", n.feature)),
            "{err}"
        );
    }
}
