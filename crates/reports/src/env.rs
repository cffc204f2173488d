//! Where a run ran: the machine, the versions, the command, probed once at its start.

use std::path::Path;

use serde::{Deserialize, Serialize};

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
    /// The command line of the run process, with no path of the machine it ran on (see
    /// [`portable_command`]).
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
            command: portable_command(std::env::args(), std::env::current_dir().ok().as_deref()),
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

/// A command line as it can be published: the program by its file name alone, and every absolute
/// path (an argument, or the value of `--option=PATH`) relative to `cwd` when it lies under it, else
/// by its file name alone. Relative paths stay as they were given.
pub fn portable_command(args: impl IntoIterator<Item = String>, cwd: Option<&Path>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            if i == 0 {
                return file_name(&arg);
            }
            match arg.split_once('=') {
                Some((option, value)) if option.starts_with("--") => {
                    format!("{option}={}", portable_path(value, cwd))
                }
                _ => portable_path(&arg, cwd),
            }
        })
        .collect()
}

/// An absolute path relative to `cwd` if it lies under it, else its file name; anything else as it is.
fn portable_path(arg: &str, cwd: Option<&Path>) -> String {
    let path = Path::new(arg);
    if !path.is_absolute() {
        return arg.to_string();
    }
    match cwd.and_then(|c| path.strip_prefix(c).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        Some(_) => ".".into(),
        None => file_name(arg),
    }
}

fn file_name(arg: &str) -> String {
    Path::new(arg)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg.to_string())
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
