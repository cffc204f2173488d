//! Serving a trained model (`lenet serve`): every row's predictor answers as the plain-Rust
//! reference does, and the command measures what it says (its cold starts load the model) and
//! meets bad input with one-line errors.

mod support;

use std::path::Path;
use std::process::Command;

use common::harness::DeviceRequest;
use common::serve::{classes, CLASSES, PIXELS};
use common::weights::ModelFile;
use common::{ModelKind, Weights};
use reports::serve::ServeReport;

/// `n` images of values in [-1, 1], as normalised pixels are, from a fixed generator.
fn images(n: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n * PIXELS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The gap between the largest logit of each image and the next.
fn margins(logits: &[f32]) -> Vec<f32> {
    logits
        .chunks(CLASSES)
        .map(|row| {
            let mut sorted = row.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            sorted[0] - sorted[1]
        })
        .collect()
}

/// Each row's predictor on the CPU gives the reference's logits (to 1e-4) and its classes (the
/// same class for every image whose two largest logits are further apart than that), one image at
/// a time as in a batch, for both models.
#[test]
fn every_row_predicts_as_the_reference_does() {
    let pixels = images(32);
    for model in ModelKind::ALL {
        let weights = Weights::init(&model.spec(), 3);
        let expected = common::reference::forward(&model.spec(), &weights, &pixels).unwrap();
        let near_ties = margins(&expected).iter().filter(|&&m| m < 1e-4).count();
        assert_eq!(
            near_ties, 0,
            "{model}: the images should decide the classes"
        );
        for framework in lenet_compare::FRAMEWORKS {
            let name = framework.name();
            let mut predictor = framework
                .predictor(model, &weights, DeviceRequest::Cpu, Some(1))
                .unwrap();
            assert_eq!(predictor.device(), common::DeviceKind::Cpu, "{name}");
            assert!(!predictor.version().is_empty(), "{name}");
            let batch = predictor.logits(&pixels).unwrap();
            let error = batch
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(error < 1e-4, "{name} {model}: logits off by {error}");
            assert_eq!(classes(&batch), classes(&expected), "{name} {model}");
            let one_by_one: Vec<f32> = pixels
                .chunks(PIXELS)
                .flat_map(|image| predictor.logits(image).unwrap())
                .collect();
            let error = one_by_one
                .iter()
                .zip(&batch)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(error < 1e-5, "{name} {model}: batch 1 differs by {error}");
            let e = predictor.logits(&pixels[..PIXELS - 1]).unwrap_err();
            assert!(e.to_string().contains("whole images"), "{name}: {e}");
        }
    }
}

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

/// A folder with a tiny dataset (8 test images) and a LeNet2 model file of seed 0.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..8 * PIXELS).map(|i| (i * 7 % 256) as u8).collect();
    common::mnist::write_dir(dir.path(), &pixels, &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    ModelFile {
        model: ModelKind::LeNet2,
        weights: Weights::init(&ModelKind::LeNet2.spec(), 0),
        metadata: [("framework".to_string(), "test".to_string())].into(),
    }
    .write(&dir.path().join("model.safetensors"))
    .unwrap();
    dir
}

/// `lenet serve --device cpu` with the tiny folder's data and model (unless `args` names another
/// model), then `args`.
fn serve(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let data = dir.to_str().unwrap();
    let model = dir.join("model.safetensors");
    let mut all = vec!["serve", "--device", "cpu", "--data-dir", data];
    if !args.contains(&"--load") {
        all.extend(["--load", model.to_str().unwrap()]);
    }
    all.extend(args);
    lenet(&all)
}

/// A serving report holds what was measured: the cold starts asked for, each at least as long as
/// the model's load in the measuring process (a cold start loads the model), the latency of the
/// single images, each batch size, and a class for every test image.
#[test]
fn a_serving_run_writes_its_report() {
    let dir = folder();
    let out = dir.path().join("serve.json");
    let (ok, stdout, err) = serve(
        dir.path(),
        &[
            "--latency-images",
            "20",
            "--warmup",
            "2",
            "--batch-sizes",
            "4,16",
            "--throughput-seconds",
            "0",
            "--cold-starts",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("batch 1 p50"), "{stdout}");
    let report = ServeReport::read(&out).unwrap();
    assert_eq!(report.framework, lenet_compare::default_framework());
    assert_eq!(report.model_file, "model.safetensors");
    assert_eq!(report.model_metadata["framework"], "test");
    assert_eq!(report.cold_start_seconds.len(), 2);
    for cold in &report.cold_start_seconds {
        assert!(
            *cold >= report.load_seconds,
            "{cold} < {}",
            report.load_seconds
        );
    }
    assert_eq!(report.batch1.count, 20);
    assert!(report.batch1.p50 <= report.batch1.p99);
    let batches: Vec<usize> = report.throughput.iter().map(|t| t.batch).collect();
    assert_eq!(batches, [4, 16]);
    assert_eq!((report.test_images, report.classes.len()), (8, 8));
    assert_eq!(report.logits.len(), 8 * CLASSES);
    assert!((0.0..=1.0).contains(&report.accuracy));
    assert_eq!(
        report.file_name(),
        format!("serve-{}-lenet2-tall.json", report.framework)
    );
}

/// A short measurement, for the tests that compare rows.
const SHORT: [&str; 8] = [
    "--latency-images",
    "5",
    "--warmup",
    "1",
    "--batch-sizes",
    "4",
    "--throughput-seconds",
    "0",
];

/// The default Rust row's report of the tiny folder, measured short (no cold starts), in
/// `dir/rust.json`: what the other rows are held to.
fn rust_report(dir: &Path) -> std::path::PathBuf {
    let rust = dir.join("rust.json");
    let mut args = SHORT.to_vec();
    args.extend(["--cold-starts", "0", "--out", rust.to_str().unwrap()]);
    let (ok, _, err) = serve(dir, &args);
    assert!(ok, "{err}");
    rust
}

/// The Python rows (every row `serve.py --list-rows` names: PyTorch eager and compiled, ONNX
/// Runtime on PyTorch's export, Keras) predict the classes of the Rust rows' report from the same
/// model file, their logits within 1e-4, and their reports have the fields of the Rust rows'
/// (`reports::serve::ServeReport`), no more and no fewer.
#[test]
fn the_python_rows_predict_as_the_rust_rows_do() {
    let dir = folder();
    let rust = rust_report(dir.path());
    let expected = ServeReport::read(&rust).unwrap();
    let keys = |path: &Path| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.retain(|k| k != "notes");
        k.sort();
        k
    };
    let listed = Command::new(support::python())
        .arg(support::repo("python/serve.py"))
        .arg("--list-rows")
        .output()
        .unwrap();
    assert!(listed.status.success());
    let rows = String::from_utf8(listed.stdout).unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    for row in ["pytorch", "pytorch-compile", "onnxruntime", "keras"] {
        assert!(rows.contains(&row), "serve.py --list-rows: {rows:?}");
    }
    for row in rows {
        let out = dir.path().join(format!("{row}.json"));
        let made = Command::new(support::python())
            .arg(support::repo("python/serve.py"))
            .args(["--row", row, "--device", "cpu", "--load"])
            .arg(dir.path().join("model.safetensors"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(SHORT)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{row}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let got = ServeReport::read(&out).unwrap();
        assert_eq!(keys(&out), keys(&rust), "{row}: the report's fields");
        assert_eq!(got.framework, row);
        assert_eq!(got.differing_classes(&expected), Some(0), "{row}");
        let diff = got.logit_difference(&expected).unwrap();
        assert!(diff < 1e-4, "{row}: logits off by {diff}");
        assert_eq!((got.test_images, got.batch1.count), (8, 5), "{row}");
    }
}

/// A cold start is a new process that loads the model before it answers: one whose model file is
/// missing gives no answer.
#[test]
fn a_cold_start_loads_the_model() {
    let dir = folder();
    let model = dir.path().join("model.safetensors");
    let once = |file: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lenet"));
        cmd.args(["serve", "--once", "--device", "cpu", "--load"])
            .arg(file);
        meters::cold::time_to_first_line(&mut cmd)
    };
    let (seconds, line) = once(&model).unwrap();
    assert!(seconds > 0.0);
    assert!(line.parse::<u8>().is_ok_and(|c| c < 10), "{line}");
    let e = once(&dir.path().join("absent.safetensors")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}

/// Bad input to `lenet serve` is one line that says what is wrong, never a panic.
#[test]
fn bad_serving_options_get_a_clear_error() {
    let dir = folder();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a model").unwrap();
    let cases: [(&[&str], &str); 8] = [
        (
            &["--batch-sizes", "0"],
            "a batch holds at least one image, not 0",
        ),
        (
            &["--latency-images", "0"],
            "at least one single-image prediction",
        ),
        (&["--limit", "0"], "--limit: at least one test image"),
        (&["--limit", "9"], "9"),
        (
            &["--framework", "flax"],
            "unknown row 'flax': this build serves",
        ),
        (&["--load", bad.to_str().unwrap()], "not a safetensors file"),
        (&["--load", "/no/such/model.safetensors"], "cannot read"),
        (
            &["--onnx", "model.onnx"],
            "--onnx: only the ort row serves an exported model",
        ),
    ];
    for (args, expected) in cases {
        let (ok, _, err) = serve(dir.path(), args);
        assert!(!ok, "{args:?} should fail");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err:?}"
        );
        assert!(
            err.contains(expected),
            "{args:?}: {err:?} should say {expected:?}"
        );
    }
}

/// `python/serve.py ARGS --load` the tiny folder's model; its standard output.
#[cfg(feature = "ort")]
fn serve_py(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(support::python())
        .arg(support::repo("python/serve.py"))
        .args(args)
        .arg("--load")
        .arg(dir.join("model.safetensors"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `lenet serve --framework ort` on the tiny folder, with ONNX Runtime's `library` (none: the
/// variable unset), a short measurement and `extra`: whether it succeeded, and its errors.
#[cfg(feature = "ort")]
fn serve_ort(dir: &Path, library: Option<&str>, extra: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lenet"));
    cmd.args([
        "serve",
        "--framework",
        "ort",
        "--device",
        "cpu",
        "--data-dir",
    ])
    .arg(dir)
    .arg("--load")
    .arg(dir.join("model.safetensors"))
    .args(SHORT)
    .args(["--cold-starts", "1"])
    .args(extra)
    .env_remove("ORT_DYLIB_PATH");
    if let Some(l) = library {
        cmd.env("ORT_DYLIB_PATH", l);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

/// The `ort` row serves the model exported by `serve.py --export` with the onnxruntime package's
/// library: the Rust rows' classes, logits within 1e-4, a note of what it served, and a second
/// predictor in the same process; without the library's variable, or without the exported file, a
/// one-line error that says what to do.
#[cfg(feature = "ort")]
#[test]
fn the_ort_row_serves_the_exported_model_as_the_rust_rows_do() {
    let dir = folder();
    let rust = rust_report(dir.path());
    let library = serve_py(dir.path(), &["--ort-library"]);
    // Before the export: no exported file.
    let (ok, err) = serve_ort(dir.path(), Some(&library), &[]);
    assert!(!ok && err.trim_end().lines().count() == 1, "{err}");
    assert!(
        err.contains("no exported model at") && err.contains("--export"),
        "{err}"
    );
    serve_py(dir.path(), &["--export"]);
    // Two predictors in one process share ONNX Runtime's one environment.
    let onnx = dir.path().join("model.onnx");
    for _ in 0..2 {
        onnx_serve::predictor(&onnx, Path::new(&library), Some(1)).unwrap();
    }
    let (ok, err) = serve_ort(dir.path(), None, &[]);
    assert!(!ok && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains("set ORT_DYLIB_PATH"), "{err}");
    let out = dir.path().join("ort.json");
    let (ok, err) = serve_ort(
        dir.path(),
        Some(&library),
        &["--out", out.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let got = ServeReport::read(&out).unwrap();
    let expected = ServeReport::read(&rust).unwrap();
    assert_eq!(got.framework, "ort");
    assert!(
        got.framework_version.starts_with("ort "),
        "{}",
        got.framework_version
    );
    assert_eq!(got.differing_classes(&expected), Some(0));
    let diff = got.logit_difference(&expected).unwrap();
    assert!(diff < 1e-4, "logits off by {diff}");
    assert_eq!(got.cold_start_seconds.len(), 1);
    assert!(
        got.notes[0].starts_with("serves model.onnx"),
        "{:?}",
        got.notes
    );
}
