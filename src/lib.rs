//! tsr: Trajectory-Search Rollouts, an actor-based RL trainer for multi-turn LLM agents.
//!
//! Layout: `env` (tasks), `policy` (the Qwen2-style decoder), `search` (TSR strategies),
//! `algo` (PPO/GRPO math), `actors` (the message-passing system that wires them), plus
//! `config` and `metrics`.

pub mod actors;
pub mod algo;
pub mod config;
pub mod env;
pub mod faults;
pub mod metrics;
pub mod plot;
pub mod policy;
pub mod progress;
pub mod search;
pub mod train;
