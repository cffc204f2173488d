//! What several test targets share: finding MNIST and the Python rows' interpreter, plan files,
//! and reading the defaults table's cells. Each target uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use common::framework::FrameworkDefaults;
use common::Weights;

/// MNIST's folder as an absolute path (`MNIST_DIR`).
pub fn mnist_dir() -> PathBuf {
    let dir = std::env::var_os("MNIST_DIR").expect("these tests need MNIST_DIR");
    std::path::absolute(PathBuf::from(dir)).unwrap()
}

/// The Python of the Python rows: `LENET_PYTHON` (set by `cargo xtask test`), else the virtual
/// environment that holds the libtorch in `LIBTORCH`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LENET_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    // LIBTORCH is VENV/lib/pythonX.Y/site-packages/torch (`cargo xtask setup`).
    let torch = std::env::var_os("LIBTORCH")
        .map(PathBuf::from)
        .and_then(|t| t.canonicalize().ok())
        .expect("set LENET_PYTHON to a python3 with torch and keras (cargo xtask test does)");
    let venv = torch.ancestors().nth(4).expect("LIBTORCH inside a venv");
    venv.join("bin").join("python")
}

/// A file of the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Writes the plan of `model` (its shared weights of `seed` and the batch orders of `epochs`
/// epochs over `examples` examples) into `out` with `lenet plan`.
pub fn plan(out: &Path, model: &str, seed: u64, epochs: u32, examples: usize) {
    let made = Command::new(env!("CARGO_BIN_EXE_lenet"))
        .args(["plan", "--model", model, "--seed", &seed.to_string()])
        .args(["--epochs", &epochs.to_string()])
        .args(["--examples", &examples.to_string()])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// A JSON file, parsed.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON array of numbers.
pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Runs a Python row (`script`, under `python/`) on `plan` on the CPU, with `args` besides the data,
/// the device and `--out` (`DIR/NAME.json`); its process output and its report, when it wrote one.
/// Keras runs on JAX.
pub fn python_row(
    script: &str,
    dir: &Path,
    plan: &Path,
    name: &str,
    args: &[&str],
) -> (std::process::Output, Option<serde_json::Value>) {
    let out = dir.join(format!("{name}.json"));
    let run = Command::new(python())
        .arg(repo(&format!("python/{script}")))
        .arg("--plan")
        .arg(plan)
        .arg("--data-dir")
        .arg(mnist_dir())
        .args(["--device", "cpu"])
        .args(args)
        .arg("--out")
        .arg(&out)
        .env("KERAS_BACKEND", "jax")
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&out)
        .ok()
        .map(|text| serde_json::from_str(&text).unwrap());
    (run, report)
}

/// The largest difference between `got` and tch's logits of the first 64 MNIST test images from
/// `weights`, relative to tch's largest logit.
#[cfg(feature = "tch")]
pub fn tch_logit_error(model: common::ModelKind, weights: &Weights, got: &[f64]) -> f64 {
    let data = common::Mnist::load_dir(common::Dataset::Mnist, &mnist_dir()).unwrap();
    let images = &data.test.normalized_images()[..64 * 784];
    let want = lenet_compare::framework("tch")
        .unwrap()
        .logits(model, weights, images)
        .unwrap();
    assert_eq!(got.len(), want.len(), "{model}: logits");
    let scale = want.iter().fold(0f64, |m, w| m.max(w.abs() as f64));
    got.iter()
        .zip(&want)
        .fold(0f64, |m, (g, w)| m.max((g - *w as f64).abs()))
        / scale
}

/// Runs a Python row on `model` from a plan of `seed` (one epoch over 640 examples) with `args`,
/// insists that it succeeded, and returns its report, when it wrote one.
#[cfg(feature = "tch")]
fn planned_python_run(
    script: &str,
    dir: &Path,
    model: common::ModelKind,
    seed: u64,
    args: &[&str],
) -> Option<serde_json::Value> {
    let plan = dir.join(format!("{model}.plan.safetensors"));
    self::plan(&plan, model.name(), seed, 1, 640);
    let args: Vec<&str> = ["--model", model.name()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let (run, report) = python_row(script, dir, &plan, model.name(), &args);
    assert!(
        run.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    report
}

/// A Python row's parity with tch from the shared weights of seed 5 (`script` with `--logits` and
/// `--initial-weights`): the weights it read come back out unchanged, and its logits of the first
/// 64 test images are returned as their largest difference to tch's, relative to tch's largest.
#[cfg(feature = "tch")]
pub fn python_logit_error(script: &str, dir: &Path, model: common::ModelKind) -> f64 {
    let logits = dir.join(format!("{model}-logits.json"));
    let weights = dir.join(format!("{model}-weights.safetensors"));
    planned_python_run(
        script,
        dir,
        model,
        5,
        &[
            "--logits",
            logits.to_str().unwrap(),
            "--initial-weights",
            weights.to_str().unwrap(),
        ],
    );
    let shared = Weights::init(&model.spec(), 5);
    assert_eq!(
        common::weights::ModelFile::read(&weights).unwrap().weights,
        shared,
        "{model} round trip"
    );
    tch_logit_error(model, &shared, &floats(&json(&logits)["logits"]))
}

/// A Python row's 20 Adam steps of batch 32 from the shared weights of seed 0 in the plan's order
/// (640 examples, one epoch) beside tch's: (its step losses, tch's, its report). Checked here for
/// every row: 20 steps, the first (before any update) within 1e-6 of tch's, the last below the
/// first, and the epoch's loss the mean of the steps'.
#[cfg(feature = "tch")]
pub fn python_steps(
    script: &str,
    dir: &Path,
    model: common::ModelKind,
) -> (Vec<f64>, Vec<f64>, serde_json::Value) {
    let steps = dir.join(format!("{model}-steps.json"));
    let report = planned_python_run(
        script,
        dir,
        model,
        0,
        &[
            "--limit",
            "640",
            "--epochs",
            "1",
            "--step-losses",
            steps.to_str().unwrap(),
        ],
    );
    let got = floats(&json(&steps)["1"]);
    assert_eq!(got.len(), 20, "{model}: {got:?}");
    let tch = tch_steps(model);
    assert!(
        (got[0] - tch[0]).abs() <= 1e-6 * tch[0],
        "{model}: first step {} against tch's {}",
        got[0],
        tch[0]
    );
    assert!(got[19] < got[0], "{model}: the steps learn ({got:?})");
    let report = report.expect("the run writes its report");
    let epoch = report["epochs"][0]["train_loss"].as_f64().unwrap();
    let mean = got.iter().sum::<f64>() / 20.0;
    assert!(
        (epoch - mean).abs() < 1e-5,
        "{model}: {epoch} against {mean}"
    );
    (got, tch, report)
}

/// tch's losses of 20 Adam steps of batch 32 from the weights of seed 0, in the seed's order (the
/// plan's of seed 0 over 640 examples).
#[cfg(feature = "tch")]
pub fn tch_steps(model: common::ModelKind) -> Vec<f64> {
    use common::harness::{DeviceRequest, RunSpec};
    let mut data = common::Mnist::load_dir(common::Dataset::Mnist, &mnist_dir()).unwrap();
    data.limit(640);
    let spec = RunSpec {
        device: DeviceRequest::Cpu,
        epochs: 1,
        limit: Some(640),
        seed: 0,
        ..RunSpec::recipe("tch", model)
    };
    let mut trainer = lenet_compare::framework("tch")
        .unwrap()
        .trainer(&spec, &data, &Weights::init(&model.spec(), 0))
        .unwrap();
    common::order::epoch_order(0, 1, 640)
        .chunks(32)
        .map(|b| trainer.train_epoch(b, &mut |_| {}).unwrap().mean_loss())
        .collect()
}

/// What a cell of the defaults table says a tensor is drawn from, read from its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    Zeros,
    /// Uniform in ±bound.
    Uniform(f32),
    /// Normal with this standard deviation.
    Normal(f32),
}

/// A tensor's fans: inputs x kernel area, outputs x kernel area, input channels.
#[derive(Debug, Clone, Copy)]
pub struct Fans {
    pub fan_in: f32,
    pub fan_out: f32,
    pub in_channels: f32,
}

/// The tensors of LeNet3 that the defaults checks look at, with their fans, and whether each is a
/// bias: conv2 (32 -> 64 channels, 3x3) and fc1 (1,024 -> 64).
pub const LENET3_FANS: [(&str, Fans, bool); 4] = {
    let conv2 = Fans {
        fan_in: 288.0,
        fan_out: 576.0,
        in_channels: 32.0,
    };
    let fc1 = Fans {
        fan_in: 1024.0,
        fan_out: 64.0,
        in_channels: 1024.0,
    };
    [
        ("conv2.weight", conv2, false),
        ("conv2.bias", conv2, true),
        ("fc1.weight", fc1, false),
        ("fc1.bias", fc1, true),
    ]
};

/// Reads a cell such as "uniform ±√6/√fan_in (...)", "uniform ±√6/√(fan_in+fan_out) (...)",
/// "normal, sd √2/√inputs (...)" or "zeros", for a tensor with these fans.
pub fn draw(cell: &str, fans: Fans) -> Draw {
    if cell.starts_with("zeros") {
        return Draw::Zeros;
    }
    let (kind, rest) = if let Some(rest) = cell.strip_prefix("uniform ±") {
        ("uniform", rest)
    } else if let Some(rest) = cell.strip_prefix("normal, sd ") {
        ("normal", rest)
    } else {
        panic!("cannot read the defaults cell '{cell}'");
    };
    let formula = rest.split_whitespace().next().unwrap_or("");
    let (numerator, denominator) = formula
        .split_once('/')
        .unwrap_or_else(|| panic!("cannot read the defaults cell '{cell}'"));
    let numerator = match numerator {
        "1" => 1.0,
        "√2" => 2f32.sqrt(),
        "√6" => 6f32.sqrt(),
        other => panic!("cannot read '{other}' in the defaults cell '{cell}'"),
    };
    let over = match denominator {
        "√fan_in" | "√inputs" => fans.fan_in,
        "√(fan_in+fan_out)" => fans.fan_in + fans.fan_out,
        "√in_channels" => fans.in_channels,
        other => panic!("cannot read '{other}' in the defaults cell '{cell}'"),
    };
    let scale = numerator / over.sqrt();
    if kind == "uniform" {
        Draw::Uniform(scale)
    } else {
        Draw::Normal(scale)
    }
}

/// Largest magnitude and standard deviation of a tensor's values.
pub fn spread(values: &[f32]) -> (f32, f32) {
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    (values.iter().fold(0f32, |m, v| m.max(v.abs())), sd)
}

/// LeNet3 weights `w` drawn as `framework`'s row of the defaults table says: conv2 (fan_in 32 x 3 x
/// 3 = 288, fan_out 64 x 3 x 3 = 576, 32 input channels) and fc1 (1,024 inputs, 64 outputs), each
/// weight's largest magnitude near the bound of a uniform draw, or its spread near the standard
/// deviation of a normal one.
pub fn follows_the_defaults(framework: &str, d: &FrameworkDefaults, w: &Weights) {
    let near = |got: f32, want: f32| (got / want - 1.0).abs() < 0.1;
    for (tensor, fans, is_bias) in LENET3_FANS {
        let cell = match (tensor.starts_with("conv"), is_bias) {
            (true, false) => &d.conv_weight,
            (true, true) => &d.conv_bias,
            (false, false) => &d.linear_weight,
            (false, true) => &d.linear_bias,
        };
        let (max, sd) = spread(&w.tensors[tensor].data);
        let what = format!("{framework} {tensor}: max {max}, sd {sd}, table '{cell}'");
        match draw(cell, fans) {
            Draw::Zeros => assert_eq!(max, 0.0, "{what}"),
            // 64 bias values reach past half their bound but not always within 10% of it.
            Draw::Uniform(b) if is_bias => assert!(max <= b * 1.0001 && max > b / 2.0, "{what}"),
            Draw::Uniform(b) => assert!(max <= b * 1.0001 && near(max, b), "{what}"),
            Draw::Normal(s) => assert!(near(sd, s), "{what}"),
        }
    }
}
