//! The PyTorch reference (`python/reference.py`), run as `cargo xtask compare` runs it: from a plan
//! file that `lenet plan` writes, on the CPU. The row every ratio divides by is held to what every
//! row is held to: the same logits as tch from the shared weights, the same 20 steps in the plan's
//! order, and its tuned profile to its idiomatic one. Its Python comes from `LENET_PYTHON` (set by
//! `cargo xtask test`), else the virtual environment that holds the libtorch in `LIBTORCH`.

use std::path::Path;
use std::process::Command;

use common::weights::ModelFile;
use common::{ModelKind, Weights};
use serde_json::Value;
use support::{floats, json, mnist_dir, python, repo};

mod support;

/// How far PyTorch's loss after each of 20 Adam steps may be from tch's, relative to the loss
/// (absolute below 1): the registry's (`lenet_compare::references`, which says why).
fn tch_tolerance() -> f64 {
    lenet_compare::catalogue()
        .get("pytorch")
        .and_then(|p| p.step_tolerance)
        .expect("PyTorch is held to tch step for step")
}

/// Runs the reference with `args` on `plan`; the run must succeed.
fn pytorch(dir: &Path, plan: &Path, name: &str, args: &[&str]) -> Option<Value> {
    let (run, report) = support::python_row("reference.py", dir, plan, name, args);
    assert!(
        run.status.success(),
        "reference.py {name}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    report
}

/// The shared weights load into PyTorch's model unchanged and give tch's logits on 64 test images
/// (within 1e-5 of the largest: the same library), for both models.
#[test]
fn pytorch_logits_match_tch() {
    let dir = tempfile::tempdir().unwrap();
    for model in ModelKind::ALL {
        let plan = dir.path().join(format!("{model}.plan.safetensors"));
        support::plan(&plan, model.name(), 5, 1, 640);
        let logits = dir.path().join(format!("{model}-logits.json"));
        let weights = dir.path().join(format!("{model}-weights.safetensors"));
        pytorch(
            dir.path(),
            &plan,
            model.name(),
            &[
                "--model",
                model.name(),
                "--logits",
                logits.to_str().unwrap(),
                "--initial-weights",
                weights.to_str().unwrap(),
            ],
        );
        let shared = Weights::init(&model.spec(), 5);
        assert_eq!(
            ModelFile::read(&weights).unwrap().weights,
            shared,
            "{model} round trip"
        );
        let err = support::tch_logit_error(model, &shared, &floats(&json(&logits)["logits"]));
        assert!(err < 1e-5, "{model} logits: relative error {err}");
    }
}

/// 20 Adam steps from the shared weights in the plan's order: each step's loss within
/// `tch_tolerance()` of tch's, the first (before any update) within 1e-6; the epoch's loss is
/// the mean of the steps'. A reference that ignored the plan's batch order fails here: its first
/// step's loss would be another batch's.
#[test]
fn pytorch_steps_follow_tch() {
    let dir = tempfile::tempdir().unwrap();
    for model in ModelKind::ALL {
        let plan = dir.path().join(format!("{model}.plan.safetensors"));
        support::plan(&plan, model.name(), 0, 1, 640);
        let steps = dir.path().join(format!("{model}-steps.json"));
        let report = pytorch(
            dir.path(),
            &plan,
            model.name(),
            &[
                "--model",
                model.name(),
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
        let tch = support::tch_steps(model);
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
        assert!(
            (got[0] - tch[0]).abs() <= 1e-6 * tch[0],
            "{model}: {} {}",
            got[0],
            tch[0]
        );
        assert!(got[19] < got[0], "{model}: the steps learn ({got:?})");
        let epoch = report.unwrap()["epochs"][0]["train_loss"].as_f64().unwrap();
        let mean = got.iter().sum::<f64>() / 20.0;
        assert!(
            (epoch - mean).abs() < 1e-5,
            "{model}: {epoch} against {mean}"
        );
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
