//! Running a pipeline: executors (local, Slurm), the scheduler and its frontier, the live
//! display and the run journal.

pub mod executor;
pub mod frontier;
pub mod journal;
pub mod observer;
pub mod scheduler;
pub mod slurm;
pub mod staged;
