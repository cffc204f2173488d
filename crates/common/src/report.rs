//! The JSON run report: the boundary between a run process and everything that reads results.
//! One report per run, written atomically (a temporary file in the same folder, then a rename) as
//! soon as the run ends, whether it succeeded or failed.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::harness::{BackendInfo, RunSpec, Totals};

/// Version of the report format.
pub const SCHEMA: u32 = 1;

/// One epoch's numbers. Accuracy is a fraction in [0, 1]; the training figures are running figures
/// over the epoch's steps, the test figures come from a pass after the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: u32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// From the first step to a device synchronisation after the last.
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

/// A pass over a whole split without training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub loss: f64,
    pub accuracy: f64,
    pub examples: u64,
    pub seconds: f64,
}

impl EvalRecord {
    pub fn new(totals: &Totals, seconds: f64) -> Self {
        Self {
            loss: totals.mean_loss(),
            accuracy: totals.accuracy(),
            examples: totals.examples,
            seconds,
        }
    }
}

/// Where a run ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Environment {
    /// Version of lenet-compare.
    pub lenet_version: String,
    pub os: String,
    pub arch: String,
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub hostname: String,
    /// GPU model and driver as `nvidia-smi` reports them, when there is one.
    pub gpu: Option<String>,
    pub gpu_driver: Option<String>,
    /// The command line of the run process.
    pub command: Vec<String>,
    /// Seconds since the Unix epoch when the run started, and the same in UTC.
    pub started_unix: u64,
    pub started_utc: String,
}

impl Environment {
    /// Reads the environment of this process.
    pub fn capture() -> Self {
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (gpu, gpu_driver) = nvidia_smi();
        Self {
            lenet_version: env!("CARGO_PKG_VERSION").to_string(),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpu_model: cpu_model(),
            logical_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            gpu,
            gpu_driver,
            command: std::env::args().collect(),
            started_unix,
            started_utc: utc(started_unix),
        }
    }

    /// A folder name for this machine's results: the GPU's model when a run used CUDA, else the CPU's
    /// model and its logical CPU count, lowercase with dashes.
    pub fn machine_slug(&self, cuda: bool) -> String {
        let name = match (&self.gpu, cuda) {
            (Some(gpu), true) => gpu.clone(),
            _ => format!("{}-{}cpu", self.cpu_model, self.logical_cpus),
        };
        slug(&name)
    }
}

/// Lowercase letters and digits, runs of anything else as one dash.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "unknown".into()
    } else {
        out
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-cpu".into())
}

fn nvidia_smi() -> (Option<String>, Option<String>) {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version",
            "--format=csv,noheader",
            "--id=0",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let line = text.lines().next().unwrap_or("");
            match line.split_once(',') {
                Some((name, driver)) => (
                    Some(name.trim().to_string()),
                    Some(driver.trim().to_string()),
                ),
                None => (None, None),
            }
        }
        _ => (None, None),
    }
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Everything about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: u32,
    pub spec: RunSpec,
    /// What the framework reported about itself; absent when it failed before it could.
    pub backend: Option<BackendInfo>,
    pub environment: Environment,
    pub parameters: usize,
    pub train_examples: usize,
    pub test_examples: usize,
    /// Building the model and uploading the data.
    pub setup_seconds: f64,
    pub epochs: Vec<EpochRecord>,
    pub final_train: Option<EvalRecord>,
    pub final_test: Option<EvalRecord>,
    /// The run process's peak resident memory (Linux `VmHWM`; Python's `ru_maxrss`), data included.
    #[serde(default)]
    pub peak_host_bytes: Option<u64>,
    /// The most device memory the framework had allocated at once, where it can tell.
    #[serde(default)]
    pub peak_device_bytes: Option<u64>,
    /// Why the run failed; `None` for a run that finished.
    pub failure: Option<String>,
}

impl RunReport {
    /// A report that holds only a failure (the run never got as far as training).
    pub fn failed(spec: RunSpec, environment: Environment, reason: String) -> Self {
        Self {
            schema: SCHEMA,
            parameters: spec.model.spec().num_params(),
            spec,
            backend: None,
            environment,
            train_examples: 0,
            test_examples: 0,
            setup_seconds: 0.0,
            epochs: Vec::new(),
            final_train: None,
            final_test: None,
            peak_host_bytes: None,
            peak_device_bytes: None,
            failure: Some(reason),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.final_test.is_some()
    }

    /// The device the run used, or "-" when it never got one.
    pub fn device(&self) -> String {
        self.backend
            .as_ref()
            .map(|b| b.device.to_string())
            .unwrap_or_else(|| self.spec.device.to_string())
    }

    /// Epoch 1's training time.
    pub fn first_epoch_seconds(&self) -> Option<f64> {
        self.epochs.first().map(|e| e.train_seconds)
    }

    /// Median training time of epochs 2..N (epoch 1 alone when there is only one).
    pub fn median_epoch_seconds(&self) -> Option<f64> {
        let mut t: Vec<f64> = self
            .epochs
            .iter()
            .skip(usize::from(self.epochs.len() > 1))
            .map(|e| e.train_seconds)
            .collect();
        if t.is_empty() {
            return None;
        }
        t.sort_by(f64::total_cmp);
        let n = t.len();
        Some(if n % 2 == 1 {
            t[n / 2]
        } else {
            (t[n / 2 - 1] + t[n / 2]) / 2.0
        })
    }

    /// Training images per second in the median epoch.
    pub fn images_per_second(&self) -> Option<f64> {
        self.median_epoch_seconds()
            .filter(|&s| s > 0.0 && self.train_examples > 0)
            .map(|s| self.train_examples as f64 / s)
    }

    /// Training plus per-epoch evaluation time, all epochs.
    pub fn total_seconds(&self) -> f64 {
        self.epochs
            .iter()
            .map(|e| e.train_seconds + e.eval_seconds)
            .sum()
    }

    /// Training time until the test accuracy after an epoch first reached `threshold`.
    pub fn seconds_to_accuracy(&self, threshold: f64) -> Option<f64> {
        let mut t = 0.0;
        for e in &self.epochs {
            t += e.train_seconds;
            if e.test_accuracy >= threshold {
                return Some(t);
            }
        }
        None
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: not a run report: {e}", path.display())))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("cannot encode the report: {e}")))?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}

/// This process's peak resident memory so far, in bytes (Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
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

/// Checks that a new file can be created in `dir` (by creating and removing one), so that a long
/// job learns before it starts, not after, that its results could not be kept.
pub fn check_writable_dir(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".write-test.{}.tmp", std::process::id()));
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that a
/// reader never sees a partial file and a failure leaves the old file (or none).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
