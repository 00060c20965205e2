//! Sokoban micro-benchmarks: reset (room generation), step + render, fork, and the BFS solver.
//! Run with `cargo bench --bench sokoban`; the figures in BENCHMARKS.md come from
//! `tsr env bench --env sokoban`, which measures the same loop the trainer runs.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tsr::env::Env;
use tsr::env::sokoban::{Sokoban, SokobanAction, SokobanConfig, solve};

fn benches(c: &mut Criterion) {
    let mut env = Sokoban::new(&SokobanConfig::default()).expect("default config");
    let mut seed = 0u64;
    c.bench_function("sokoban_reset_6x6_1box", |b| {
        b.iter(|| {
            seed += 1;
            env.reset(black_box(seed));
        })
    });
    let two_boxes = SokobanConfig {
        rows: 8,
        cols: 8,
        boxes: 2,
        ..SokobanConfig::default()
    };
    let mut big = Sokoban::new(&two_boxes).expect("valid config");
    c.bench_function("sokoban_reset_8x8_2box", |b| {
        b.iter(|| {
            seed += 1;
            big.reset(black_box(seed));
        })
    });
    env.reset(7);
    let mut i = 0usize;
    c.bench_function("sokoban_step_and_render", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let out = env.step(SokobanAction::ALL[i % 4]);
            if out.done {
                env.reset(i as u64);
            }
            black_box(env.observation())
        })
    });
    c.bench_function("sokoban_fork", |b| b.iter(|| black_box(env.clone())));
    env.reset(7);
    c.bench_function("sokoban_solve_6x6_1box", |b| {
        b.iter(|| black_box(solve(env.room(), 1_000_000)))
    });
}

criterion_group!(sokoban, benches);
criterion_main!(sokoban);
