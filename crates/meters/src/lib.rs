//! What a run measures while it trains, beside its own clocks: the GPU as its driver counts it
//! ([`gpu`]: the memory the run's process holds and the board's energy, through NVML). Used by the
//! `lenet` binary around each epoch; nothing here reads or writes a report.

pub mod gpu;
