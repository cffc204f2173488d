//! What a comparison runs: its options checked, the points (batch size, threads, profile) of each
//! (framework, model), each run's settings and report name, and what `--resume` keeps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use common::harness::{Profile, RunSpec, BATCH_SIZE, EPOCHS, LEARNING_RATE};
use common::{Dataset, ModelKind};
use reports::{Plan, RunReport};
use results::folder;

use crate::flags;

pub(super) fn check(args: &flags::Compare) -> Result<()> {
    if args.frameworks.as_ref().is_some_and(Vec::is_empty) || args.models.is_empty() {
        bail!("nothing to run: --frameworks and --models need at least one name each");
    }
    if args.repeats == 0 || args.repeats > 1000 {
        bail!("repeats must be 1 to 1000, not {}", args.repeats);
    }
    if let Some(tag) = &args.tag {
        if tag.is_empty() || reports::env::slug(tag) != *tag {
            bail!(
                "tag '{tag}' must be lowercase letters, digits and single dashes (for example {})",
                reports::env::slug(tag)
            );
        }
    }
    for (what, list) in [
        ("--batch-size", &args.batch_sizes),
        ("--threads", &args.threads),
    ] {
        if list.as_ref().is_some_and(Vec::is_empty) {
            bail!("{what} needs at least one number");
        }
    }
    if let Some(counter) = &args.kernels {
        if !counter.is_file() {
            bail!(
                "--kernels {}: no such file (the kernel counter's library, built by `cargo xtask \
                 setup --cuda` into target/kernel-counter/)",
                counter.display()
            );
        }
    }
    if args.profiles.is_empty() {
        bail!("--profile needs at least one of idiomatic, tuned");
    }
    for (i, p) in args.profiles.iter().enumerate() {
        if args.profiles[..i].contains(p) {
            bail!("--profile names {p} twice");
        }
    }
    // The settings every run shares, at every batch size and thread count asked for (a sweep's
    // own are valid); which framework does not matter to them.
    for point in points(args, false, 1) {
        spec(args, "", ModelKind::LeNet2, args.run.seed, point).validate()?;
    }
    Ok(())
}

/// The batch sizes of a sweep on the CPU: past 512 an epoch has too few steps for a steady state
/// at these models' speeds, and the CPU frameworks gain little (docs/sweeps-and-tuning.md).
pub const SWEEP_BATCH_SIZES_CPU: [usize; 3] = [32, 128, 512];
/// The batch sizes of a sweep on CUDA: from the recipe's, where every framework is bound by its
/// kernel launches, to where the device is busy.
pub const SWEEP_BATCH_SIZES_CUDA: [usize; 5] = [32, 128, 512, 2048, 8192];
/// Epochs per sweep run: the first compiles and warms up, the second is the steady state measured.
pub const SWEEP_EPOCHS: u32 = 2;

/// One setting of what a comparison can vary besides framework and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub batch_size: usize,
    /// `None`: the framework's own default.
    pub threads: Option<usize>,
    pub profile: Profile,
}

/// 1, 2, 4, ... below `cores`, then `cores`.
pub fn thread_series(cores: usize) -> Vec<usize> {
    let mut out: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n < cores)
        .collect();
    out.push(cores.max(1));
    out
}

/// What each (framework, model) runs at. Without `--sweep`: every batch size with every thread
/// count given (the recipe's batch size and each framework's threads when none are). With
/// `--sweep`: the batch series at each framework's own threads, then, on the CPU, the thread
/// series at the recipe's batch size; `cuda` says whether the runs will be on CUDA, `cores` how
/// many the machine has.
pub fn points(args: &flags::Compare, cuda: bool, cores: usize) -> Vec<Point> {
    // Each point in every profile asked for, one after the other, so that they sit side by side.
    base_points(args, cuda, cores)
        .into_iter()
        .flat_map(|p| {
            args.profiles
                .iter()
                .map(move |&profile| Point { profile, ..p })
        })
        .collect()
}

/// The points of [`points`] in the idiomatic profile.
pub(super) fn base_points(args: &flags::Compare, cuda: bool, cores: usize) -> Vec<Point> {
    let threads: Vec<Option<usize>> = match &args.threads {
        Some(list) => list.iter().map(|&n| Some(n)).collect(),
        None => vec![None],
    };
    if !args.sweep {
        let batches = args.batch_sizes.clone().unwrap_or(vec![BATCH_SIZE]);
        return batches
            .iter()
            .flat_map(|&batch_size| {
                threads.iter().map(move |&threads| Point {
                    batch_size,
                    threads,
                    profile: Profile::Idiomatic,
                })
            })
            .collect();
    }
    let batches = args.batch_sizes.clone().unwrap_or_else(|| {
        if cuda {
            SWEEP_BATCH_SIZES_CUDA.to_vec()
        } else {
            SWEEP_BATCH_SIZES_CPU.to_vec()
        }
    });
    let mut out: Vec<Point> = batches
        .into_iter()
        .map(|batch_size| Point {
            batch_size,
            threads: None,
            profile: Profile::Idiomatic,
        })
        .collect();
    if !cuda {
        let series = match &args.threads {
            Some(list) => list.clone(),
            None => thread_series(cores),
        };
        for n in series {
            let p = Point {
                batch_size: BATCH_SIZE,
                threads: Some(n),
                profile: Profile::Idiomatic,
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The epochs of each run: the ones asked for, else the recipe's (a sweep's own without it).
pub(super) fn epochs(args: &flags::Compare) -> u32 {
    args.epochs
        .unwrap_or(if args.sweep { SWEEP_EPOCHS } else { EPOCHS })
}

/// The results subfolder: the one asked for, `sweep` for a sweep, else none.
pub(super) fn tag(args: &flags::Compare) -> Option<String> {
    args.tag
        .clone()
        .or_else(|| args.sweep.then(|| "sweep".to_string()))
}

/// Finds MNIST (downloading it into the cache if that is where it goes) and checks every file once,
/// so that bad data stops the comparison with one clear error before any run starts. Returns the
/// folder, which every run is then given explicitly.
pub(super) fn check_data(args: &flags::Compare) -> Result<(PathBuf, common::Mnist)> {
    let dir = datasets::locate(args.run.dataset, args.run.data_dir.as_deref())?;
    let mut data = common::Mnist::load_dir(args.run.dataset, &dir)?;
    if let Some(n) = args.run.limit {
        data.check_limit(n, common::SplitKind::Train)?;
        data.limit(n);
    }
    Ok((dir, data))
}

/// What `--resume` finds of a run at `path`.
#[derive(Debug, PartialEq)]
pub(super) enum Earlier {
    /// No report of exactly this run's settings.
    Nothing,
    /// A successful report of exactly these settings.
    Finished,
    /// A failed report of exactly these settings: its failure's first line.
    Failed(String),
}

pub(super) fn earlier(path: &Path, spec: &RunSpec) -> Earlier {
    match RunReport::read(path) {
        Ok(r) if r.spec != *spec => Earlier::Nothing,
        Ok(r) if r.succeeded() => Earlier::Finished,
        Ok(r) => Earlier::Failed(
            r.failure
                .as_deref()
                .and_then(|f| f.lines().next())
                .unwrap_or("no reason recorded")
                .to_string(),
        ),
        Err(_) => Earlier::Nothing,
    }
}

/// Seconds a run may take to start (CUDA's context, a framework's kernels loaded or compiled and
/// autotuned: burn's take 35-55 s per new shape on an H200, candle's first CUDA epoch 22 s) and end.
pub const RUN_ALLOWANCE_SECONDS: u64 = 300;
/// Milliseconds a run may take per image of each epoch, training and test: the slowest row
/// measured on two cores (candle's LeNet3, 2.3 ms per training image) with a margin of four.
pub const RUN_MS_PER_IMAGE: u64 = 10;

/// The time limit of a run of `spec` over `train` and `test` images: `--run-timeout`, else the
/// allowance plus the per-image time of every epoch (twice that for a kernel pass).
pub(super) fn run_limit(
    args: &flags::Compare,
    spec: &RunSpec,
    train: usize,
    test: usize,
) -> Duration {
    if let Some(seconds) = args.run_timeout {
        return Duration::from_secs(seconds);
    }
    let images = u64::from(spec.epochs) * (train + test) as u64;
    let seconds = RUN_ALLOWANCE_SECONDS + images * RUN_MS_PER_IMAGE / 1000;
    let factor = if args.kernels.is_some() { 2 } else { 1 };
    Duration::from_secs(seconds * factor)
}

/// Refuses a comparison whose runs would sit in `dir` beside reports of another plan (epochs,
/// images, dataset, initial weights, learning rate): one table would mix them, and their names
/// would replace each other. A kernel pass is held to the folder's kernel passes (it may take
/// fewer epochs than the timed runs it measures).
pub(super) fn check_folder_plan(dir: &Path, args: &flags::Compare) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let passes = args.kernels.is_some();
    let specs: Vec<RunSpec> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json") && folder::is_kernel_pass_file(p) == passes
        })
        .filter_map(|p| RunReport::read(&p).ok().map(|r| r.spec))
        .collect();
    let ours = Plan::of(&spec(
        args,
        "",
        ModelKind::LeNet2,
        args.run.seed,
        points(args, false, 1)[0],
    ));
    let others: Vec<String> = reports::plan::plans(&specs)
        .into_iter()
        .filter(|(plan, _)| *plan != ours)
        .map(|(plan, n)| format!("{n} run{} of {plan}", if n == 1 { "" } else { "s" }))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    bail!(
        "{} holds {} and this comparison runs {ours}: one table would mix them; give it a folder of \
         its own with --tag NAME (a subfolder there) or --out DIR, or move those reports away first",
        dir.display(),
        others.join(", ")
    )
}

/// `FRAMEWORK-MODEL[-DATASET][-bBATCH][-tTHREADS][-tuned][-rK].json`: MNIST, the recipe's batch
/// size, the idiomatic profile and the first repeat keep the short name; the threads are in it when the comparison runs several
/// thread counts (`name_threads`), so that a plain `--threads 1` keeps the plain names.
pub(super) fn report_name(
    framework: &str,
    model: ModelKind,
    dataset: Dataset,
    point: Point,
    name_threads: bool,
    repeat: u32,
) -> String {
    let mut name = format!("{framework}-{model}");
    if dataset != Dataset::Mnist {
        name.push_str(&format!("-{dataset}"));
    }
    if point.batch_size != BATCH_SIZE {
        name.push_str(&format!("-b{}", point.batch_size));
    }
    if let (true, Some(threads)) = (name_threads, point.threads) {
        name.push_str(&format!("-t{threads}"));
    }
    if !point.profile.is_idiomatic() {
        name.push_str(&format!("-{}", point.profile));
    }
    if repeat > 1 {
        name.push_str(&format!("-r{repeat}"));
    }
    name + ".json"
}

pub(super) fn spec(
    args: &flags::Compare,
    framework: &str,
    model: ModelKind,
    seed: u64,
    point: Point,
) -> RunSpec {
    RunSpec {
        framework: framework.to_string(),
        model,
        dataset: args.run.dataset,
        init: args.run.init,
        device: args.run.device,
        epochs: epochs(args),
        batch_size: point.batch_size,
        learning_rate: LEARNING_RATE,
        seed,
        limit: args.run.limit,
        threads: point.threads,
        profile: point.profile,
    }
}

/// `FRAMEWORK MODEL`, with the batch size, threads and profile when they are not the defaults.
pub(super) fn describe(spec: &RunSpec) -> String {
    let mut text = format!("{} {}", spec.framework, spec.model);
    if spec.batch_size != BATCH_SIZE {
        text.push_str(&format!(", batch {}", spec.batch_size));
    }
    if let Some(threads) = spec.threads {
        text.push_str(&format!(
            ", {threads} thread{}",
            if threads == 1 { "" } else { "s" }
        ));
    }
    if !spec.profile.is_idiomatic() {
        text.push_str(&format!(", {}", spec.profile));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::test_args::{args, try_args};

    fn at(batch_size: usize, threads: Option<usize>) -> Point {
        Point {
            batch_size,
            threads,
            profile: Profile::Idiomatic,
        }
    }

    fn tuned(p: Point) -> Point {
        Point {
            profile: Profile::Tuned,
            ..p
        }
    }

    #[test]
    fn both_profiles_run_side_by_side() {
        assert_eq!(
            points(&args(&["--profile", "idiomatic,tuned"]), false, 2),
            [at(32, None), tuned(at(32, None))]
        );
        assert_eq!(
            points(
                &args(&["--profile", "tuned", "--batch-size", "32,64"]),
                false,
                2
            ),
            [tuned(at(32, None)), tuned(at(64, None))]
        );
        let spec = spec(
            &args(&["--profile", "tuned"]),
            "tch",
            ModelKind::LeNet2,
            0,
            tuned(at(32, None)),
        );
        assert_eq!(spec.profile, Profile::Tuned);
        assert_eq!(describe(&spec), "tch lenet2, tuned");
        let name = report_name(
            "tch",
            ModelKind::LeNet2,
            Dataset::Mnist,
            tuned(at(128, None)),
            false,
            2,
        );
        assert_eq!(name, "tch-lenet2-b128-tuned-r2.json");
        for line in [&["--profile", "tuned,tuned"][..], &["--profile", ""]] {
            if let Ok(parsed) = try_args(line) {
                assert!(check(&parsed).is_err(), "{line:?}");
            }
        }
        assert!(try_args(&["--profile", "fast"]).is_err());
    }

    /// A run's time limit follows the plan: the allowance and 10 ms per image of every epoch,
    /// doubled for a kernel pass; --run-timeout replaces it.
    #[test]
    fn a_runs_time_limit_follows_its_plan() {
        let recipe = RunSpec::recipe("tch", ModelKind::LeNet2);
        let limit = |line: &[&str], spec: &RunSpec, train, test| {
            run_limit(&args(line), spec, train, test).as_secs()
        };
        // 10 epochs of 60,000 + 10,000 images: 7,000 s, and the allowance.
        assert_eq!(limit(&[], &recipe, 60_000, 10_000), 300 + 7_000);
        let short = RunSpec {
            epochs: 1,
            ..recipe.clone()
        };
        assert_eq!(limit(&[], &short, 6_400, 6_400), 300 + 128);
        assert_eq!(
            limit(&["--kernels", "counter.so"], &short, 6_400, 6_400),
            2 * (300 + 128)
        );
        assert_eq!(limit(&["--run-timeout", "90"], &recipe, 60_000, 10_000), 90);
        assert!(try_args(&["--run-timeout", "0"]).is_err());
        assert!(try_args(&["--retry-failed"]).is_err());
    }

    #[test]
    fn thread_series_double_up_to_the_cores() {
        assert_eq!(thread_series(1), [1]);
        assert_eq!(thread_series(2), [1, 2]);
        assert_eq!(thread_series(6), [1, 2, 4, 6]);
        assert_eq!(thread_series(16), [1, 2, 4, 8, 16]);
    }

    #[test]
    fn a_comparison_runs_every_batch_size_with_every_thread_count() {
        assert_eq!(points(&args(&[]), false, 2), [at(32, None)]);
        assert_eq!(
            points(
                &args(&["--batch-size", "64,256", "--threads", "1,3"]),
                true,
                2
            ),
            [
                at(64, Some(1)),
                at(64, Some(3)),
                at(256, Some(1)),
                at(256, Some(3))
            ]
        );
        let a = args(&[]);
        assert_eq!((epochs(&a), tag(&a)), (EPOCHS, None));
    }

    #[test]
    fn a_sweep_runs_the_batch_series_then_the_thread_series() {
        let sweep = args(&["--sweep"]);
        assert_eq!(
            points(&sweep, false, 4),
            [
                at(32, None),
                at(128, None),
                at(512, None),
                at(32, Some(1)),
                at(32, Some(2)),
                at(32, Some(4))
            ]
        );
        // On CUDA the threads are not swept, and the batch sizes go further.
        let cuda: Vec<usize> = points(&sweep, true, 4)
            .iter()
            .map(|p| p.batch_size)
            .collect();
        assert_eq!(cuda, SWEEP_BATCH_SIZES_CUDA);
        assert_eq!(
            (epochs(&sweep), tag(&sweep)),
            (SWEEP_EPOCHS, Some("sweep".into()))
        );
        // Each list given replaces its series; --epochs and --tag win.
        let custom = args(&[
            "--sweep",
            "--batch-size",
            "16,32",
            "--threads",
            "2",
            "--epochs",
            "1",
            "--tag",
            "s",
        ]);
        assert_eq!(
            points(&custom, false, 8),
            [at(16, None), at(32, None), at(32, Some(2))]
        );
        assert_eq!((epochs(&custom), tag(&custom)), (1, Some("s".into())));
    }

    #[test]
    fn bad_lists_are_refused() {
        for line in [&["--batch-size", ""][..], &["--threads", ""]] {
            // Refused by clap (not a number) or by the check (an empty list): never run.
            if let Ok(parsed) = try_args(line) {
                assert!(check(&parsed).is_err(), "{line:?}");
            }
        }
        assert!(try_args(&["--batch-size", "32,x"]).is_err());
        // Each batch size and thread count goes through the shared validation, before any run.
        for line in [
            &["--batch-size", "32,0"][..],
            &["--sweep", "--threads", "2,0"],
        ] {
            let e = check(&args(line)).unwrap_err().to_string();
            assert!(e.contains("must be 1 to"), "{line:?}: {e}");
        }
        assert!(check(&args(&["--sweep"])).is_ok());
    }

    #[test]
    fn report_names_show_what_differs_from_the_recipe() {
        let name = |point, repeat| {
            report_name(
                "tch",
                ModelKind::LeNet3,
                Dataset::Mnist,
                point,
                true,
                repeat,
            )
        };
        assert_eq!(name(at(32, None), 1), "tch-lenet3.json");
        assert_eq!(name(at(128, None), 1), "tch-lenet3-b128.json");
        assert_eq!(name(at(32, Some(2)), 3), "tch-lenet3-t2-r3.json");
        let fashion = at(512, Some(1));
        assert_eq!(
            report_name(
                "pytorch",
                ModelKind::LeNet2,
                Dataset::FashionMnist,
                fashion,
                true,
                1
            ),
            "pytorch-lenet2-fashion-mnist-b512-t1.json"
        );
        // One thread count for the whole comparison: the names stay as they were.
        assert_eq!(
            report_name(
                "tch",
                ModelKind::LeNet2,
                Dataset::Mnist,
                at(32, Some(1)),
                false,
                2
            ),
            "tch-lenet2-r2.json"
        );
    }
}
