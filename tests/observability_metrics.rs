//! The metric set without a run: `init_series` creates every declared metric (labelled series
//! at 0), and episodes are counted by phase and outcome with their search spending. Uses a local
//! recorder and the exporter's own renderer, so the text is what `/metrics` would serve.

use metrics_exporter_prometheus::PrometheusBuilder;
use tsr::metrics as m;
use tsr::search::episode::{Episode, EpisodeSpec, SearchCounts, TurnLog};

/// The value of the sample line that starts with `series` (name plus labels, exactly).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn episode(
    id: u64,
    success: bool,
    truncated: bool,
    actions: usize,
    search: SearchCounts,
) -> Episode {
    Episode {
        spec: EpisodeSpec {
            id,
            group: 0,
            env_seed: 1,
            sample_seed: 2,
        },
        tokens: vec![1, 2, 3],
        assistant_mask: vec![0, 1, 1],
        token_version: vec![0, 1, 1],
        turns: vec![TurnLog {
            user: "u".into(),
            reply: "r".into(),
            actions: vec!["Up".into(); actions],
            reward: 0.0,
            penalty: 0.0,
            policy_version: 1,
        }],
        ret: if success { 1.0 } else { 0.0 },
        success,
        format_errors: 0,
        generated_tokens: 10,
        search,
        truncated,
        seconds: 1.0,
        optimal_len: None,
    }
}

#[test]
fn init_series_creates_every_declared_metric_at_zero_and_episodes_count_by_outcome() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        m::describe();
        m::init_series("frozenlake", "best_of_n");
    });
    let text = handle.render();
    for name in m::ALL {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    for phase in m::PHASES_ROLLOUT {
        for outcome in m::OUTCOMES {
            let s = format!("{}{{phase=\"{phase}\",outcome=\"{outcome}\"}}", m::EPISODES);
            assert_eq!(value(&text, &s), 0.0);
        }
    }
    for role in m::QUEUE_ROLES {
        assert_eq!(
            value(&text, &format!("{}{{role=\"{role}\"}}", m::QUEUE_DEPTH)),
            0.0
        );
    }
    assert_eq!(
        value(&text, "tsr_env_steps_total{task=\"frozenlake\"}"),
        0.0
    );
    assert_eq!(
        value(&text, "tsr_search_forks_total{search=\"best_of_n\"}"),
        0.0
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&text, &format!("tsr_build_info{{version=\"{version}\"}}")),
        1.0
    );

    let spent = SearchCounts {
        extra_candidates: 3,
        forks: 4,
        discarded_tokens: 5,
        seconds: 0.5,
    };
    let train = [
        episode(1, true, false, 2, spent),
        episode(2, false, true, 3, spent),
        episode(3, false, false, 1, spent),
    ];
    let validation = [episode(4, true, false, 1, SearchCounts::default())];
    metrics::with_local_recorder(&recorder, || {
        m::record_episodes(&train, 1.0, true);
        m::record_episodes(&validation, 0.25, false);
    });
    let text = handle.render();
    let episodes = |phase: &str, outcome: &str| {
        value(
            &text,
            &format!("tsr_episodes_total{{phase=\"{phase}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(episodes("train", "success"), 1.0);
    assert_eq!(episodes("train", "truncated"), 1.0);
    assert_eq!(episodes("train", "failure"), 1.0);
    assert_eq!(episodes("validation", "success"), 1.0);
    assert_eq!(episodes("validation", "failure"), 0.0);
    assert_eq!(
        value(&text, "tsr_env_steps_total{task=\"frozenlake\"}"),
        7.0
    );
    assert_eq!(
        value(&text, "tsr_search_candidates_total{search=\"best_of_n\"}"),
        9.0
    );
    assert_eq!(
        value(&text, "tsr_search_forks_total{search=\"best_of_n\"}"),
        12.0
    );
    assert_eq!(
        value(&text, "tsr_search_tokens_total{search=\"best_of_n\"}"),
        15.0
    );
    assert_eq!(
        value(&text, "tsr_tokens_generated_total{phase=\"train\"}"),
        30.0
    );
    // 1.5 s of search in 3 episodes of 1 s each.
    assert_eq!(
        value(&text, "tsr_search_time_ratio{search=\"best_of_n\"}"),
        0.5
    );
    // 3 committed turns (one per episode), each its own candidate, plus 9 extra candidates.
    assert_eq!(
        value(
            &text,
            "tsr_search_candidates_per_turn{search=\"best_of_n\"}"
        ),
        4.0
    );
    assert_eq!(value(&text, "tsr_train_success_ratio"), 1.0 / 3.0);
    assert_eq!(value(&text, "tsr_validation_success_ratio"), 1.0);
}
