//! Summaries: step outcomes (success, pass@k, difficulty buckets) and the experiment table.

use std::path::PathBuf;

use tsr::search::{Episode, EpisodeSpec, SearchCounts};
use tsr::train::experiment::{ExperimentFile, RunResult, results_table};
use tsr::train::plan::{Layout, Outcomes, replay_specs, training_specs, validation_specs};

fn episode(group: usize, success: bool, ret: f64, optimal_len: Option<usize>) -> Episode {
    Episode {
        spec: EpisodeSpec {
            id: 0,
            group,
            env_seed: group as u64,
            sample_seed: 0,
        },
        tokens: vec![],
        assistant_mask: vec![],
        token_version: vec![],
        turns: vec![],
        ret,
        success,
        format_errors: 0,
        generated_tokens: 0,
        search: SearchCounts::default(),
        truncated: false,
        seconds: 0.0,
        optimal_len,
    }
}

#[test]
fn outcomes_count_success_pass_at_k_and_difficulty() {
    let eps = vec![
        episode(0, true, 10.9, Some(1)),
        episode(0, false, -1.0, Some(1)),
        episode(1, false, -1.0, Some(4)),
        episode(1, false, -1.0, Some(4)),
        episode(2, true, 10.9, Some(7)),
        episode(2, true, 10.9, Some(7)),
    ];
    let o = Outcomes::of(&eps);
    assert_eq!(o.episodes, 6);
    assert!((o.success_rate - 0.5).abs() < 1e-12);
    assert!(
        (o.pass_at_k - 2.0 / 3.0).abs() < 1e-12,
        "groups 0 and 2 have a success"
    );
    let labels: Vec<(&str, usize, f64)> = o
        .by_optimal_len
        .iter()
        .map(|b| (b.label, b.episodes, b.success_rate))
        .collect();
    assert_eq!(
        labels,
        vec![("1-2", 2, 0.5), ("3-4", 2, 0.0), ("5+", 2, 1.0)]
    );
}

#[test]
fn step_plans_follow_the_seed_rule_and_never_collide() {
    let layout = Layout {
        groups: 8,
        group_size: 16,
    };
    let step3 = training_specs(3, layout, 10_000, 1);
    assert_eq!(step3.len(), 128);
    assert!(
        step3
            .iter()
            .all(|s| s.env_seed == 10_000 + 8 * 3 + s.group as u64),
        "train_seed + groups*k + i"
    );
    let val = validation_specs(layout, 123, 1);
    assert!(val.iter().all(|s| s.env_seed == 123 + s.group as u64));
    let mut ids: Vec<u64> = step3
        .iter()
        .chain(&val)
        .chain(&training_specs(4, layout, 10_000, 1))
        .map(|s| s.id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        128 * 3,
        "episode ids are unique across steps and validation"
    );
    assert_eq!(
        validation_specs(layout, 123, 1),
        val,
        "validation is the same every time"
    );
}

#[test]
fn replayed_instances_follow_the_fresh_groups_of_their_step() {
    let layout = Layout {
        groups: 4,
        group_size: 2,
    };
    let fresh = training_specs(5, layout, 10_000, 1);
    let replayed = replay_specs(5, layout, &[10_003, 10_001], 1);
    assert_eq!(replayed.len(), 4, "two instances, group_size episodes each");
    assert_eq!(
        replayed
            .iter()
            .map(|s| (s.group, s.env_seed))
            .collect::<Vec<_>>(),
        [(4, 10_003), (4, 10_003), (5, 10_001), (5, 10_001)],
        "groups continue after the fresh ones and play the given seeds in order"
    );
    assert!(
        fresh
            .iter()
            .all(|s| s.env_seed == 10_000 + 4 * 5 + s.group as u64),
        "the fresh groups keep the spec's seed rule"
    );
    let mut ids: Vec<u64> = fresh.iter().chain(&replayed).map(|s| s.id).collect();
    let mut samples: Vec<u64> = fresh
        .iter()
        .chain(&replayed)
        .map(|s| s.sample_seed)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    samples.sort_unstable();
    samples.dedup();
    assert_eq!(ids.len(), 12, "replayed episodes have ids of their own");
    assert_eq!(samples.len(), 12, "and sampling seeds of their own");
    assert!(
        ids.iter().all(|&id| id >> 20 == 5),
        "within the step's id range"
    );
}

fn result(search: &str, seed: u64, fin: f64, tokens: u64) -> RunResult {
    RunResult {
        task: "frozenlake".into(),
        algo: "grpo".into(),
        search: search.into(),
        seed,
        run_dir: PathBuf::new(),
        curve: vec![(0, 0.2), (10, fin)],
        final_success: fin,
        best_success: fin,
        steps_to_level: (fin >= 0.5).then_some(10),
        rollout_tokens: tokens,
        wall_s: 1.0,
    }
}

/// A FrozenLake, GRPO-only grid of these searches and seeds (10 updates per run, level 50%).
fn frozenlake_grpo(searches: &[&str], seeds: &[u64]) -> ExperimentFile {
    ExperimentFile {
        tasks: [("frozenlake".to_string(), PathBuf::new())].into(),
        algos: vec!["grpo".into()],
        searches: searches.iter().map(|s| s.to_string()).collect(),
        seeds: seeds.to_vec(),
        steps: 10,
        success_level: 0.5,
        overrides: vec![],
        out_dir: PathBuf::new(),
    }
}

#[test]
fn results_table_reports_mean_std_and_ratios_to_no_search() {
    let exp = frozenlake_grpo(&["none", "best_of_n"], &[1, 2]);
    let results = vec![
        result("none", 1, 0.2, 100),
        result("none", 2, 0.4, 100),
        result("best_of_n", 1, 0.6, 400),
        result("best_of_n", 2, 0.6, 400),
    ];
    let table = results_table(&exp, &results);
    // Rows follow the experiment file's order (plain sampling first), with their seed count and
    // the difference of final success to plain sampling's in points.
    let none = table
        .find("| frozenlake | grpo | none | 2/2 | 30.0% ± 14.1 | 30.0% ± 14.1 |  | not reached | 1.00x | 1.00x |")
        .expect(&table);
    let searched = table
        .find("| frozenlake | grpo | best_of_n | 2/2 | 60.0% ± 0.0 | 60.0% ± 0.0 | +30.0 | 10 (2/2) | 4.00x | 1.00x |")
        .expect(&table);
    assert!(none < searched, "{table}");
}

#[test]
fn results_table_shows_partial_cells_without_a_spread_for_one_seed() {
    let exp = frozenlake_grpo(&["none", "beam", "lookahead"], &[1, 2, 3]);
    let results = vec![
        result("none", 1, 0.2, 100),
        result("none", 2, 0.3, 100),
        result("beam", 3, 0.45, 250),
    ];
    let table = results_table(&exp, &results);
    assert!(
        table.contains(
            "| frozenlake | grpo | beam | 1/3 | 45.0% | 45.0% | +20.0 | not reached | 2.50x |"
        ),
        "{table}"
    );
    assert!(!table.contains("lookahead"), "no row without runs: {table}");
}
