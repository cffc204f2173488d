//! The kernel counter's records, parsed from a fixture written the way the counter writes them:
//! a warm-up kernel before the first epoch, overlapping kernels, a graph's kernel, copies and sets,
//! an evaluation between epochs, an epoch the run never finished, and records CUPTI dropped.

use meters::kernels::{self, parse, KernelsError};

const FIXTURE: &str = include_str!("fixtures/kernels.txt");

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-15
}

#[test]
fn each_finished_epoch_gets_its_kernels_busy_time_and_top_kernels() {
    let trace = parse(FIXTURE).unwrap();
    // Epoch 3 has no end mark: the run stopped inside it.
    assert_eq!(trace.epochs.keys().copied().collect::<Vec<_>>(), [1, 2]);
    let one = &trace.epochs[&1];
    // The warm-up kernel (before the begin mark) and the evaluation's (after the end) are not in it.
    assert_eq!(
        (one.kernels, one.graph_kernels, one.copies, one.sets),
        (3, 1, 1, 1)
    );
    // 1100-1300 and 1250-1400 overlap: busy 300 ns, then 100 more; the kernels' sum is 450.
    assert!(close(one.busy_seconds, 400e-9), "{}", one.busy_seconds);
    assert!(close(one.kernel_seconds, 450e-9), "{}", one.kernel_seconds);
    assert!(close(one.span_seconds, 1000e-9));
    let top: Vec<(&str, u64)> = one.top.iter().map(|k| (k.name.as_str(), k.count)).collect();
    assert_eq!(
        top,
        [
            ("void gemm<float>(Params)", 1),
            ("relu_kernel", 1),
            ("conv2d_kernel", 1)
        ]
    );
    assert!(close(one.top[0].seconds, 200e-9));
    let two = &trace.epochs[&2];
    assert_eq!((two.kernels, two.graph_kernels, two.copies), (2, 0, 0));
    assert!(close(two.busy_seconds, 200e-9));
    assert_eq!(two.top.len(), 1);
    assert_eq!(two.top[0].count, 2);
    assert_eq!(trace.dropped, 2);
    assert_eq!(trace.trouble().unwrap(), "CUPTI dropped 2 records");
}

#[test]
fn no_epoch_marks_no_activity() {
    // A process that never reached CUDA: the header alone, no epochs, nothing to trust less.
    let trace = parse("# lenet-kernels 1\n").unwrap();
    assert!(trace.epochs.is_empty());
    assert_eq!(trace.trouble(), None);
    let failed = parse("# lenet-kernels 1\nF 15\n").unwrap();
    assert_eq!(failed.trouble().unwrap(), "a CUPTI call failed (status 15)");
}

#[test]
fn anything_else_is_an_error_naming_the_line() {
    assert_eq!(parse("K 1 2 0 0\n"), Err(KernelsError::Header));
    assert_eq!(parse(""), Err(KernelsError::Header));
    for (text, line) in [
        ("# lenet-kernels 1\nK 5 4 0 0\n", 2),
        ("# lenet-kernels 1\nK 1 2 7 0\n", 2),
        ("# lenet-kernels 1\nN 0 k\nK 1 2 0\n", 3),
        ("# lenet-kernels 1\nM 10 X 1\n", 2),
        ("# lenet-kernels 1\nQ 1\n", 2),
        ("# lenet-kernels 1\nN 0\n", 2),
    ] {
        match parse(text) {
            Err(KernelsError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

fn epochs(n: u32) -> Vec<epochs::EpochRecord> {
    (1..=n)
        .map(|epoch| epochs::EpochRecord {
            epoch,
            train_loss: 0.5,
            train_accuracy: 0.9,
            test_loss: 0.4,
            test_accuracy: 0.9,
            train_seconds: 1.0,
            eval_seconds: 0.1,
            queued_seconds: None,
            ..epochs::EpochRecord::default()
        })
        .collect()
}

/// Each epoch gets its own activity; an epoch the counter has nothing for stays without any (not
/// zeros); dropped records make a note.
#[test]
fn a_kernel_pass_gets_each_epochs_activity() {
    use meters::kernels::attribute;
    let mut records = epochs(3);
    let pass = attribute(parse(FIXTURE), &mut records);
    assert!(pass.measured);
    assert_eq!(pass.note.as_deref(), Some("CUPTI dropped 2 records"));
    assert_eq!(records[0].device_activity.as_ref().unwrap().kernels, 3);
    assert_eq!(records[1].device_activity.as_ref().unwrap().kernels, 2);
    assert_eq!(records[2].device_activity, None);
}

/// A counter that saw no kernel, or could not record at all, measures nothing and says why.
#[test]
fn nothing_measured_is_said_never_zeros() {
    use meters::kernels::attribute;
    let mut records = epochs(2);
    let empty = "# lenet-kernels 1\nM 10 B 1\nM 20 E 1\nM 30 B 2\nM 40 E 2\n";
    let pass = attribute(parse(empty), &mut records);
    assert!(!pass.measured);
    assert_eq!(
        pass.note.as_deref(),
        Some("no device activity measured: the counter saw no kernel")
    );
    assert!(records.iter().all(|r| r.device_activity.is_none()));
    let failed = attribute(parse("# lenet-kernels 1\nF 999\n"), &mut records);
    assert_eq!(
        failed.note.as_deref(),
        Some("no device activity measured: a CUPTI call failed (status 999)")
    );
    let unreadable = attribute(
        meters::kernels::read(std::path::Path::new("/nonexistent/records.txt")),
        &mut records,
    );
    assert!(!unreadable.measured);
    assert!(unreadable
        .note
        .unwrap()
        .starts_with("no device activity measured: cannot read the kernel counter's records /nonexistent/records.txt"));
}

/// Kernel names are written as their C++ source names them; names that are not mangled C++ stay
/// as they are.
#[test]
fn kernel_names_are_demangled() {
    assert_eq!(
        kernels::demangle("_ZN2at6native13reduce_kernelILi512ELi1EEEvv"),
        "void at::native::reduce_kernel<512, 1>()"
    );
    assert_eq!(kernels::demangle("relu_kernel"), "relu_kernel");
    let trace =
        kernels::parse("# lenet-kernels 1\nN 0 _Z4gemmIfEvv\nM 10 B 1\nK 11 20 0 0\nM 30 E 1\n")
            .unwrap();
    assert_eq!(trace.epochs[&1].top[0].name, "void gemm<float>()");
}
