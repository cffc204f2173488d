//! The PyTorch reference (`python/reference.py`), run as `cargo xtask compare` runs it: from a plan
//! file that `lenet plan` writes, on the CPU. The row every ratio divides by is held to what every
//! row is held to: the same logits as tch from the shared weights, the same 20 steps in the plan's
//! order, and its tuned profile to its idiomatic one. Its Python comes from `LENET_PYTHON` (set by
//! `cargo xtask test`), else the virtual environment that holds the libtorch in `LIBTORCH`.

use std::path::Path;
use std::process::Command;

use common::ModelKind;
use serde_json::Value;
use support::{mnist_dir, python, repo};

mod support;

/// How far PyTorch's loss after each of 20 Adam steps may be from tch's, relative to the loss
/// (absolute below 1): the registry's (`lenet_compare::references`, which says why).
fn tch_tolerance() -> f64 {
    lenet_compare::catalogue()
        .get("pytorch")
        .and_then(|p| p.step_tolerance)
        .expect("PyTorch is held to tch step for step")
}

/// The shared weights load into PyTorch's model unchanged and give tch's logits on 64 test images
/// (within 1e-5 of the largest: the same library), for both models.
#[test]
fn pytorch_logits_match_tch() {
    let dir = tempfile::tempdir().unwrap();
    for model in ModelKind::ALL {
        let err = support::python_logit_error("reference.py", dir.path(), model);
        assert!(err < 1e-5, "{model} logits: relative error {err}");
    }
}

/// 20 Adam steps from the shared weights in the plan's order: each step's loss within
/// `tch_tolerance()` of tch's (and what `support::python_steps` holds every row to). A reference
/// that ignored the plan's batch order fails here: its first step's loss would be another batch's.
#[test]
fn pytorch_steps_follow_tch() {
    let dir = tempfile::tempdir().unwrap();
    for model in ModelKind::ALL {
        let (got, tch, _) = support::python_steps("reference.py", dir.path(), model);
        let worst = got
            .iter()
            .zip(&tch)
            .map(|(g, t)| (g - t).abs() / t.abs().max(1.0))
            .fold(0f64, f64::max);
        eprintln!("{model}: largest relative step difference to tch {worst:e}");
        for (i, (g, t)) in got.iter().zip(&tch).enumerate() {
            assert!(
                (g - t).abs() <= tch_tolerance() * t.abs().max(1.0),
                "{model} step {}: pytorch {g}, tch {t}",
                i + 1
            );
        }
    }
}

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
    let report: reports::RunReport = serde_json::from_value(tuned).unwrap();
    assert_eq!(report.label(), "pytorch (tuned)");
}
