//! Training runs: the step plan, the learner, validation, the run folder, and the serial
//! (deterministic) loop. The actor system in `crate::actors` drives the same pieces.

pub mod bench;
pub mod config;
pub mod plan;
pub mod replay;
pub mod run_dir;

pub use config::{ActorsSection, MetricsSection, TrainSection};
pub mod driver;
pub mod experiment;
pub mod learner;
pub mod serial;
pub mod setup;

/// Export an update's figures as Prometheus metrics.
pub fn report_update(r: &learner::UpdateReport) {
    use crate::metrics as m;
    metrics::counter!(m::TRAIN_STEPS).increment(1);
    metrics::counter!(m::SKIPPED_STEPS).increment(r.skipped as u64);
    metrics::counter!(m::TOKENS_TRAINED).increment(r.tokens_trained as u64);
    metrics::gauge!(m::LOSS, "kind" => "policy").set(r.pg_loss);
    metrics::gauge!(m::LOSS, "kind" => "value").set(r.value_loss);
    metrics::gauge!(m::KL).set(r.ppo_kl);
    metrics::gauge!(m::ENTROPY).set(r.entropy);
    metrics::gauge!(m::GRAD_NORM).set(r.grad_norm);
    metrics::gauge!(m::POLICY_LAG).set(r.lag_mean);
    metrics::histogram!(m::LEARNER_PHASE_SECONDS, "phase" => "prepare").record(r.time_prepare_s);
    metrics::histogram!(m::LEARNER_PHASE_SECONDS, "phase" => "update").record(r.time_update_s);
}
pub mod warmup;
