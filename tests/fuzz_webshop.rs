//! WebShop actions, tried systematically: any text through the action splitter and parser, and
//! random walks mixing valid clicks, random searches and junk through `step` and `play_turn`.
//! Never a panic; a reply that names no valid action is the format penalty, not a crash.

use std::sync::LazyLock;

use proptest::prelude::*;
use tsr::env::webshop::{WebShop, WebShopConfig, split_action};
use tsr::env::{Env, TurnRules, parse_reply, play_turn};

/// One shop for every case; clones are cheap forks sharing the catalog.
static SHOP: LazyLock<WebShop> =
    LazyLock::new(|| WebShop::new(&WebShopConfig::default()).expect("default shop"));

fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~\n]{0,40}",
        "(search|click|Search|CLICK|buy)?\\[{0,2}[ -~]{0,20}\\]{0,2}[ -~]{0,5}",
        ("(search|click)", "[ -~\\[\\]]{0,30}").prop_map(|(v, a)| format!("{v}[{a}]")),
    ]
}

/// What a walk does at each step: a listed action (by index), a search, or junk.
#[derive(Debug, Clone)]
enum Move {
    Listed(usize),
    Search(String),
    Junk(String),
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    let one = prop_oneof![
        3 => any::<usize>().prop_map(Move::Listed),
        1 => "[a-z0-9 ]{0,24}".prop_map(Move::Search),
        1 => junk().prop_map(Move::Junk),
    ];
    prop::collection::vec(one, 0..25)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_text_splits_and_parses_without_panic(text in junk()) {
        if let Some((verb, arg)) = split_action(&text) {
            prop_assert!(!verb.is_empty() && !arg.is_empty());
            prop_assert!(text.starts_with(verb));
        }
        let mut env = SHOP.clone();
        env.reset(1);
        let _ = env.parse_action(&text);
    }

    #[test]
    fn random_walks_never_panic(seed in any::<u64>(), walk in moves()) {
        let mut env = SHOP.clone();
        env.reset(seed);
        for m in walk {
            if env.done() {
                break;
            }
            let text = match m {
                Move::Listed(i) => {
                    let names = env.action_names();
                    prop_assert!(!names.is_empty(), "a live page offers actions");
                    names[i % names.len()].clone()
                }
                Move::Search(q) => format!("search[{q}]"),
                Move::Junk(j) => j,
            };
            if let Some(action) = env.parse_action(&text) {
                let fork = env.clone();
                let outcome = env.step(action);
                prop_assert!(outcome.reward.is_finite());
                prop_assert!(!fork.observation().is_empty(), "a fork is unaffected");
            }
            prop_assert!(!env.observation().is_empty());
        }
    }

    #[test]
    fn replies_with_junk_actions_get_the_format_penalty_not_a_crash(
        seed in any::<u64>(),
        parts in prop::collection::vec(junk(), 0..4),
    ) {
        let mut env = SHOP.clone();
        env.reset(seed);
        let reply = parse_reply(&format!("<answer>{}</answer>", parts.join(" || ")), 3, false);
        let rules = TurnRules {
            max_actions_per_turn: 3,
            max_actions_per_episode: 15,
            format_penalty: -0.1,
        };
        let turn = play_turn(&mut env, &reply, 0, &rules);
        prop_assert!(turn.actions.len() <= 3);
        prop_assert!(turn.reward.is_finite() && turn.penalty <= 0.0);
    }
}
