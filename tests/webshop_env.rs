//! The WebShop environment on its synthetic catalog (no data needed): pages, observation text,
//! actions, step limit, forks, scripted purchases and the catalog's statistics.

use std::collections::HashSet;

use tsr::env::webshop::{WebShop, WebShopConfig, split_action};
use tsr::env::{Env, EnvError, TaskEnv, TaskKind};

fn env() -> WebShop {
    WebShop::new(&WebShopConfig::default()).unwrap()
}

fn act(env: &mut WebShop, text: &str) -> tsr::env::StepOutcome {
    let action = env
        .parse_action(text)
        .unwrap_or_else(|| panic!("{text} did not parse"));
    env.step(action)
}

#[test]
fn start_page_and_actions_look_like_the_spec() {
    let mut env = env();
    env.reset(3);
    let obs = env.observation();
    let instruction = env.goal().instruction.clone();
    assert_eq!(
        obs,
        format!("WebShop [SEP] Instruction: [SEP] {instruction} [SEP] Search")
    );
    assert_eq!(env.action_names(), vec!["search[<query>]".to_owned()]);
    assert_eq!(env.progress_score(), 0.0);
    assert_eq!(env.match_score(), 0.0);
}

#[test]
fn action_syntax_follows_the_original_regex_with_case_insensitive_verbs() {
    assert_eq!(
        split_action("search[red shoes]"),
        Some(("search", "red shoes"))
    );
    assert_eq!(split_action("click[< prev]"), Some(("click", "< prev")));
    // Greedy verb: the last '[' that still leaves "x]" after it; greedy argument.
    assert_eq!(split_action("search[a [b] c]"), Some(("search[a ", "b] c")));
    assert_eq!(
        split_action("search[red] trailing"),
        Some(("search", "red"))
    );
    assert_eq!(split_action("search[]"), None);
    assert_eq!(split_action("search red"), None);
    let env = env();
    let a = env.parse_action("Search[Red Shoes, Large]").unwrap();
    assert_eq!(env.action_name(a), "search[red shoes, large]");
    assert!(env.parse_action("CLICK[Buy Now]").is_some());
    assert!(env.parse_action("buy[now]").is_none());
    assert!(env.parse_action("search[a [b] c]").is_none());
}

#[test]
fn unknown_clickables_are_no_ops_with_zero_reward() {
    let mut env = env();
    env.reset(0);
    let before = env.observation();
    for text in ["click[buy now]", "click[search]", "click[next >]"] {
        let out = act(&mut env, text);
        assert!(!out.effective && out.reward == 0.0 && !out.done, "{text}");
        assert_eq!(env.observation(), before);
    }
}

#[test]
fn results_pages_paginate_and_item_pages_show_options() {
    let mut env = env();
    env.reset(0);
    act(&mut env, "search[gift pack]");
    let page1 = env.observation();
    assert!(
        page1.contains("Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > [SEP] B0"),
        "{page1}"
    );
    assert!(!page1.contains("< Prev"));
    assert!(act(&mut env, "click[next >]").effective);
    assert!(
        env.observation()
            .contains("Page 2 (Total results: 50) [SEP] < Prev [SEP] Next > [SEP]")
    );
    let first = env.session().visible_results()[0];
    let product = env.catalog().products[first].clone();
    assert!(act(&mut env, &format!("click[{}]", product.asin.to_lowercase())).effective);
    let obs = env.observation();
    let mut want = vec!["Back to Search".to_owned(), "< Prev".to_owned()];
    for (name, values) in &product.options {
        want.push(name.clone());
        want.extend(values.iter().cloned());
    }
    want.push(product.title.clone());
    want.push(format!("Price: {}", product.price_tag));
    let tail = "Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Buy Now";
    assert!(
        obs.ends_with(&format!("{} [SEP] {tail}", want.join(" [SEP] "))),
        "{obs}"
    );
    assert!(act(&mut env, "click[features]").effective);
    let features = env.observation();
    assert!(
        features.contains("< Prev [SEP] ") && features.contains(product.bullet_points[0].trim())
    );
    assert!(act(&mut env, "click[< prev]").effective);
    assert_eq!(env.observation(), obs);
    // Item "< Prev" goes back to the same results page.
    assert!(act(&mut env, "click[< prev]").effective);
    assert!(env.observation().contains("Page 2 (Total results: 50)"));
    assert!(act(&mut env, "click[back to search]").effective);
    assert!(env.observation().starts_with("WebShop [SEP] Instruction:"));
}

/// Search for the goal product's title, open it, click the goal's option values, buy.
fn buy_goal_product(env: &mut WebShop) -> Option<tsr::env::StepOutcome> {
    let goal = env.goal().clone();
    let product = env.catalog().products[goal.product].clone();
    act(env, &format!("search[{}]", product.title));
    let rank = env
        .session()
        .results
        .iter()
        .position(|&p| p == goal.product)?;
    for _ in 0..rank / 10 {
        act(env, "click[next >]");
    }
    assert!(act(env, &format!("click[{}]", product.asin.to_lowercase())).effective);
    for (_, value) in &goal.options {
        assert!(act(env, &format!("click[{value}]")).effective, "{value}");
    }
    assert!(
        (env.match_score()
            - env
                .score_purchase(goal.product, &env.session().options)
                .reward)
            .abs()
            < 1e-12
    );
    Some(act(env, "click[buy now]"))
}

#[test]
fn buying_the_goal_product_with_its_options_mostly_succeeds() {
    let mut env = WebShop::new(&WebShopConfig {
        max_steps: 100,
        ..WebShopConfig::default()
    })
    .unwrap();
    let (mut found, mut solved) = (0, 0);
    for seed in 0..30 {
        env.reset(seed);
        let Some(out) = buy_goal_product(&mut env) else {
            continue;
        };
        found += 1;
        assert!(out.done && env.done());
        assert_eq!(out.success, out.reward == 1.0);
        assert_eq!(out.reward, env.outcome().unwrap().reward);
        assert!(
            env.observation()
                .starts_with("Thank you for shopping with us!")
        );
        assert_eq!(env.progress_score(), 1.0);
        solved += usize::from(out.success);
        // After the purchase everything is a no-op.
        assert!(!act(&mut env, "search[anything]").effective);
    }
    assert!(
        found >= 25,
        "the goal product was found for {found} of 30 goals"
    );
    assert!(
        solved * 10 >= found * 8,
        "only {solved} of {found} purchases scored 1"
    );
}

#[test]
fn the_step_limit_ends_the_episode_unrewarded() {
    let mut env = env();
    env.reset(5);
    for i in 1..=9 {
        let out = act(&mut env, "click[nothing here]");
        assert_eq!(out.done, i == 9, "step {i}");
        assert_eq!(out.reward, 0.0);
    }
    assert!(env.done() && !env.success());
    assert!(env.action_names().is_empty());
    env.reset(5);
    assert!(!env.done());
}

#[test]
fn forks_are_independent_and_resets_deterministic() {
    let mut a = env();
    a.reset(11);
    act(&mut a, "search[coffee]");
    let mut b = a.clone();
    act(&mut b, "click[back to search]");
    assert!(a.observation().contains("Page 1"));
    assert!(b.observation().starts_with("WebShop"));
    let mut c = env();
    c.reset(11);
    act(&mut c, "search[coffee]");
    assert_eq!(a.observation(), c.observation());
    let other = WebShop::new(&WebShopConfig {
        seed: 1,
        ..WebShopConfig::default()
    })
    .unwrap();
    assert_ne!(other.catalog().products[0], a.catalog().products[0]);
}

#[test]
fn every_listed_action_parses_and_acts() {
    let mut env = env();
    env.reset(2);
    act(&mut env, "search[table]");
    for name in env.action_names() {
        let mut fork = env.clone();
        let out = act(&mut fork, &name);
        assert!(out.effective, "{name}");
    }
}

#[test]
fn synthetic_catalog_has_the_schema_statistics() {
    let env = env();
    let products = &env.catalog().products;
    assert_eq!(products.len(), 1000);
    let categories: HashSet<&str> = products.iter().map(|p| p.category.as_str()).collect();
    assert_eq!(categories.len(), 5);
    let queries: HashSet<&str> = products.iter().map(|p| p.query.as_str()).collect();
    assert!(
        (200..=250).contains(&queries.len()),
        "{} queries",
        queries.len()
    );
    let words: f64 = products
        .iter()
        .map(|p| p.title.split(' ').count() as f64)
        .sum::<f64>()
        / 1000.0;
    assert!((15.0..=21.0).contains(&words), "mean title length {words}");
    assert!(
        products
            .iter()
            .all(|p| p.options.len() <= 3 && p.product_category.split(" › ").count() >= 3)
    );
    let ranges = products.iter().filter(|p| p.pricing.len() == 2).count();
    assert!((50..=150).contains(&ranges), "{ranges} range prices");
    let with_instruction = products.iter().filter(|p| p.instruction.is_some()).count();
    assert!(
        (330..=500).contains(&with_instruction),
        "{with_instruction}"
    );
    let verbatim = products
        .iter()
        .filter(|p| {
            let text = format!("{} {}", p.description, p.bullet_points.join(" ")).to_lowercase();
            p.attributes.iter().any(|a| text.contains(a.as_str()))
        })
        .count();
    assert!(verbatim > 300 && verbatim < 1000, "{verbatim}");
    assert!(
        env.all_goals().len() > 1500,
        "{} goals",
        env.all_goals().len()
    );
}

#[test]
fn task_env_builds_webshop_and_reports_bad_config() {
    let config = tsr::config::Config::load(None, &["env.task=\"webshop\"".into()]).unwrap();
    let mut env = TaskEnv::new(TaskKind::WebShop, &config).unwrap();
    env.reset(1);
    assert!(env.observation().starts_with("WebShop [SEP]"));
    let err = tsr::config::Config::load(
        None,
        &[
            "webshop.split=\"dev\"".into(),
            "webshop.products=\"x.json\"".into(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("webshop.split") && err.contains("webshop.attributes"),
        "{err}"
    );
    let config = tsr::config::Config::load(
        None,
        &[
            "webshop.products=\"/nonexistent/p.json\"".into(),
            "webshop.attributes=\"a\"".into(),
            "webshop.title_nouns=\"n\"".into(),
        ],
    )
    .unwrap();
    let err = TaskEnv::new(TaskKind::WebShop, &config).unwrap_err();
    assert!(
        matches!(&err, EnvError::Invalid(m) if m.contains("/nonexistent/p.json")),
        "{err}"
    );
}
