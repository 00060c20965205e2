//! The policy: tokenizer, Qwen2-style decoder, sampling, training and checkpoints.
//!
//! One set of weights serves two paths: a differentiable full-sequence forward built from candle
//! ops (training, conformance) and an inference path with a per-sequence KV cache over packed
//! (ragged) batches, where forked samples share their prompt's cache.

mod alloc;
mod arch;
pub mod bench;
mod bench_kernel;
mod block_attention;
mod checkpoint;
mod error;
mod forward;
mod fused;
mod fused_attention;
mod fused_layer;
mod generate;
pub mod grammar;
mod infer;
mod kernels;
mod ops;
mod optim;
mod params;
// The `Policy` type itself; re-exported below, so the path `policy::policy` never shows.
#[allow(clippy::module_inception)]
mod policy;
mod prompt_cache;
mod regions;
mod sampling;
pub mod schedule;
mod section;
mod simd;
mod skinny;
mod tokenizer;
mod train;

pub use alloc::tune_allocator;
pub use arch::{Arch, PRESETS, preset_arch};
pub use error::PolicyError;
pub use forward::ForwardOutput;
pub use generate::{Finish, GenOutput, GenRequest, Sample};
pub use grammar::ReplyGrammar;
pub use optim::{OptStats, PolicyOptimizer};
pub use params::{Params, Weights};
pub use policy::Policy;
pub use sampling::Sampling;
pub use schedule::{LrSchedule, ScheduleKind};
pub use section::ModelSection;
pub use tokenizer::{ChatMessage, Tokenizer};
pub use train::{TrainBatch, TrainForward};
