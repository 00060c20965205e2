//! WebShop micro-benchmarks: one BM25 search, one purchase reward, one render. The 1k catalog is
//! used when `TSR_WEBSHOP_DIR` (or ../shared/webshop) has it, else the synthetic catalog.
//! Throughput figures for BENCHMARKS.md come from `tsr env bench --env webshop`.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use tsr::env::Env;
use tsr::env::webshop::{WebShop, WebShopConfig};

fn config() -> WebShopConfig {
    let dir = std::env::var("TSR_WEBSHOP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/webshop"))
        });
    if !dir.join("products_1k.json").exists() {
        return WebShopConfig::default();
    }
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    WebShopConfig {
        products: path("products_1k.json"),
        attributes: path("items_ins_v2_1000.json"),
        title_nouns: path("title_nouns_1k.json"),
        ..WebShopConfig::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut env = WebShop::new(&config()).expect("catalog loads");
    env.reset(0);
    let query = env.goal().instruction.to_lowercase();
    c.bench_function("webshop_search_instruction", |b| {
        b.iter(|| std::hint::black_box(env.catalog().index.search(&query)))
    });
    let goal = env.goal().clone();
    c.bench_function("webshop_reward_goal_product", |b| {
        b.iter(|| std::hint::black_box(env.score_purchase(goal.product, &goal.options)))
    });
    let search = env
        .parse_action(&format!("search[{query}]"))
        .expect("parses");
    env.step(search);
    c.bench_function("webshop_render_results_page", |b| {
        b.iter(|| std::hint::black_box(env.observation()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
