//! Training runs: the step plan, the learner, validation, the run folder, and the serial
//! (deterministic) loop. The actor system in `crate::actors` drives the same pieces.

pub mod config;
pub mod plan;
pub mod run_dir;

pub use config::{ActorsSection, MetricsSection, TrainSection};
