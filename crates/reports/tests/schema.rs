//! One schema for every row: a report the Python rows write (`python/lenet_report.py`, which
//! `lenet_common.py` gives to `reference.py` and `keras_reference.py`) has every field a Rust row's
//! report has in the same case, and no field that Rust does not know; and Rust reads back every
//! value it holds. `#[serde(default)]` would let a field the Python side forgets still parse, and
//! serde ignores a field it does not know, so reading alone proves neither.
//!
//! The Python side runs with `LENET_PYTHON` if set, else `python3`: `lenet_report.py` imports the
//! standard library only, so no framework (nor numpy) is needed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::harness::{BackendInfo, DeviceKind, DeviceRequest, Profile, RunSpec, Tuning};
use common::ModelKind;
use epochs::{DeviceActivity, EpochRecord, EvalRecord, KernelTime};
use reports::report::KernelPass;
use reports::{Environment, RunReport, SCHEMA};
use serde_json::Value;

/// What `cargo xtask compare --kernels` adds to a Python row's report after the run, from the
/// kernel counter's records (`attribute_python_pass`): the rows themselves never write it.
const ADDED_BY_XTASK: [&str; 2] = ["kernel_pass", "epochs[].device_activity"];

/// The Python that builds the stand-in reports: `lenet_report` from the folder given first, the
/// case (`measured`, `unmeasured`, `failed`) second; the report as JSON on stdout.
const STAND_IN: &str = r#"
import json, sys, types
sys.path.insert(0, sys.argv[1])
import lenet_report as r

case = sys.argv[2]
measured = case == "measured"
args = types.SimpleNamespace(
    framework="pytorch", model="lenet2", dataset="mnist", init="shared",
    device="cuda" if measured else "cpu", epochs=1, batch_size=32, learning_rate=0.001, seed=0,
    limit=64 if measured else None, threads=2 if measured else None,
    profile="tuned" if measured else "idiomatic")
env = r.environment(["reference.py", "--out", "/tmp/r.json"])
if case == "failed":
    report = r.failed_report(args, env, "torch cannot be imported")
else:
    test = r.eval_record(0.25, 0.9, 64, 0.01)
    epoch = r.epoch_record(1, 0.5, 0.8, test, 1.5, 1.25 if measured else None, 40.0 if measured else None,
                           0.75 if measured else None, 3 << 20 if measured else None)
    tuning = [r.tuning_record("fused Adam", "fused=True", True, "the same update")] if measured else []
    backend = r.backend_info("pytorch", "torch 2.11.0, python 3.11", "cuda" if measured else "cpu",
                             "cuda:0" if measured else "cpu", 2, [], ["cudnn: available"], tuning)
    report = r.run_report(r.run_spec(args), backend, env, 61706, 64, 64, 0.5, [epoch], test, test,
                          r.peak_host_bytes(), 4096 if measured else None, 8192 if measured else None, None)
json.dump(report, sys.stdout)
"#;

/// The report the Python side builds for `case`.
fn python_report(case: &str) -> Value {
    let python = std::env::var("LENET_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    let out = Command::new(&python)
        // No __pycache__ left in python/.
        .arg("-B")
        .arg("-c")
        .arg(STAND_IN)
        .arg(&folder)
        .arg(case)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set LENET_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "{python}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the Python side's report is JSON")
}

/// A Rust row's report, as it serializes, with the same stand-in values: on CUDA with every
/// measurement where `measured` (and a kernel pass's fields), on the CPU with none otherwise.
fn rust_report(measured: bool) -> Value {
    let eval = EvalRecord {
        loss: 0.25,
        accuracy: 0.9,
        examples: 64,
        seconds: 0.01,
    };
    let spec = RunSpec {
        device: if measured {
            DeviceRequest::Cuda
        } else {
            DeviceRequest::Cpu
        },
        epochs: 1,
        limit: Some(64).filter(|_| measured),
        threads: Some(2).filter(|_| measured),
        profile: if measured {
            Profile::Tuned
        } else {
            Profile::Idiomatic
        },
        ..RunSpec::recipe("tch", ModelKind::LeNet2)
    };
    let report = RunReport {
        spec,
        backend: Some(rust_backend(measured)),
        train_examples: 64,
        test_examples: 64,
        setup_seconds: 0.5,
        epochs: vec![rust_epoch(measured, &eval)],
        final_train: Some(eval.clone()),
        final_test: Some(eval),
        peak_host_bytes: Some(1 << 20),
        peak_device_bytes: Some(4096).filter(|_| measured),
        gpu_process_bytes: Some(8192).filter(|_| measured),
        failure: None,
        kernel_pass: Some(KernelPass {
            measured: true,
            note: None,
        })
        .filter(|_| measured),
        ..failed_rust_report()
    };
    serde_json::to_value(report).expect("a report serializes")
}

/// The stand-in report's epoch, its test evaluation `test`.
fn rust_epoch(measured: bool, test: &EvalRecord) -> EpochRecord {
    let some = |v: f64| Some(v).filter(|_| measured);
    let activity = DeviceActivity {
        kernels: 10,
        graph_kernels: 0,
        copies: 1,
        sets: 1,
        busy_seconds: 0.5,
        kernel_seconds: 0.5,
        span_seconds: 1.0,
        top: vec![KernelTime {
            name: "k".into(),
            count: 10,
            seconds: 0.5,
        }],
    };
    // Every field named, no `..default()`: a new field must be given a value here, where the
    // Python rows' reports are held to it.
    EpochRecord {
        epoch: 1,
        train_loss: 0.5,
        train_accuracy: 0.8,
        test_loss: test.loss,
        test_accuracy: test.accuracy,
        train_seconds: 1.5,
        eval_seconds: test.seconds,
        // The Rust harness always knows when the host had queued the last step.
        queued_seconds: Some(1.25),
        energy_joules: some(40.0),
        device_busy: some(0.75),
        device_activity: Some(activity).filter(|_| measured),
        peak_host_bytes: Some(3 << 20).filter(|_| measured),
    }
}

/// The stand-in report's backend: a tuned run on CUDA where `measured`, an idiomatic one on the
/// CPU otherwise.
fn rust_backend(measured: bool) -> BackendInfo {
    let device = if measured {
        DeviceKind::Cuda
    } else {
        DeviceKind::Cpu
    };
    BackendInfo {
        framework: "tch".into(),
        framework_version: "tch 0.24".into(),
        device,
        device_name: device.to_string(),
        threads: 2,
        features: Vec::new(),
        notes: vec!["a note".into()],
        tuning: if measured {
            vec![Tuning::applied("fused Adam", "on", "the same update")]
        } else {
            Vec::new()
        },
    }
}

/// A Rust row's report of a run that failed before it could train.
fn failed_rust_report() -> RunReport {
    let environment = Environment {
        gpu: Some("a GPU".into()),
        gpu_driver: Some("1.0".into()),
        ..Environment::capture()
    };
    let spec = RunSpec {
        device: DeviceRequest::Cpu,
        ..RunSpec::recipe("tch", ModelKind::LeNet2)
    };
    RunReport::failed(spec, environment, "torch cannot be imported".into())
}

/// Every field of `value` as a path (`spec.device`, `epochs[].train_loss`; an array's items all
/// under `NAME[]`).
fn fields(value: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, at: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let path = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    walk(v, &path, out);
                    out.insert(path);
                }
            }
            Value::Array(items) => {
                for v in items {
                    walk(v, &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// `fields` less what xtask adds.
fn written_by_rows(value: &Value) -> BTreeSet<String> {
    fields(value)
        .into_iter()
        .filter(|f| {
            !ADDED_BY_XTASK
                .iter()
                .any(|x| f == x || f.starts_with(&format!("{x}.")))
        })
        .collect()
}

fn listed(fields: &BTreeSet<String>) -> String {
    fields.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// What a Python report lacks of the fields Rust writes, and what it has that Rust does not know.
fn differences(
    python: &BTreeSet<String>,
    rust: &BTreeSet<String>,
    known: &BTreeSet<String>,
) -> Vec<String> {
    let missing: BTreeSet<String> = rust.difference(python).cloned().collect();
    let unknown: BTreeSet<String> = python.difference(known).cloned().collect();
    let mut out = Vec::new();
    if !missing.is_empty() {
        out.push(format!(
            "the Python rows do not write {} (the Rust rows do)",
            listed(&missing)
        ));
    }
    if !unknown.is_empty() {
        out.push(format!(
            "the Python rows write {}, which the Rust report does not have",
            listed(&unknown)
        ));
    }
    out
}

/// Whether `b` holds every value of `a`, a number as the same f64 (Python may write `0` where
/// serde writes `0.0`), a `null` of `a` as null or absent (an `Option` serde leaves out when
/// `None`), an empty array of `a` as empty or absent (`tuning`); the first difference's path.
fn holds(a: &Value, b: Option<&Value>, at: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Null, None | Some(Value::Null)) => Ok(()),
        (Value::Array(x), None) if x.is_empty() => Ok(()),
        (Value::Number(x), Some(Value::Number(y))) if x.as_f64() == y.as_f64() => Ok(()),
        (Value::Object(x), Some(Value::Object(y))) => x
            .iter()
            .try_for_each(|(k, v)| holds(v, y.get(k), &format!("{at}.{k}"))),
        (Value::Array(x), Some(Value::Array(y))) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .try_for_each(|(i, (v, w))| holds(v, Some(w), &format!("{at}[{i}]"))),
        (x, Some(y)) if x == y => Ok(()),
        (x, y) => Err(format!("{at}: Python wrote {x}, Rust read back {y:?}")),
    }
}

/// Rust reads the Python report, and writes back every value it holds.
fn read_back(python: &Value) {
    let report: RunReport =
        serde_json::from_value(python.clone()).expect("Rust reads the Python rows' report");
    assert_eq!(report.schema, SCHEMA);
    let again = serde_json::to_value(&report).expect("a report serializes");
    if let Err(e) = holds(python, Some(&again), "report") {
        panic!("{e}");
    }
}

/// A run on CUDA with every measurement: the same fields on both sides, but what xtask adds.
#[test]
fn a_measured_python_report_has_the_rust_fields_and_no_other() {
    let python = python_report("measured");
    read_back(&python);
    let rust = written_by_rows(&rust_report(true));
    let problems = differences(&fields(&python), &rust, &rust);
    assert!(problems.is_empty(), "{}", problems.join("; "));
}

/// A run on the CPU without the GPU's measurements: Rust leaves out some of its `None`s, which
/// Python may write as `null`; every field Rust writes here, Python writes.
#[test]
fn an_unmeasured_python_report_has_the_rust_fields_and_no_other() {
    let python = python_report("unmeasured");
    read_back(&python);
    let known = fields(&rust_report(true));
    let problems = differences(&fields(&python), &fields(&rust_report(false)), &known);
    assert!(problems.is_empty(), "{}", problems.join("; "));
}

/// A run that failed before it could train: Python's `failed_report` against Rust's
/// `RunReport::failed`.
#[test]
fn a_failed_python_report_has_the_rust_fields_and_no_other() {
    let python = python_report("failed");
    read_back(&python);
    let rust = serde_json::to_value(failed_rust_report()).expect("a report serializes");
    let problems = differences(
        &fields(&python),
        &fields(&rust),
        &fields(&rust_report(true)),
    );
    assert!(problems.is_empty(), "{}", problems.join("; "));
}

/// The check finds what it is there for: a field missing on either side, and a value Rust would
/// not read back.
#[test]
fn the_comparison_finds_a_missing_and_an_unknown_field() {
    let rust = fields(&serde_json::json!({"a": 1, "b": {"c": [{"d": 2}]}}));
    let python = fields(&serde_json::json!({"a": 1, "b": {"c": [{"e": 2}]}}));
    let problems = differences(&python, &rust, &rust);
    assert_eq!(
        problems,
        [
            "the Python rows do not write b.c[].d (the Rust rows do)",
            "the Python rows write b.c[].e, which the Rust report does not have"
        ]
    );
    let wrote = serde_json::json!({"x": 1, "y": null, "z": [], "w": "cpu"});
    let read = serde_json::json!({"x": 1.0, "w": "cpu"});
    assert_eq!(holds(&wrote, Some(&read), "r"), Ok(()));
    let lost = serde_json::json!({"x": 1.0});
    assert!(holds(&wrote, Some(&lost), "r").is_err());
}
