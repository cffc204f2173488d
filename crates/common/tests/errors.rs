//! Error text is said once, and is true.

use std::error::Error as _;

/// An I/O error's cause is in its message and not again as a source, so that a chain printer
/// (anyhow's `{:#}`) does not repeat it.
#[test]
fn an_io_error_says_its_cause_once() {
    let e = common::Error::io("cannot write r.json", std::io::Error::from_raw_os_error(28));
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
    assert!(text.starts_with("cannot write r.json: "), "{text}");
}

/// Running out of device memory is named the same way for every framework, in whatever words the
/// framework said it; on the CPU, and for other failures, the text stays as it was.
#[test]
fn out_of_device_memory_is_named_whatever_the_framework_said() {
    use common::error::{failure_text, is_out_of_memory, OUT_OF_DEVICE_MEMORY};
    for said in [
        "tch: Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)\")",
        "candle: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")",
        "burn: reading the epoch's loss failed: out of memory: cuMemAlloc_v2: 2147483648 bytes",
        "burn: out of device memory allocating 2147483648 bytes",
        "Execution(OutOfMemory { size: 12 })",
    ] {
        assert!(is_out_of_memory(said), "{said}");
        let text = failure_text(said.to_string(), true);
        assert_eq!(text, format!("{OUT_OF_DEVICE_MEMORY}: {said}"));
        assert_eq!(failure_text(said.to_string(), false), said, "on the CPU");
        assert_eq!(failure_text(text.clone(), true), text, "said once");
    }
    for other in [
        "the training loss became NaN or infinite in epoch 1",
        "tch: CUDA was asked for, but libtorch finds no CUDA device on this machine",
        "a memory of a run",
    ] {
        assert!(!is_out_of_memory(other), "{other}");
        assert_eq!(failure_text(other.to_string(), true), other);
    }
}

/// A model file whose weights hold NaN or an infinity is refused where it is decoded, naming the
/// tensor, the count and the first value; finite weights decode as before.
#[test]
fn a_model_file_with_weights_that_are_not_finite_is_refused() {
    use common::weights::ModelFile;
    use common::{ModelKind, Weights};
    let mut file = ModelFile {
        model: ModelKind::LeNet3,
        weights: Weights::init(&ModelKind::LeNet3.spec(), 1),
        metadata: Default::default(),
    };
    let good = file.to_bytes().unwrap();
    assert_eq!(ModelFile::from_bytes(&good).unwrap().weights, file.weights);
    file.weights.tensors.get_mut("fc2.bias").unwrap().data[3] = f32::NEG_INFINITY;
    let e = ModelFile::from_bytes(&file.to_bytes().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "tensor fc2.bias holds 1 value that is not finite (the first, at index 3, is -inf)"
        ),
        "{e}"
    );
}
