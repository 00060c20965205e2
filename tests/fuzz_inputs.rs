//! Bad input, tried systematically: random TOML files and `-c` overrides for the config loader,
//! random replies for the reply parser and the turn player, random text for the Sokoban
//! level-file parser. Never a panic; a rejected input is a clear error naming where it failed.

use std::io::Write;

use proptest::prelude::*;
use tsr::config::Config;
use tsr::env::frozenlake::FrozenLake;
use tsr::env::sokoban::levels::parse_levels;
use tsr::env::{TurnRules, parse_reply, play_turn};

/// Section and key names, known and unknown, so that both paths are exercised.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "steps",
            "seed",
            "task",
            "lr",
            "preset",
            "listen",
            "kind",
            "group_size",
            "env_groups",
            "policy_lag",
            "queue_bound",
            "env_panic_p",
            "max_turns",
            "temperature",
            "out_dir",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

fn section() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            Config::SECTIONS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
        )
        .prop_map(str::to_owned),
        "[a-z]{1,8}",
    ]
}

/// TOML values of every type, including ones no key accepts.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("nan".to_owned()),
        Just("-inf".to_owned()),
        any::<bool>().prop_map(|v| v.to_string()),
        "[ -~]{0,12}".prop_map(|s| toml::Value::String(s).to_string()),
        Just("[1, 2, 3]".to_owned()),
        Just("{ a = 1 }".to_owned()),
        Just("1979-05-27".to_owned()),
        "[ -~]{0,12}",
    ]
}

fn toml_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        section().prop_map(|s| format!("[{s}]")),
        (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        "[ -~]{0,30}",
    ];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

fn override_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (section(), key(), value()).prop_map(|(s, k, v)| format!("{s}.{k}={v}")),
        (section(), value()).prop_map(|(s, v)| format!("{s}={v}")),
        (section(), key(), key(), value()).prop_map(|(s, a, b, v)| format!("{s}.{a}.{b}={v}")),
        "[ -~]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn config_loader_never_panics_and_names_every_problem(
        text in toml_text(),
        overrides in prop::collection::vec(override_text(), 0..4),
    ) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        match Config::load(Some(file.path()), &overrides) {
            Ok(config) => prop_assert!(config.validate().is_ok()),
            Err(e) => {
                prop_assert!(!e.issues.is_empty(), "an error lists its problems");
                for issue in &e.issues {
                    prop_assert!(!issue.key.is_empty() && !issue.problem.is_empty(), "{issue}");
                }
            }
        }
    }

    #[test]
    fn reply_parser_and_turn_player_accept_any_text(
        text in prop_oneof![
            "[ -~\n]{0,80}",
            ("[ -~]{0,20}", "[ -~|]{0,40}").prop_map(|(t, a)| format!("<think>{t}</think><answer>{a}</answer>")),
            "(<answer>|</answer>|<think>|</think>|\\|\\||Left|Right|Up|Down| ){0,20}",
            any::<String>(),
        ],
        max_actions in 0usize..6,
        require_think in any::<bool>(),
        used in 0usize..12,
    ) {
        let reply = parse_reply(&text, max_actions, require_think);
        prop_assert!(reply.parts.len() <= max_actions);
        prop_assert!(reply.matched || reply.parts.is_empty());
        let rules = TurnRules {
            max_actions_per_turn: max_actions.max(1),
            max_actions_per_episode: 10,
            format_penalty: -0.1,
        };
        let mut env = FrozenLake::from_map("SFF/FHF/FFG", 1.0).unwrap();
        let turn = play_turn(&mut env, &reply, used, &rules);
        prop_assert!(turn.actions.len() <= rules.max_actions_per_turn);
        prop_assert!(turn.penalty <= 0.0);
    }

    #[test]
    fn level_parser_rejects_bad_files_with_file_and_line(
        text in prop_oneof![
            "[#@+$*. \n;]{0,120}",
            "[#@+$*. a\t\r\n;]{0,120}",
            any::<String>(),
        ],
    ) {
        if let Err(e) = parse_levels(&text, "fuzz.txt") {
            let message = e.to_string();
            prop_assert!(message.contains("fuzz.txt"), "{message}");
        }
    }
}

/// A random grid of level characters around a player is either a level or a clear error.
#[test]
fn level_parser_on_structured_grids() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let (mut ok, mut rejected) = (0, 0);
    for _ in 0..2000 {
        let (w, h) = (rng.random_range(1..12), rng.random_range(1..12));
        let mut text = String::new();
        for _ in 0..h {
            for _ in 0..w {
                let cells = ['#', '#', ' ', ' ', '$', '.', '@', '*', '+'];
                text.push(cells[rng.random_range(0..cells.len())]);
            }
            text.push('\n');
        }
        match parse_levels(&text, "grid.txt") {
            Ok(levels) => ok += levels.len(),
            Err(e) => {
                assert!(e.to_string().contains("grid.txt"), "{e}");
                rejected += 1;
            }
        }
    }
    assert!(
        ok > 0 && rejected > 0,
        "both outcomes seen: {ok} levels, {rejected} errors"
    );
}

/// Every shipped config and the defaults serve metrics on loopback only (or not at all).
#[test]
fn metrics_listen_on_loopback_unless_configured_otherwise() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut files: Vec<Option<std::path::PathBuf>> = vec![None];
    files.extend(
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(Some),
    );
    assert!(files.len() > 1, "config files found in {dir}");
    for file in files {
        let config = Config::load(file.as_deref(), &[]).unwrap();
        let addr: std::net::SocketAddr = config.metrics.listen.parse().unwrap();
        assert!(
            addr.ip().is_loopback() || addr.port() == 0,
            "{file:?} serves metrics on {addr}"
        );
    }
    let open = Config::load(None, &["metrics.listen=\"0.0.0.0:9464\"".into()]).unwrap();
    assert_eq!(
        open.metrics.listen, "0.0.0.0:9464",
        "other addresses only when asked"
    );
}
