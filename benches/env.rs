//! Environment speed: FrozenLake and Sokoban step (with and without rendering), reset, fork.
//! Environments are built through `TaskEnv::new` so that each bench measures whatever the task
//! is in this build, exactly as the trainer holds it.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tsr::config::Config;
use tsr::env::{Env, TaskEnv, TaskKind};

/// A fixed pseudo-random action sequence, so the measured loop does no RNG work of its own.
fn action_sequence(env: &TaskEnv) -> Vec<<TaskEnv as Env>::Action> {
    let actions: Vec<_> = env
        .action_names()
        .iter()
        .filter_map(|n| env.parse_action(n))
        .collect();
    if actions.is_empty() {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..4096)
        .map(|_| actions[rng.random_range(0..actions.len())])
        .collect()
}

fn bench_task(c: &mut Criterion, kind: TaskKind) {
    let name = kind.name();
    let mut env = TaskEnv::new(kind, &Config::default()).expect("default config builds");
    env.reset(0);
    let actions = action_sequence(&env);
    if actions.is_empty() {
        eprintln!("{name}: no actions in this build, step benches skipped");
    } else {
        for render in [false, true] {
            let label = if render { "step_render" } else { "step" };
            let mut env = env.clone();
            let (mut i, mut seed) = (0usize, 0u64);
            c.bench_function(&format!("{name}/{label}"), |b| {
                b.iter(|| {
                    let out = env.step(actions[i % actions.len()]);
                    i += 1;
                    if render {
                        black_box(env.observation());
                    }
                    if out.done {
                        seed += 1;
                        env.reset(seed);
                    }
                    black_box(out)
                })
            });
        }
    }
    let mut seed = 0u64;
    c.bench_function(&format!("{name}/reset"), |b| {
        b.iter(|| {
            seed += 1;
            env.reset(black_box(seed));
        })
    });
    c.bench_function(&format!("{name}/fork"), |b| {
        b.iter(|| black_box(env.clone()))
    });
}

fn frozenlake(c: &mut Criterion) {
    bench_task(c, TaskKind::FrozenLake);
}

fn sokoban(c: &mut Criterion) {
    bench_task(c, TaskKind::Sokoban);
}

criterion_group!(benches, frozenlake, sokoban);
criterion_main!(benches);
