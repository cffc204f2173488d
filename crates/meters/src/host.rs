//! The host memory a run's process holds, epoch by epoch: Linux's high-water mark of the resident
//! set (`VmHWM` in `/proc/self/status`), reset as each epoch starts (writing `5` to
//! `/proc/self/clear_refs`, Linux 4.0 and later), so that each epoch's peak is its own. The run's
//! peak is the largest of the marks read before each reset and at the end.

use epochs::{EpochRecord, Observer};

/// The process's high-water mark of its resident set, in bytes.
pub fn high_water_mark() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Resets the high-water mark to the resident set as it is now.
fn reset_high_water_mark() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Each epoch's peak host memory, into its record, and the run's.
#[derive(Debug, Default)]
pub struct HostMemory {
    /// The largest mark read so far (before each reset, and at each epoch's end).
    before: Option<u64>,
    /// Whether every epoch so far started from a reset (else the marks are the run's so far, not
    /// the epoch's, and no epoch gets one).
    resets: bool,
    epochs: u32,
}

impl HostMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// The most the process held over the run so far.
    pub fn run_peak(&self) -> Option<u64> {
        self.before.max(high_water_mark())
    }
}

impl Observer for HostMemory {
    fn epoch_started(&mut self, _epoch: u32, _steps: usize) {
        self.before = self.before.max(high_water_mark());
        let reset = reset_high_water_mark();
        self.resets = reset && (self.resets || self.epochs == 0);
        self.epochs += 1;
    }

    fn epoch_finished(&mut self, record: &mut EpochRecord) {
        let mark = high_water_mark();
        // Linux's resident-set counters are approximate (per-thread caches), so a later read can
        // be a few pages below this one: the run's peak keeps every mark read.
        self.before = self.before.max(mark);
        if self.resets {
            record.peak_host_bytes = mark;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EpochRecord {
        EpochRecord {
            epoch: 1,
            ..EpochRecord::default()
        }
    }

    /// An epoch that touches 64 MiB more than the last one did peaks that much higher; the next
    /// epoch, which touches little, starts from a reset mark and peaks lower; the run's peak is the
    /// largest. (Where the mark cannot be reset, no epoch gets a number, which is also checked.)
    #[test]
    fn each_epoch_gets_its_own_peak_and_the_run_the_largest() {
        let mut meter = HostMemory::new();
        meter.epoch_started(1, 1);
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let mut first = record();
        meter.epoch_finished(&mut first);
        drop(big);
        meter.epoch_started(2, 1);
        let mut second = record();
        meter.epoch_finished(&mut second);
        let run = meter.run_peak().expect("VmHWM is readable on Linux");
        match (first.peak_host_bytes, second.peak_host_bytes) {
            (Some(first), Some(second)) => {
                assert!(
                    first >= second + (48 << 20),
                    "first {first}, second {second}"
                );
                assert!(run >= first, "run {run}, first {first}");
            }
            (None, None) => assert!(!reset_high_water_mark()),
            other => panic!("one epoch measured and not the other: {other:?}"),
        }
    }
}
