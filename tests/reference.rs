//! The PyTorch reference (`python/reference.py`), run as `cargo xtask compare` runs it: from a plan
//! file that `lenet plan` writes, on the CPU. Its Python comes from `LENET_PYTHON` (set by `cargo
//! xtask test`), else the virtual environment that holds the libtorch in `LIBTORCH`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{mnist_dir, python, repo};

mod support;

/// Runs the reference on the first `limit` images for `epochs` epochs in `profile`; its report.
fn reference(dir: &Path, plan: &Path, limit: usize, epochs: u32, profile: &str) -> Value {
    let out = dir.join(format!("{profile}.json"));
    let script = repo("python/reference.py");
    let run = Command::new(python())
        .arg(script)
        .args(["--plan", plan.to_str().unwrap()])
        .args(["--data-dir", mnist_dir().to_str().unwrap()])
        .args(["--model", "lenet2", "--device", "cpu", "--threads", "1"])
        .args([
            "--limit",
            &limit.to_string(),
            "--epochs",
            &epochs.to_string(),
        ])
        .args(["--profile", profile, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "reference.py --profile {profile}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// The tuned profile (fused Adam on the CPU) trains the same: two epochs of 20 steps from the
/// shared weights in the plan's order give the idiomatic run's losses within 1e-4; the report
/// records the profile and each setting, applied or fallen back, and the idiomatic one none.
#[test]
fn the_tuned_reference_follows_the_idiomatic_one() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.safetensors");
    let (limit, epochs) = (640, 2);
    support::plan(&plan, "lenet2", 0, epochs, limit);
    let idiomatic = reference(dir.path(), &plan, limit, epochs, "idiomatic");
    let tuned = reference(dir.path(), &plan, limit, epochs, "tuned");
    assert_eq!(idiomatic["spec"]["profile"], "idiomatic");
    assert_eq!(tuned["spec"]["profile"], "tuned");
    for e in 0..epochs as usize {
        let want = idiomatic["epochs"][e]["train_loss"].as_f64().unwrap();
        let got = tuned["epochs"][e]["train_loss"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "epoch {}: tuned loss {got}, idiomatic {want}",
            e + 1
        );
    }
    let first = idiomatic["epochs"][0]["train_loss"].as_f64().unwrap();
    let last = idiomatic["epochs"][1]["train_loss"].as_f64().unwrap();
    assert!(last < first, "the steps learn: {first} then {last}");
    assert!(idiomatic["backend"]["tuning"]
        .as_array()
        .is_none_or(Vec::is_empty));
    let tuning = tuned["backend"]["tuning"].as_array().unwrap();
    let setting = |name: &str| {
        tuning
            .iter()
            .find(|t| t["setting"] == name)
            .unwrap_or_else(|| panic!("no {name} in {tuning:?}"))
    };
    assert_eq!(setting("fused Adam")["applied"], true);
    assert_eq!(setting("CUDA graph")["applied"], false);
    // The report is one the Rust side reads.
    let report: results::RunReport = serde_json::from_value(tuned).unwrap();
    assert_eq!(report.label(), "pytorch (tuned)");
}
