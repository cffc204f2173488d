//! The tuned profile's settings for candle and what a run's report says of them: the device-side
//! Adam and the CUDA graph of the captured step (`captured.rs`), and glibc's allocator thresholds
//! on the CPU.

use candle_core::Device;
use common::capture::{GraphWords, Replay};
use common::harness::Tuning;

pub(crate) const DEVICE_ADAM: &str = "device-side Adam";

/// The device-side Adam's entry.
pub(crate) fn device_adam_tuning() -> Tuning {
    Tuning::applied(
        DEVICE_ADAM,
        "step count and bias corrections on the device",
        "candle-nn's AdamW arithmetic (weight decay 0, eps 1e-8) with its step count and \
         1/(1-β^t) computed by tensor operations on the device, moments and parameters written \
         back with Var::set: nothing in a step is a host value that changes from step to step",
    )
}

/// The CUDA graph entry's words.
const GRAPH_WORDS: GraphWords = GraphWords {
    value: "whole step (cudarc stream capture)",
    recorded: "gather, forward, loss, backward, device-side Adam and the epoch's sums of a full \
               batch recorded once through cudarc's stream capture (after 3 warm-up steps, on a \
               stream of its own, event tracking off, candle's shape uploads cached) and \
               replayed; a shorter last batch runs eagerly",
};

/// The CUDA graph's entry: how the tuned step's full batches ran.
pub(crate) fn graph_tuning(replay: &Replay, check: Option<&str>) -> Tuning {
    common::capture::graph_tuning(&GRAPH_WORDS, replay, check)
}

/// glibc's mmap threshold and trim threshold in the tuned profile on the CPU: buffers up to 256 MiB
/// come from the heap and freed memory stays mapped up to 1 GiB, so that the megabyte buffers a
/// candle step allocates afresh for each op are reused instead of being unmapped and faulted back
/// in (docs/frameworks.md, "Where candle's time goes": a LeNet3 step from 76.5 to 63.7 ms on the 2-core machine).
pub const MMAP_THRESHOLD: usize = 256 << 20;
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Applies the tuned profile's settings for `device` (process-wide: a `lenet train` process runs
/// one trainer) and says what they were.
pub(crate) fn tune(device: &Device) -> Vec<Tuning> {
    const SETTING: &str = "glibc malloc mmap/trim thresholds";
    let value = format!(
        "{} MiB / {} MiB",
        MMAP_THRESHOLD >> 20,
        TRIM_THRESHOLD >> 20
    );
    if !matches!(device, Device::Cpu) {
        return vec![Tuning::fell_back(
            SETTING,
            &value,
            "the run is on CUDA, where candle's buffers are the device's",
        )];
    }
    match set_malloc_thresholds() {
        Ok(()) => vec![Tuning::applied(
            SETTING,
            &value,
            "mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD): freed buffers are reused, not unmapped",
        )],
        Err(why) => vec![Tuning::fell_back(SETTING, &value, &why)],
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_malloc_thresholds() -> Result<(), String> {
    // SAFETY: mallopt only changes the allocator's parameters; it is called with glibc's own
    // constants and in-range values.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    };
    if ok {
        Ok(())
    } else {
        Err("glibc's mallopt refused the values".into())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_malloc_thresholds() -> Result<(), String> {
    Err("not glibc: its allocator has no such setting here".into())
}
