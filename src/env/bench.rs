//! Environment throughput, shared by `tsr env bench` and the criterion benches: steps with a text
//! render per step, and reset latency.

use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::Env;

#[derive(Debug, Serialize)]
pub struct EnvBenchReport {
    pub env: String,
    /// Random-action steps per second, rendering the text observation after every step.
    pub steps_with_render_per_s: f64,
    /// Random-action steps per second without rendering.
    pub steps_per_s: f64,
    /// Median wall time of one `reset`, in microseconds.
    pub reset_median_us: f64,
    /// 90th percentile of `reset`, in microseconds.
    pub reset_p90_us: f64,
    pub resets_measured: usize,
}

/// Play uniformly random actions for about `budget` per measurement.
pub fn measure<E: Env>(env: &E, budget: Duration) -> EnvBenchReport {
    let names = env.action_names();
    let actions: Vec<E::Action> = names.iter().filter_map(|n| env.parse_action(n)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let steps_rate = |render: bool, rng: &mut ChaCha8Rng| {
        let mut env = env.clone();
        let mut seed = 0u64;
        env.reset(seed);
        let (mut steps, mut bytes) = (0u64, 0usize);
        let start = Instant::now();
        while start.elapsed() < budget {
            for _ in 0..1000 {
                let a = actions[rng.random_range(0..actions.len())];
                let out = env.step(a);
                if render {
                    bytes += env.observation().len();
                }
                steps += 1;
                if out.done {
                    seed += 1;
                    env.reset(seed);
                }
            }
        }
        std::hint::black_box(bytes);
        steps as f64 / start.elapsed().as_secs_f64()
    };
    let with_render = steps_rate(true, &mut rng);
    let bare = steps_rate(false, &mut rng);
    let mut times = Vec::new();
    let mut e = env.clone();
    let start = Instant::now();
    let mut seed = 1_000_000u64;
    while start.elapsed() < budget || times.len() < 10 {
        let t = Instant::now();
        e.reset(seed);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        seed += 1;
    }
    times.sort_by(f64::total_cmp);
    EnvBenchReport {
        env: format!("{:?}", std::any::type_name::<E>()),
        steps_with_render_per_s: with_render,
        steps_per_s: bare,
        reset_median_us: times[times.len() / 2],
        reset_p90_us: times[times.len() * 9 / 10],
        resets_measured: times.len(),
    }
}
