//! `scripts/gpu.sh`, the GPU machine's one-call script, with a stand-in bundle whose `run.sh`
//! records each comparison it is asked for and leaves a report file (or hangs, where told to):
//! the smoke step comes first and runs what has never run on a GPU; a step cut short by the
//! deadline is not marked done, and the steps after it are left for a later call; the pack is
//! written when each step ends; a second call on a fresh work folder resumes from the first call's
//! pack. The real runs of the steps are what `DRY_RUN=1` tries (docs/usage.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu.sh")
}

/// A bundle whose run.sh appends its options to `calls` (after `serve ` for the serving
/// measurement), sleeps 30 s where its options hold `$SLOW`, and otherwise writes one report file
/// under its results folder.
fn bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(
        bundle.join("run.sh"),
        format!(
            "#!/bin/sh\ntask=\nif [ \"$1\" = serve ]; then task='serve '; shift; fi\n\
             out=\"$1\"\nshift\necho \"$task$*\" >>'{calls}'\n\
             if [ -n \"$SLOW\" ]; then case \" $* \" in *\"$SLOW\"*) sleep 30 ;; esac; fi\n\
             n=$(wc -l <'{calls}')\nmkdir -p \"$out/m\"\necho '{{}}' >\"$out/m/run-$n.json\"\n",
            calls = dir.join("calls.txt").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bundle.join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    bundle
}

fn run(dir: &Path, work: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .arg(dir.join("out"))
        .arg(dir.join("mnist"))
        .env("BUNDLE", dir.join("bundle"))
        .env("BENCH_BUNDLE", dir.join("no-bench"))
        .env("WORK", dir.join(work))
        .env("PYTHON", "true")
        .env("RESERVE_SECONDS", "1")
        .env("MIN_STEP_SECONDS", "2")
        .env_remove("SLOW")
        .env_remove("RESUME")
        .env_remove("DRY_RUN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls.txt"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The files in the pack `out/results.tar.gz`.
fn packed(dir: &Path) -> Vec<String> {
    let output = Command::new("tar")
        .arg("-tzf")
        .arg(dir.join("out/results.tar.gz"))
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// The steps the pack lists as done.
fn done(dir: &Path) -> Vec<String> {
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let ok = Command::new("tar")
        .arg("-xzf")
        .arg(dir.join("out/results.tar.gz"))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::read_to_string(unpacked.join("steps-done.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_call_is_cut_at_its_deadline_and_the_next_call_resumes_from_its_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir);
    // Without a deadline: refused, nothing run.
    let output = run(dir, "work0", &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.starts_with("error: DEADLINE must be"), "{err}");
    assert!(calls(dir).is_empty());
    a_first_call_is_cut_at_its_deadline(dir);
    the_next_call_resumes_from_the_pack(dir);
}

/// First call: 12 s, and the profiles step (tag `tuned`) hangs: the smoke step, its kernel pass
/// and the serving measurement run first, the hanging step is cut and not marked done, the steps
/// after it are left; only the pack and the log come back.
fn a_first_call_is_cut_at_its_deadline(dir: &Path) {
    let start = Instant::now();
    let output = run(
        dir,
        "work1",
        &[("DEADLINE", "12"), ("SLOW", "--tag tuned ")],
    );
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{log}");
    assert!(start.elapsed() < Duration::from_secs(40), "{log}");
    let first = calls(dir);
    assert_eq!(first.len(), 5, "{first:?}");
    // The smoke step first: candle and burn in both profiles, tch tuned, then one kernel pass.
    let smoke = "--device cuda --models lenet2 --frameworks candle,burn --profile idiomatic,tuned \
                 --epochs 1 --limit 6400 --tag smoke";
    assert!(first[0].contains(smoke), "{}", first[0]);
    assert!(
        first[0].contains("--resume --run-timeout 150"),
        "{}",
        first[0]
    );
    assert!(
        first[1].contains("--frameworks tch --profile tuned --epochs 1 --limit 6400 --tag smoke"),
        "{}",
        first[1]
    );
    assert!(first[2].contains("--tag smoke --kernels"), "{}", first[2]);
    // Then serving on CUDA, which has never run there either.
    assert!(
        first[3].starts_with("serve --data-dir") && first[3].contains("--device cuda"),
        "{}",
        first[3]
    );
    assert!(first[4].contains("--epochs 3 --tag tuned"), "{}", first[4]);
    assert!(first[4].contains("--run-timeout 240"), "{}", first[4]);
    assert!(
        log.contains("ended with status 124 (its time limit: a later call finishes it)"),
        "{log}"
    );
    assert!(
        log.contains("== kernel pass, both profiles: not started, too little time left"),
        "{log}"
    );
    // Only the pack and the log come back; the pack holds the smoke step's runs.
    let mut names: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["gpu-log.txt", "results.tar.gz"]);
    let files = packed(dir);
    for n in 1..=4 {
        assert!(
            files.contains(&format!("results/m/run-{n}.json")),
            "{files:?}"
        );
    }
    assert_eq!(done(dir), ["smoke", "serve"]);
}

/// Second call, on a fresh work folder, from the first call's pack: the smoke step is not run
/// again; the cut step runs again (with --resume), and so does every step after it.
fn the_next_call_resumes_from_the_pack(dir: &Path) {
    let pack = dir.join("first.tar.gz");
    std::fs::copy(dir.join("out/results.tar.gz"), &pack).unwrap();
    let output = run(
        dir,
        "work2",
        &[("DEADLINE", "60"), ("RESUME", pack.to_str().unwrap())],
    );
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("== smoke: ended in an earlier call, not run again"),
        "{log}"
    );
    let second = &calls(dir)[5..];
    assert!(second[0].contains("--epochs 3 --tag tuned"), "{second:?}");
    assert!(
        second
            .iter()
            .all(|c| !c.contains("--tag smoke") && !c.starts_with("serve")),
        "{second:?}"
    );
    let files = packed(dir);
    assert!(
        files.contains(&"results/m/run-1.json".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&format!("results/m/run-{}.json", calls(dir).len())),
        "{files:?}"
    );
    let finished = done(dir);
    for step in [
        "smoke",
        "serve",
        "profiles",
        "kernels",
        "graph-steps",
        "sweep-lenet3",
        "epochs-10",
        "threads",
    ] {
        assert!(finished.contains(&step.to_string()), "{step}: {finished:?}");
    }
    // No bench bundle: its step is left for a call that has one.
    assert!(!finished.contains(&"bench".to_string()), "{finished:?}");
}
