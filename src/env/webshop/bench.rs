//! WebShop throughput for `tsr env bench --env webshop` and `benches/webshop.rs`: catalog load
//! and index build time, search queries per second, and environment steps per second under a
//! random valid-action policy (searches included).

use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::search::SearchIndex;
use super::{WebShop, WebShopConfig, WebShopError};
use crate::env::Env;

#[derive(Debug, Serialize)]
pub struct WebShopBenchReport {
    /// "synthetic" or the products file.
    pub catalog: String,
    /// Products in the catalog.
    pub products: usize,
    /// Synthetic goals the catalog gives (all splits).
    pub goals: usize,
    /// Building the environment: load (or generate) the catalog, index it, build the goals.
    pub build_ms: f64,
    /// Of which: building the search index alone (re-measured separately).
    pub index_build_ms: f64,
    /// BM25 top-50 searches per second (queries: goal instructions, lower-cased).
    pub searches_per_s: f64,
    /// Steps per second, random valid actions, 10% of them searches, observation rendered
    /// after every step.
    pub steps_per_s: f64,
    /// Baseline: the same policy searching only where it must (the start page, reached at
    /// reset and by "back to search"), which shows what the extra searches cost.
    pub steps_per_s_click_only: f64,
    /// Share of the policy's steps that were searches.
    pub search_share: f64,
    /// Episodes finished (Buy Now or the step limit) during the step measurement.
    pub episodes: u64,
    /// Mean reward of those episodes (random policy).
    pub mean_reward: f64,
}

struct PolicyRun {
    steps_per_s: f64,
    search_share: f64,
    episodes: u64,
    mean_reward: f64,
}

/// Play random valid actions for about `budget`. With `search_prob`, a step is a search for a
/// random goal instruction from whatever page; otherwise a uniformly random available action
/// (the start page's only action is a search).
fn run_policy(env: &WebShop, queries: &[String], search_prob: f64, budget: Duration) -> PolicyRun {
    let mut env = env.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut steps, mut searches, mut episodes, mut reward_sum, mut seed) =
        (0u64, 0u64, 0u64, 0.0, 0u64);
    let mut bytes = 0usize;
    env.reset(seed);
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..200 {
            let names = env.action_names();
            let pick = names.choose(&mut rng).cloned().unwrap_or_default();
            let text = if pick.starts_with("search[") || rng.random_bool(search_prob) {
                searches += 1;
                let q = queries.choose(&mut rng).map_or("", String::as_str);
                format!("search[{q}]")
            } else {
                pick
            };
            let Some(action) = env.parse_action(&text) else {
                continue;
            };
            let out = env.step(action);
            bytes += env.observation().len();
            steps += 1;
            if out.done {
                episodes += 1;
                reward_sum += out.reward;
                seed += 1;
                env.reset(seed);
            }
        }
    }
    std::hint::black_box(bytes);
    PolicyRun {
        steps_per_s: steps as f64 / start.elapsed().as_secs_f64(),
        search_share: searches as f64 / steps.max(1) as f64,
        episodes,
        mean_reward: reward_sum / episodes.max(1) as f64,
    }
}

/// Measure everything for the catalog `config` names; `budget` is per rate measurement.
pub fn measure(
    config: &WebShopConfig,
    budget: Duration,
) -> Result<WebShopBenchReport, WebShopError> {
    let t = Instant::now();
    let env = WebShop::new(config)?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let catalog = env.catalog();
    let texts: Vec<String> = catalog.products.iter().map(|p| p.indexed_text()).collect();
    let t = Instant::now();
    let index = SearchIndex::build(
        catalog
            .products
            .iter()
            .zip(&texts)
            .map(|(p, s)| (p.asin.as_str(), s.as_str())),
    );
    let index_build_ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(index.len());
    let queries: Vec<String> = env
        .all_goals()
        .iter()
        .map(|g| g.instruction.to_lowercase().replace(['[', ']'], " "))
        .collect();
    let t = Instant::now();
    let mut searches = 0u64;
    while t.elapsed() < budget {
        for q in queries
            .iter()
            .cycle()
            .skip(searches as usize % queries.len().max(1))
            .take(100)
        {
            std::hint::black_box(catalog.index.search(q));
            searches += 1;
        }
    }
    let searches_per_s = searches as f64 / t.elapsed().as_secs_f64();
    let with_search = run_policy(&env, &queries, 0.1, budget);
    let click_only = run_policy(&env, &queries, 0.0, budget);
    Ok(WebShopBenchReport {
        catalog: if config.products.is_empty() {
            "synthetic".into()
        } else {
            config.products.clone()
        },
        products: catalog.products.len(),
        goals: env.all_goals().len(),
        build_ms,
        index_build_ms,
        searches_per_s,
        steps_per_s: with_search.steps_per_s,
        steps_per_s_click_only: click_only.steps_per_s,
        search_share: with_search.search_share,
        episodes: with_search.episodes,
        mean_reward: with_search.mean_reward,
    })
}
