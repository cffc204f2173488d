//! The kernel counter's records read back, epoch by epoch.
//!
//! The counter (`cupti/kernel_counter.c`, a library that CUDA's driver loads into a run's process
//! when `CUDA_INJECTION64_PATH` names it) writes every kernel, memory copy and memory set with the
//! device's own start and end, and the harness's marks around each epoch's training, as lines of
//! text (the format is at the top of the C source). [`parse`] turns them into one
//! [`DeviceActivity`] per epoch: counts, the union of the kernels' intervals (the time the device
//! was busy, not the sum of the kernels' times, which overlap where streams run side by side), and
//! the five kernels that took the most time.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use epochs::{DeviceActivity, EpochRecord, KernelPass, KernelTime};

/// The header the counter writes first.
pub const HEADER: &str = "# lenet-kernels 1";
/// How many kernels [`DeviceActivity::top`] names.
pub const TOP: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KernelsError {
    #[error("cannot load the kernel counter {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("the kernel counter cannot record into {path} (the file cannot be written, or CUPTI refused)")]
    Start { path: String },
    #[error("cannot read the kernel counter's records {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the kernel counter's records do not start with `{HEADER}`")]
    Header,
    #[error("line {line} of the kernel counter's records is not a record: {text}")]
    Line { line: usize, text: String },
}

/// What the counter recorded over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Each epoch that has both marks, by number.
    pub epochs: BTreeMap<u32, DeviceActivity>,
    /// Records CUPTI dropped because a buffer was full (the counts are then too low).
    pub dropped: u64,
    /// Statuses of CUPTI calls that failed.
    pub failures: Vec<i32>,
}

impl Trace {
    /// Why the counts cannot be trusted, if they cannot: dropped records or failed CUPTI calls.
    pub fn trouble(&self) -> Option<String> {
        match (self.dropped, self.failures.first()) {
            (0, None) => None,
            (0, Some(status)) => Some(format!("a CUPTI call failed (status {status})")),
            (n, _) => Some(format!("CUPTI dropped {n} records")),
        }
    }
}

/// The kernel counter loaded into this process by the harness (a kernel pass), recording into a
/// file; the harness marks each epoch's training with it.
pub struct Counter {
    /// Never unloaded: CUPTI calls back into it until the process ends.
    library: std::mem::ManuallyDrop<libloading::Library>,
    records: std::path::PathBuf,
}

type Start = unsafe extern "C" fn(*const std::ffi::c_char) -> std::ffi::c_int;
type Mark = unsafe extern "C" fn(std::ffi::c_int, u32);
type Finish = unsafe extern "C" fn();

impl Counter {
    /// Loads the counter library at `library` and starts it recording into `records`; called
    /// before the process's first CUDA call, so that CUPTI sees every kernel.
    pub fn start(library: &Path, records: &Path) -> Result<Self, KernelsError> {
        let load = |reason: String| KernelsError::Load {
            path: library.display().to_string(),
            reason,
        };
        let path =
            std::ffi::CString::new(records.as_os_str().as_encoded_bytes()).map_err(|_| {
                KernelsError::Start {
                    path: records.display().to_string(),
                }
            })?;
        // SAFETY: the library is the project's counter (`cupti/kernel_counter.c`); loading it runs
        // no initialiser of its own, and `lenet_kernels_start` has the signature declared here.
        let library =
            unsafe { libloading::Library::new(library) }.map_err(|e| load(e.to_string()))?;
        // Never unloaded, even when it cannot record: CUPTI may hold its callbacks by then.
        let library = std::mem::ManuallyDrop::new(library);
        let started = unsafe {
            let start = library
                .get::<Start>(b"lenet_kernels_start\0")
                .map_err(|e| load(e.to_string()))?;
            start(path.as_ptr())
        };
        if started == 0 {
            return Err(KernelsError::Start {
                path: records.display().to_string(),
            });
        }
        Ok(Self {
            library,
            records: records.to_path_buf(),
        })
    }

    /// Marks the beginning (`begin`) or the end of an epoch's training.
    pub fn mark(&self, begin: bool, epoch: u32) {
        // SAFETY: as in `start`; a missing symbol leaves the epoch unmarked (and so unmeasured).
        unsafe {
            if let Ok(mark) = self.library.get::<Mark>(b"lenet_kernels_mark\0") {
                mark(std::ffi::c_int::from(begin), epoch);
            }
        }
    }

    /// Stops recording and reads the records back.
    pub fn finish(self) -> Result<Trace, KernelsError> {
        // SAFETY: as in `start`.
        unsafe {
            if let Ok(finish) = self.library.get::<Finish>(b"lenet_kernels_finish\0") {
                finish();
            }
        }
        read(&self.records)
    }
}

/// Gives each epoch of a kernel pass the activity the counter recorded for it, and says what the
/// pass measured: never zeros where nothing was (a counter that could not record, or saw no
/// kernel), but "no device activity measured" and why; records CUPTI dropped make a note.
pub fn attribute(trace: Result<Trace, KernelsError>, epochs: &mut [EpochRecord]) -> KernelPass {
    let trace = match trace {
        Ok(t) => t,
        Err(e) => return KernelPass::nothing(&e.to_string()),
    };
    for record in epochs.iter_mut() {
        record.device_activity = trace
            .epochs
            .get(&record.epoch)
            .filter(|a| a.kernels > 0)
            .cloned();
    }
    if epochs.iter().all(|r| r.device_activity.is_none()) {
        let why = trace
            .trouble()
            .unwrap_or_else(|| "the counter saw no kernel".into());
        return KernelPass::nothing(&why);
    }
    KernelPass {
        measured: true,
        note: trace.trouble(),
    }
}

/// Reads and parses the records file at `path`.
pub fn read(path: &Path) -> Result<Trace, KernelsError> {
    let text = std::fs::read_to_string(path).map_err(|e| KernelsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(&text)
}

/// One interval on the device, ns on CUPTI's clock.
#[derive(Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

/// Parses the counter's records (see the module's text).
pub fn parse(text: &str) -> Result<Trace, KernelsError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == HEADER => {}
        _ => return Err(KernelsError::Header),
    }
    let mut records = Records::default();
    let mut trace = Trace::default();
    for (i, line) in lines {
        records.read(i + 1, line, &mut trace)?;
    }
    records.kernels.sort_by_key(|(s, _, _)| (s.start, s.end));
    for (&epoch, &begin) in &records.begins {
        let Some(&end) = records.ends.get(&epoch).filter(|&&e| e >= begin) else {
            continue;
        };
        trace.epochs.insert(epoch, records.epoch(begin, end));
    }
    Ok(trace)
}

/// The counter's records, read line by line.
#[derive(Default)]
struct Records {
    names: HashMap<u32, String>,
    /// Each kernel's span, its name's index and whether it ran in a graph.
    kernels: Vec<(Span, u32, bool)>,
    copies: Vec<Span>,
    sets: Vec<Span>,
    /// The harness's marks: each epoch's first and last step.
    begins: BTreeMap<u32, u64>,
    ends: BTreeMap<u32, u64>,
}

impl Records {
    /// Line `number` of the records (its format is at the top of the C source); the dropped
    /// records and failed calls go straight into `trace`.
    fn read(&mut self, number: usize, line: &str, trace: &mut Trace) -> Result<(), KernelsError> {
        let bad = || KernelsError::Line {
            line: number,
            text: line.chars().take(120).collect(),
        };
        let mut fields = line.split(' ');
        let kind = fields.next().unwrap_or_default();
        let mut next = || -> Result<u64, KernelsError> {
            fields
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        match kind {
            "" => {}
            "N" => {
                let index = u32::try_from(next()?).map_err(|_| bad())?;
                let name = line
                    .splitn(3, ' ')
                    .nth(2)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(bad)?;
                self.names.insert(index, demangle(name));
            }
            "K" => {
                let span = span(next()?, next()?).ok_or_else(bad)?;
                let index = u32::try_from(next()?).map_err(|_| bad())?;
                let graph = next()? != 0;
                if !self.names.contains_key(&index) {
                    return Err(bad());
                }
                self.kernels.push((span, index, graph));
            }
            "C" | "S" => {
                let span = span(next()?, next()?).ok_or_else(bad)?;
                next()?;
                if kind == "C" {
                    self.copies.push(span);
                } else {
                    self.sets.push(span);
                }
            }
            "M" => self.mark(line, &bad)?,
            "D" => trace.dropped += next()?,
            "F" => {
                let status = line.split(' ').nth(1).and_then(|f| f.parse::<i32>().ok());
                trace.failures.push(status.ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// A mark line, `M <at> B|E <epoch>`.
    fn mark(&mut self, line: &str, bad: &dyn Fn() -> KernelsError) -> Result<(), KernelsError> {
        let mut fields = line.split(' ').skip(1);
        let at = fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(bad)?;
        let which = fields.next().ok_or_else(bad)?;
        let epoch = fields
            .next()
            .and_then(|f| f.parse::<u32>().ok())
            .ok_or_else(bad)?;
        match which {
            "B" => self.begins.insert(epoch, at),
            "E" => self.ends.insert(epoch, at),
            _ => return Err(bad()),
        };
        Ok(())
    }

    /// What the device did between the marks `begin` and `end` (the kernels sorted by start).
    fn epoch(&self, begin: u64, end: u64) -> DeviceActivity {
        let within = |s: &Span| s.start >= begin && s.start <= end;
        let kernels: Vec<&(Span, u32, bool)> =
            self.kernels.iter().filter(|(s, _, _)| within(s)).collect();
        let spans: Vec<Span> = kernels.iter().map(|(s, _, _)| *s).collect();
        DeviceActivity {
            kernels: kernels.len() as u64,
            graph_kernels: kernels.iter().filter(|(_, _, g)| *g).count() as u64,
            copies: self.copies.iter().filter(|s| within(s)).count() as u64,
            sets: self.sets.iter().filter(|s| within(s)).count() as u64,
            busy_seconds: union_ns(&spans) as f64 * 1e-9,
            kernel_seconds: spans.iter().map(|s| s.end - s.start).sum::<u64>() as f64 * 1e-9,
            span_seconds: (end - begin) as f64 * 1e-9,
            top: self.top(&kernels),
        }
    }

    /// The [`TOP`] kernels by time among `kernels`.
    fn top(&self, kernels: &[&(Span, u32, bool)]) -> Vec<KernelTime> {
        let mut by_name: HashMap<u32, (u64, u64)> = HashMap::new();
        for (s, index, _) in kernels {
            let entry = by_name.entry(*index).or_default();
            entry.0 += 1;
            entry.1 += s.end - s.start;
        }
        // Kernels with the same name under two indices (the counter's table was full) are one.
        let mut named: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (index, (count, ns)) in by_name {
            let entry = named.entry(self.names[&index].as_str()).or_default();
            entry.0 += count;
            entry.1 += ns;
        }
        let mut top: Vec<KernelTime> = named
            .into_iter()
            .map(|(name, (count, ns))| KernelTime {
                name: name.to_string(),
                count,
                seconds: ns as f64 * 1e-9,
            })
            .collect();
        top.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.name.cmp(&b.name)));
        top.truncate(TOP);
        top
    }
}

/// A kernel's C++ name as its source wrote it (`void at::native::foo<float>(...)`); a name that
/// is not mangled C++ (PTX compiled from Rust or Triton, say) as it is.
pub fn demangle(name: &str) -> String {
    cpp_demangle::Symbol::new(name)
        .ok()
        .and_then(|s| s.demangle().ok())
        .unwrap_or_else(|| name.to_string())
}

fn span(start: u64, end: u64) -> Option<Span> {
    (end >= start).then_some(Span { start, end })
}

/// The length of the union of intervals sorted by start.
fn union_ns(sorted: &[Span]) -> u64 {
    let mut total = 0;
    let mut current: Option<Span> = None;
    for s in sorted {
        current = match current {
            Some(c) if s.start <= c.end => Some(Span {
                start: c.start,
                end: c.end.max(s.end),
            }),
            Some(c) => {
                total += c.end - c.start;
                Some(*s)
            }
            None => Some(*s),
        };
    }
    total + current.map_or(0, |c| c.end - c.start)
}
