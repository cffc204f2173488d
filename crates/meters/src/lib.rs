//! What a run measures while it trains, beside its own clocks: the GPU as its driver counts it
//! ([`gpu`]: the memory the run's process holds and the board's energy, through NVML), and what the
//! device itself did, kernel by kernel ([`kernels`]: the records of the kernel counter, a CUPTI
//! library loaded into a kernel pass's process). Used by the `lenet` binary around each epoch;
//! nothing here reads or writes a report.

pub mod gpu;
pub mod kernels;
