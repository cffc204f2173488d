//! What a run measures while it trains, beside its own clocks: the GPU as its driver counts it
//! ([`gpu`]: the memory the run's process holds and the board's energy, through NVML), and what the
//! device itself did, kernel by kernel ([`kernels`]: the records of the kernel counter, a CUPTI
//! library loaded into a kernel pass's process), and the host's memory epoch by epoch ([`host`]).
//! Each is a [`meter::Meter`], an observer of the epoch loop that writes its own fields into each
//! epoch's record; [`meter::Meters::for_run`] lists them. [`cold`] times a new process until its
//! first answer, for serving. Nothing here reads or writes a report.

pub mod cold;
pub mod gpu;
pub mod host;
pub mod kernels;
pub mod meter;

pub use meter::{KernelCounter, Meters, RunMeasures};
