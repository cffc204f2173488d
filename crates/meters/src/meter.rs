//! The meters of a run, as observers of its epoch loop: each writes its own fields into each
//! epoch's record as the epoch ends, and what it measured over the whole run into [`RunMeasures`]
//! when the run ends. [`Meters::for_run`] is the one list of them: adding a per-epoch metric is a
//! meter, a line there, its field in the record and a column.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::harness::DeviceKind;
use epochs::{EpochRecord, KernelPass, Observer};

use crate::gpu::{self, BusyMeter, Counters, EnergyMeter, PeakSampler};
use crate::host::HostMemory;
use crate::kernels::{self, Counter, KernelsError};

/// What the meters measured over a whole run, for its report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMeasures {
    /// The most host memory the process held.
    pub peak_host_bytes: Option<u64>,
    /// The most GPU memory the process held, as the driver counts it.
    pub gpu_process_bytes: Option<u64>,
    /// A kernel pass's account of what it measured.
    pub kernel_pass: Option<KernelPass>,
}

/// A meter: an observer of the epoch loop, and what it adds to the run's measures at the end.
pub trait Meter: Observer {
    /// After the run: what only its end can tell.
    fn finish(self: Box<Self>, _epochs: &mut [EpochRecord], _run: &mut RunMeasures) {}
}

impl Meter for HostMemory {
    fn finish(self: Box<Self>, _epochs: &mut [EpochRecord], run: &mut RunMeasures) {
        run.peak_host_bytes = self.run_peak();
    }
}

impl Meter for EnergyMeter {}

impl Meter for BusyMeter {}

/// The GPU memory sampler as a meter: its thread runs from the meters' start to the run's end.
struct GpuMemory(PeakSampler);

impl Observer for GpuMemory {}

impl Meter for GpuMemory {
    fn finish(self: Box<Self>, _epochs: &mut [EpochRecord], run: &mut RunMeasures) {
        run.gpu_process_bytes = self.0.finish();
    }
}

/// A kernel pass: the kernel counter, loaded before the framework's first CUDA call
/// ([`KernelCounter::start`]), marking each epoch's training; at the end its records are read into
/// the epochs and the file removed.
pub struct KernelCounter {
    counter: Option<Result<Counter, KernelsError>>,
    records: PathBuf,
    /// Where the run trained, once known: on the CPU there is nothing for the counter to see.
    device: DeviceKind,
}

impl KernelCounter {
    /// Loads the counter at `library` where the run asks for a device that may be CUDA
    /// (`may_use_cuda`), recording into a file of this process's in the temporary folder.
    pub fn start(library: &Path, may_use_cuda: bool) -> Self {
        let records =
            std::env::temp_dir().join(format!("lenet-kernels-{}.txt", std::process::id()));
        let counter = may_use_cuda.then(|| Counter::start(library, &records));
        Self {
            counter,
            records,
            device: DeviceKind::Cpu,
        }
    }

    fn counter(&self) -> Option<&Counter> {
        self.counter.as_ref().and_then(|c| c.as_ref().ok())
    }
}

impl Observer for KernelCounter {
    fn epoch_started(&mut self, epoch: u32, _steps: usize) {
        if let Some(counter) = self.counter() {
            counter.mark(true, epoch);
        }
    }

    fn epoch_trained(&mut self, epoch: u32) {
        if let Some(counter) = self.counter() {
            counter.mark(false, epoch);
        }
    }
}

impl Meter for KernelCounter {
    fn finish(self: Box<Self>, epochs: &mut [EpochRecord], run: &mut RunMeasures) {
        let pass = match self.counter {
            Some(counter) if self.device == DeviceKind::Cuda => {
                kernels::attribute(counter.and_then(Counter::finish), epochs)
            }
            _ => KernelPass::nothing("the run trained on the CPU"),
        };
        // Read by now (or never written); a file left behind would only be clutter.
        let _ = std::fs::remove_file(&self.records);
        run.kernel_pass = Some(pass);
    }
}

/// The meters of one run, in the order they see each hook.
pub struct Meters {
    meters: Vec<Box<dyn Meter>>,
}

impl Meters {
    /// Every meter a run on `device` has: the host's memory always; on a GPU, its driver's own
    /// counters, the same for every framework (the process's memory and the GPU's utilization,
    /// sampled in the background, and the energy of each epoch's training); and a kernel pass's
    /// counter, started before the run's framework touched CUDA.
    pub fn for_run(device: DeviceKind, kernels: Option<KernelCounter>) -> Self {
        let mut meters: Vec<Box<dyn Meter>> = vec![Box::new(HostMemory::new())];
        let counters: Option<Arc<dyn Counters>> = match device {
            DeviceKind::Cuda => gpu::Nvml::open(0).map(|n| Arc::new(n) as Arc<dyn Counters>),
            DeviceKind::Cpu => None,
        };
        if let Some(counters) = counters {
            let sampler = PeakSampler::start(
                Arc::clone(&counters),
                std::process::id(),
                gpu::SAMPLE_PERIOD,
            );
            meters.push(Box::new(EnergyMeter::new(counters)));
            meters.push(Box::new(BusyMeter::new(sampler.busy())));
            meters.push(Box::new(GpuMemory(sampler)));
        }
        if let Some(mut counter) = kernels {
            counter.device = device;
            meters.push(Box::new(counter));
        }
        Self { meters }
    }

    /// The run's end: each meter's last word, into the epochs and the run's measures.
    pub fn finish(self, epochs: &mut [EpochRecord]) -> RunMeasures {
        let mut run = RunMeasures::default();
        for meter in self.meters {
            meter.finish(epochs, &mut run);
        }
        run
    }
}

impl Observer for Meters {
    fn epoch_started(&mut self, epoch: u32, steps: usize) {
        for m in &mut self.meters {
            m.epoch_started(epoch, steps);
        }
    }

    fn epoch_trained(&mut self, epoch: u32) {
        for m in &mut self.meters {
            m.epoch_trained(epoch);
        }
    }

    fn epoch_finished(&mut self, record: &mut EpochRecord) {
        for m in &mut self.meters {
            m.epoch_finished(record);
        }
    }
}
