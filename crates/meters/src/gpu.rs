//! The GPU as its driver counts it, the same for every framework: through NVML (the driver's
//! `libnvidia-ml.so.1`, loaded at run time by the nvml-wrapper crate), the GPU memory the run's
//! process holds (the CUDA context, the framework's allocator pools and its tensors: what the
//! driver has given the process, as `nvidia-smi` lists it), sampled from a background thread, and
//! the GPU's energy counter read around each epoch's training, and the GPU's utilization (the share
//! of time a kernel was running), sampled with the memory and averaged over each epoch's training.
//! Where there is no NVML (a machine without an NVIDIA driver) nothing is read and the reports say
//! "-", never a guess.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use epochs::{EpochRecord, Observer};

/// What a run reads from the driver. [`Nvml`] is the real one; tests bring their own.
pub trait Counters: Send + Sync {
    /// The energy the GPU has used since the driver was loaded, in millijoules.
    fn energy_millijoules(&self) -> Option<u64>;

    /// The GPU memory that process `pid` holds, in bytes; `None` when the process holds none or
    /// the driver cannot say.
    fn process_memory(&self, pid: u32) -> Option<u64>;

    /// The percentage of the driver's last sample period (1/6 s to 1 s, by product) during which
    /// one or more kernels was running on the GPU; `None` when the driver cannot say.
    fn utilization_percent(&self) -> Option<u32> {
        None
    }
}

/// One GPU through NVML.
pub struct Nvml {
    nvml: nvml_wrapper::Nvml,
    index: u32,
}

impl Nvml {
    /// The GPU with NVML index `index`, when the driver's library loads and has that GPU.
    pub fn open(index: u32) -> Option<Self> {
        let nvml = nvml_wrapper::Nvml::init().ok()?;
        nvml.device_by_index(index).ok()?;
        Some(Self { nvml, index })
    }
}

impl Counters for Nvml {
    fn energy_millijoules(&self) -> Option<u64> {
        let device = self.nvml.device_by_index(self.index).ok()?;
        device.total_energy_consumption().ok()
    }

    fn process_memory(&self, pid: u32) -> Option<u64> {
        let device = self.nvml.device_by_index(self.index).ok()?;
        let processes = device.running_compute_processes().ok()?;
        processes
            .iter()
            .filter(|p| p.pid == pid)
            .filter_map(|p| match p.used_gpu_memory {
                nvml_wrapper::enums::device::UsedGpuMemory::Used(bytes) => Some(bytes),
                nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
            })
            .max()
    }

    fn utilization_percent(&self) -> Option<u32> {
        let device = self.nvml.device_by_index(self.index).ok()?;
        device.utilization_rates().ok().map(|u| u.gpu)
    }
}

/// The joules between two readings of the energy counter (millijoules); `None` when the counter
/// went back, which only a driver reload does (a 64-bit count of millijoules does not wrap).
pub fn joules_between(start_mj: u64, end_mj: u64) -> Option<f64> {
    end_mj.checked_sub(start_mj).map(|mj| mj as f64 / 1000.0)
}

/// How often the memory of the run's process is read: often enough to see a peak that lasts a few
/// steps (the frameworks keep what they allocate in pools, so a peak persists), rarely enough to
/// cost nothing measurable.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(20);

/// The utilization readings a sampler has taken so far: their sum (percent) and their count.
#[derive(Default)]
pub struct BusyReadings {
    sum: AtomicU64,
    count: AtomicU64,
}

impl BusyReadings {
    fn add(&self, percent: u32) {
        self.sum.fetch_add(u64::from(percent), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> (u64, u64) {
        (
            self.sum.load(Ordering::Relaxed),
            self.count.load(Ordering::Relaxed),
        )
    }
}

/// A thread that reads a process's GPU memory every `period` and keeps the largest reading, and
/// reads the GPU's utilization as often, for [`BusyMeter`].
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    seen: Arc<AtomicBool>,
    busy: Arc<BusyReadings>,
    handle: Option<JoinHandle<()>>,
    counters: Arc<dyn Counters>,
    pid: u32,
}

impl PeakSampler {
    /// Starts sampling process `pid`.
    pub fn start(counters: Arc<dyn Counters>, pid: u32, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(BusyReadings::default());
        let handle = {
            let (stop, peak, seen, busy, counters) = (
                Arc::clone(&stop),
                Arc::clone(&peak),
                Arc::clone(&seen),
                Arc::clone(&busy),
                Arc::clone(&counters),
            );
            std::thread::Builder::new()
                .name("gpu-memory".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(bytes) = counters.process_memory(pid) {
                            peak.fetch_max(bytes, Ordering::Relaxed);
                            seen.store(true, Ordering::Relaxed);
                        }
                        if let Some(percent) = counters.utilization_percent() {
                            busy.add(percent);
                        }
                        std::thread::sleep(period);
                    }
                })
                .ok()
        };
        Self {
            stop,
            peak,
            seen,
            busy,
            handle,
            counters,
            pid,
        }
    }

    /// The utilization readings, for a [`BusyMeter`].
    pub fn busy(&self) -> Arc<BusyReadings> {
        Arc::clone(&self.busy)
    }

    /// Stops the thread (after one last reading) and returns the largest reading, `None` when no
    /// reading ever succeeded.
    pub fn finish(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        if let Some(bytes) = self.counters.process_memory(self.pid) {
            self.peak.fetch_max(bytes, Ordering::Relaxed);
            self.seen.store(true, Ordering::Relaxed);
        }
        self.seen
            .load(Ordering::Relaxed)
            .then(|| self.peak.load(Ordering::Relaxed))
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The energy of each epoch's training: the counter read when an epoch starts and when its
/// training has finished on the device (before the evaluation).
pub struct EnergyMeter {
    counters: Arc<dyn Counters>,
    start: Option<u64>,
    /// Joules per epoch, in order; `None` for an epoch whose readings failed.
    pub epochs: Vec<Option<f64>>,
}

impl EnergyMeter {
    pub fn new(counters: Arc<dyn Counters>) -> Self {
        Self {
            counters,
            start: None,
            epochs: Vec::new(),
        }
    }

    pub fn epoch_started(&mut self) {
        self.start = self.counters.energy_millijoules();
    }

    pub fn epoch_trained(&mut self) {
        let end = self.counters.energy_millijoules();
        let joules = match (self.start.take(), end) {
            (Some(start), Some(end)) => joules_between(start, end),
            _ => None,
        };
        self.epochs.push(joules);
    }
}

impl Observer for EnergyMeter {
    fn epoch_started(&mut self, _epoch: u32, _steps: usize) {
        EnergyMeter::epoch_started(self);
    }

    fn epoch_trained(&mut self, _epoch: u32) {
        EnergyMeter::epoch_trained(self);
    }

    fn epoch_finished(&mut self, record: &mut EpochRecord) {
        record.energy_joules = self.epochs.last().copied().flatten();
    }
}

/// The share of each epoch's training during which a kernel was running: the mean of the
/// sampler's utilization readings between the epoch's start and the end of its training.
pub struct BusyMeter {
    readings: Arc<BusyReadings>,
    start: (u64, u64),
    /// The share (0 to 1) per epoch, in order; `None` for an epoch without a reading.
    pub epochs: Vec<Option<f64>>,
}

impl BusyMeter {
    pub fn new(readings: Arc<BusyReadings>) -> Self {
        Self {
            readings,
            start: (0, 0),
            epochs: Vec::new(),
        }
    }

    pub fn epoch_started(&mut self) {
        self.start = self.readings.snapshot();
    }

    pub fn epoch_trained(&mut self) {
        let (sum, count) = self.readings.snapshot();
        let (sum, count) = (sum - self.start.0, count - self.start.1);
        self.epochs
            .push((count > 0).then(|| sum as f64 / count as f64 / 100.0));
    }
}

impl Observer for BusyMeter {
    fn epoch_started(&mut self, _epoch: u32, _steps: usize) {
        BusyMeter::epoch_started(self);
    }

    fn epoch_trained(&mut self, _epoch: u32) {
        BusyMeter::epoch_trained(self);
    }

    fn epoch_finished(&mut self, record: &mut EpochRecord) {
        record.device_busy = self.epochs.last().copied().flatten();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Counters that return the next of their scripted readings each time.
    struct Scripted {
        energy: Mutex<Vec<Option<u64>>>,
        memory: Mutex<Vec<Option<u64>>>,
    }

    impl Counters for Scripted {
        fn energy_millijoules(&self) -> Option<u64> {
            let mut e = self.energy.lock().unwrap();
            if e.is_empty() {
                None
            } else {
                e.remove(0)
            }
        }

        fn process_memory(&self, _pid: u32) -> Option<u64> {
            let mut m = self.memory.lock().unwrap();
            match m.len() {
                0 => None,
                1 => m[0],
                _ => m.remove(0),
            }
        }
    }

    fn scripted(energy: Vec<Option<u64>>, memory: Vec<Option<u64>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            energy: Mutex::new(energy),
            memory: Mutex::new(memory),
        })
    }

    #[test]
    fn energy_is_the_counter_difference_in_joules() {
        assert_eq!(joules_between(1_000, 251_500), Some(250.5));
        assert_eq!(joules_between(5, 5), Some(0.0));
        assert_eq!(joules_between(u64::MAX - 10, u64::MAX), Some(0.01));
        assert_eq!(joules_between(2_000, 1_000), None, "a reset counter");
    }

    #[test]
    fn the_meter_reads_the_counter_around_each_epoch() {
        let counters = scripted(
            vec![
                Some(10_000),
                Some(40_000),
                Some(50_000),
                None,
                Some(9),
                Some(1),
            ],
            vec![],
        );
        let mut meter = EnergyMeter::new(counters);
        for _ in 0..3 {
            meter.epoch_started();
            meter.epoch_trained();
        }
        assert_eq!(meter.epochs, [Some(30.0), None, None]);
    }

    #[test]
    fn the_sampler_keeps_the_largest_reading() {
        let counters = scripted(
            vec![],
            vec![Some(100), Some(700), None, Some(300), Some(200)],
        );
        let sampler = PeakSampler::start(counters, 1, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(sampler.finish(), Some(700));
        let nothing = PeakSampler::start(scripted(vec![], vec![]), 1, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(nothing.finish(), None, "no reading: no number");
    }

    /// The busy share of an epoch is the mean of the utilization readings taken during it; an
    /// epoch without a reading has none.
    #[test]
    fn the_busy_share_is_the_mean_reading_of_each_epoch() {
        let readings = Arc::new(BusyReadings::default());
        let mut meter = BusyMeter::new(Arc::clone(&readings));
        meter.epoch_started();
        for p in [90, 100, 95] {
            readings.add(p);
        }
        meter.epoch_trained();
        // Readings between epochs (the evaluation) count for neither.
        readings.add(0);
        meter.epoch_started();
        readings.add(10);
        meter.epoch_trained();
        meter.epoch_started();
        meter.epoch_trained();
        assert_eq!(meter.epochs, [Some(0.95), Some(0.1), None]);
    }

    /// Without an NVIDIA driver there is nothing to read, and nothing is made up.
    #[test]
    fn without_nvml_there_is_no_gpu_to_read() {
        if std::path::Path::new("/proc/driver/nvidia").exists() {
            return; // a machine with a driver: the absent case cannot be seen here
        }
        assert!(Nvml::open(0).is_none());
    }
}
