//! The real 1k catalog: indexed text against the original index (every line), the goal count,
//! the search ranking's invariants, and bad-input errors.

mod webshop_common;

use std::collections::HashMap;
use std::path::Path;

use tsr::env::webshop::search::analyze;
use tsr::env::webshop::{WebShop, WebShopConfig, WebShopError};
use webshop_common::webshop_dir;

fn real_config(dir: &Path) -> WebShopConfig {
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    WebShopConfig {
        products: path("products_1k.json"),
        attributes: path("items_ins_v2_1000.json"),
        title_nouns: path("title_nouns_1k.json"),
        ..WebShopConfig::default()
    }
}

#[test]
fn indexed_text_matches_original_index_for_every_product() {
    let Some(dir) = webshop_dir() else { return };
    let env = WebShop::new(&real_config(&dir)).unwrap();
    let catalog = env.catalog();
    let text = std::fs::read_to_string(dir.join("index_contents_1k.jsonl")).unwrap();
    let mut checked = 0;
    for (line_no, line) in text.lines().enumerate() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        let asin = doc["id"].as_str().unwrap();
        let index = catalog.by_asin[asin];
        assert_eq!(
            catalog.products[index].indexed_text(),
            doc["contents"].as_str().unwrap(),
            "line {} ({asin})",
            line_no + 1
        );
        checked += 1;
    }
    assert_eq!(checked, catalog.products.len());
}

#[test]
fn the_1k_catalog_gives_6910_goals_split_500_1000_rest() {
    let Some(dir) = webshop_dir() else { return };
    let mut all = Vec::new();
    for (split, size) in [("test", 500), ("validation", 1000), ("train", 5410)] {
        let config = WebShopConfig {
            split: split.into(),
            ..real_config(&dir)
        };
        let mut env = WebShop::new(&config).unwrap();
        assert_eq!(env.all_goals().len(), 6910);
        assert_eq!(env.split_goals().len(), size, "{split}");
        all.extend_from_slice(env.split_goals());
        // reset(seed) takes the split's goals in order.
        let second = env.split_goals()[1];
        tsr::env::Env::reset(&mut env, 1 + size as u64);
        assert_eq!(env.goal(), &env.all_goals()[second]);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..6910).collect::<Vec<_>>(),
        "splits are disjoint and cover all goals"
    );
}

#[test]
fn goal_text_and_price_rule_follow_the_original() {
    let Some(dir) = webshop_dir() else { return };
    let env = WebShop::new(&real_config(&dir)).unwrap();
    let catalog = env.catalog();
    for goal in env.all_goals() {
        let product = &catalog.products[goal.product];
        let instruction = product.instruction.as_ref().unwrap();
        assert!(goal.instruction.starts_with(instruction.as_str()));
        let price = catalog.prices[goal.product];
        let steps: Vec<f64> = (1..100)
            .map(|i| 10.0 * i as f64)
            .filter(|p| *p > price)
            .take(4)
            .collect();
        if steps.len() >= 2 {
            assert!(steps[1..].contains(&goal.price_upper), "{goal:?}");
            let tail = format!(", and price lower than {:.2} dollars", goal.price_upper);
            assert!(goal.instruction.ends_with(&tail));
        } else {
            assert_eq!(goal.price_upper, 1_000_000.0);
        }
        let names: Vec<&str> = goal.options.iter().map(|(n, _)| n.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), product.options.len());
    }
}

#[test]
fn search_ranks_by_bm25_with_asin_tie_break() {
    let Some(dir) = webshop_dir() else { return };
    let env = WebShop::new(&real_config(&dir)).unwrap();
    let catalog = env.catalog();
    for query in [
        "console table",
        "women's dresses",
        "long lasting deodorant for sensitive skin",
    ] {
        let mut scores = catalog.index.scores(query);
        let hits = catalog.index.search(query);
        assert_eq!(hits.len(), scores.len().min(50), "{query}");
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        let by_doc: HashMap<u32, f32> = scores.iter().copied().collect();
        for pair in hits.windows(2) {
            let (a, b) = (by_doc[&pair[0]], by_doc[&pair[1]]);
            let (asin_a, asin_b) = (
                &catalog.products[pair[0] as usize].asin,
                &catalog.products[pair[1] as usize].asin,
            );
            assert!(
                a > b || (a == b && asin_a < asin_b),
                "{query}: {a} {asin_a} / {b} {asin_b}"
            );
        }
        // Every hit contains some query term.
        let terms = analyze(query);
        for &h in &hits {
            let doc = analyze(&catalog.products[h as usize].indexed_text());
            assert!(terms.iter().any(|t| doc.contains(t)), "{query}: {h}");
        }
    }
}

#[test]
fn malformed_record_names_file_record_and_field() {
    let Some(dir) = webshop_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("products.json");
    std::fs::write(
        &bad,
        r#"[{"asin": "B000000001", "Title": "ok", "Description": "", "BulletPoints": [],
             "pricing": [1.0], "options": {}, "category": "c", "query": "q",
             "product_category": "a › b"},
            {"asin": "B000000002", "Title": 5, "Description": "", "BulletPoints": [],
             "pricing": [1.0], "options": {}, "category": "c", "query": "q",
             "product_category": "a › b"}]"#,
    )
    .unwrap();
    let config = WebShopConfig {
        products: bad.to_string_lossy().into_owned(),
        ..real_config(&dir)
    };
    let err = WebShop::new(&config).unwrap_err();
    // The first record is fine but the real nouns file has no list for its made-up ASIN.
    assert!(
        matches!(&err, WebShopError::Record { file, record, .. } if file.ends_with("title_nouns_1k.json") && record == "B000000001"),
        "{err}"
    );
    // Fix the first record's nouns problem by pointing at a nouns file that has both ASINs.
    let nouns = tmp.path().join("nouns.json");
    std::fs::write(&nouns, r#"{"B000000001": ["ok"], "B000000002": ["x"]}"#).unwrap();
    let config = WebShopConfig {
        title_nouns: nouns.to_string_lossy().into_owned(),
        ..config
    };
    let err = WebShop::new(&config).unwrap_err().to_string();
    assert!(
        err.contains("products.json") && err.contains("record 1") && err.contains("\"Title\""),
        "{err}"
    );
    // A record under 1 KB whose option groups multiply into 10^12 goals is refused, not built.
    let groups: Vec<String> = (0..12)
        .map(|g| {
            format!(
                "\"g{g}\": [{}]",
                (0..10)
                    .map(|v| format!("\"v{v}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    std::fs::write(
        &bad,
        format!(
            r#"[{{"asin": "B000000001", "Title": "ok", "Description": "", "BulletPoints": [],
                 "pricing": [1.0], "options": {{{}}}, "category": "c", "query": "q",
                 "product_category": "a › b"}}]"#,
            groups.join(", ")
        ),
    )
    .unwrap();
    let err = WebShop::new(&config).unwrap_err().to_string();
    assert!(err.contains("record 0") && err.contains("options"), "{err}");
}

/// Every `search_*.json` in the data folder (made by tests/webshop_lucene/make_reference.py with
/// Lucene itself): the analyzer's tokens for every listed document and the top-50 ASINs for
/// every query. Without such a file there is nothing to compare, which is reported.
#[test]
fn search_rankings_match_lucene_reference() {
    let Some(dir) = webshop_dir() else { return };
    // CI generates the reference with Lucene itself (see .ci/run) and names its folder here;
    // then a missing file is a failure, not a note.
    let required = std::env::var_os("TSR_LUCENE_REF_DIR").map(std::path::PathBuf::from);
    let ref_dir = required.clone().unwrap_or_else(|| dir.clone());
    let files: Vec<_> = std::fs::read_dir(&ref_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("search_") && name.ends_with(".json")
        })
        .collect();
    if files.is_empty() {
        assert!(
            required.is_none(),
            "TSR_LUCENE_REF_DIR={} holds no search_*.json",
            ref_dir.display()
        );
        eprintln!(
            "no search_*.json in {}: see tests/webshop_lucene",
            ref_dir.display()
        );
        return;
    }
    let env = WebShop::new(&real_config(&dir)).unwrap();
    let catalog = env.catalog();
    let (mut docs, mut queries, mut failures) = (0, 0, Vec::new());
    for file in files {
        let reference = webshop_common::read_json(&file);
        for doc in reference["documents"].as_array().unwrap() {
            let asin = doc["id"].as_str().unwrap();
            let want: Vec<&str> = doc["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let got = analyze(&catalog.products[catalog.by_asin[asin]].indexed_text());
            if got != want {
                failures.push(format!("{}: tokens of {asin} differ", file.display()));
            }
            docs += 1;
        }
        for case in reference["cases"].as_array().unwrap() {
            let query = case["query"].as_str().unwrap();
            let want: Vec<&str> = case["top50"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let got: Vec<&str> = catalog
                .index
                .search(query)
                .into_iter()
                .map(|d| catalog.products[d as usize].asin.as_str())
                .collect();
            if got != want {
                failures.push(format!("{}: hits of {query:?} differ", file.display()));
            }
            queries += 1;
        }
    }
    assert!(docs + queries > 0);
    assert!(
        failures.is_empty(),
        "{} of {docs} documents + {queries} queries differ:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
