//! Conformance of the fuzzy matching and the purchase reward against the cases computed by the
//! original code (every `fuzz_*.json` and `reward_*.json` in the WebShop data folder).

mod webshop_common;

use serde_json::Value;
use tsr::env::webshop::fuzz::token_set_ratio;
use tsr::env::webshop::reward::{GoalView, ProductView, reward};
use webshop_common::{case_files, read_json, webshop_dir};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list of strings, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn token_set_ratio_matches_thefuzz_019() {
    let Some(dir) = webshop_dir() else { return };
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in case_files(&dir, "fuzz_") {
        for pair in read_json(&file)["pairs"].as_array().unwrap() {
            let a = pair["a"].as_str().unwrap();
            let b = pair["b"].as_str().unwrap();
            let want = pair["token_set_ratio"].as_u64().unwrap();
            let got = token_set_ratio(a, b) as u64;
            if got != want {
                failures.push(format!("{a:?} vs {b:?}: got {got}, want {want}"));
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
    assert!(
        failures.is_empty(),
        "{} of {checked} pairs differ:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

/// Compare one case's every intermediate; returns the mismatches.
fn check_case(case: &Value) -> Vec<String> {
    let g = &case["goal"];
    let p = &case["purchased"];
    let (g_nouns, g_attrs, g_opts) = (
        strings(&g["title_nouns"]),
        strings(&g["attributes"]),
        pairs(&g["goal_options"]),
    );
    let goal = GoalView {
        query: g["query"].as_str().unwrap(),
        product_category: g["product_category"].as_str().unwrap(),
        title_nouns: &g_nouns,
        attributes: &g_attrs,
        options: &g_opts,
        price_upper: g["price_upper"].as_f64().unwrap(),
    };
    let (p_nouns, p_attrs, p_bullets) = (
        strings(&p["title_nouns"]),
        strings(&p["Attributes"]),
        strings(&p["BulletPoints"]),
    );
    let product = ProductView {
        query: p["query"].as_str().unwrap(),
        product_category: p["product_category"].as_str().unwrap(),
        title_nouns: &p_nouns,
        attributes: &p_attrs,
        title: p["Title"].as_str().unwrap(),
        bullet_points: &p_bullets,
        description: p["Description"].as_str().unwrap(),
    };
    let chosen = pairs(&case["options"]);
    let price = case["price"].as_f64().unwrap();
    let got = reward(
        &goal,
        &product,
        price,
        chosen.iter().map(|(_, v)| v.as_str()),
    );
    let e = &case["expected"];
    let n_attrs = g_attrs.len();
    let n_opts = g_opts.len();
    let d = got.denominator as f64;
    let r_option = got.r_option(n_opts).map_or(Value::Null, Value::from);
    let mut checks: Vec<(&str, Value, Value)> = vec![
        ("r_type", got.r_type.into(), e["r_type"].clone()),
        (
            "title_score",
            got.title_score.into(),
            e["title_score"].clone(),
        ),
        (
            "title_noun_intersection",
            got.title_noun_intersection.into(),
            e["title_noun_intersection"].clone(),
        ),
        (
            "query_match",
            got.query_match.into(),
            e["query_match"].clone(),
        ),
        (
            "category_match",
            got.category_match.into(),
            e["category_match"].clone(),
        ),
        (
            "num_attr_matches",
            got.num_attr_matches.into(),
            e["num_attr_matches"].clone(),
        ),
        ("r_att", got.r_att(n_attrs).into(), e["r_att"].clone()),
        (
            "num_option_matches",
            got.num_option_matches.into(),
            e["num_option_matches"].clone(),
        ),
        ("r_option", r_option.clone(), e["r_option"].clone()),
        ("r_price", got.r_price.into(), e["r_price"].clone()),
        (
            "denominator",
            got.denominator.into(),
            e["denominator"].clone(),
        ),
        ("reward", got.reward.into(), e["reward"].clone()),
    ];
    let v = &e["verbose_info"];
    checks.extend([
        ("verbose.r_type", got.r_type.into(), v["r_type"].clone()),
        (
            "verbose.r_att",
            got.r_att(n_attrs).into(),
            v["r_att"].clone(),
        ),
        (
            "verbose.w_att",
            (n_attrs as f64 / d).into(),
            v["w_att"].clone(),
        ),
        (
            "verbose.query_match",
            got.query_match.into(),
            v["query_match"].clone(),
        ),
        (
            "verbose.category_match",
            got.category_match.into(),
            v["category_match"].clone(),
        ),
        (
            "verbose.title_score",
            got.title_score.into(),
            v["title_score"].clone(),
        ),
        ("verbose.r_price", got.r_price.into(), v["r_price"].clone()),
        ("verbose.w_price", (1.0 / d).into(), v["w_price"].clone()),
    ]);
    if n_opts > 0 {
        checks.push(("verbose.r_option", r_option, v["r_option"].clone()));
        checks.push((
            "verbose.w_option",
            (n_opts as f64 / d).into(),
            v["w_option"].clone(),
        ));
    } else {
        checks.push((
            "verbose has no r_option",
            Value::Null,
            v.get("r_option").cloned().unwrap_or(Value::Null),
        ));
    }
    checks
        .into_iter()
        .filter(|(_, got, want)| got != want)
        .map(|(name, got, want)| {
            format!("case {}: {name}: got {got}, want {want}", case["case_id"])
        })
        .collect()
}

#[test]
fn reward_matches_original_with_every_intermediate() {
    let Some(dir) = webshop_dir() else { return };
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in case_files(&dir, "reward_") {
        for case in read_json(&file)["cases"].as_array().unwrap() {
            failures.extend(check_case(case));
            checked += 1;
        }
    }
    assert!(checked > 0);
    assert!(
        failures.is_empty(),
        "{} mismatches over {checked} cases:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}
