//! The product catalog: loading the original's processed product file (plus its attributes /
//! instructions file and the title-noun lists), the seeded selling price of range-priced
//! products, and the search index over the original's indexed text.

use std::collections::{HashMap, HashSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::json::{self, Json, RecordAt};
use super::search::SearchIndex;
use super::{WebShopConfig, WebShopError, synth};

/// One product, in the processed form the original environment builds at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// Amazon id, upper-case; the page shows it and `click[asin]` (lower-case) opens the item.
    pub asin: String,
    /// Shown on results and item pages; indexed; substring-checked by the attribute reward.
    pub title: String,
    /// "Description" sub-page text; indexed; substring-checked by the attribute reward.
    pub description: String,
    /// "Features" sub-page lines; the first one is also indexed for search.
    pub bullet_points: Vec<String>,
    /// One price, or the low and high end of a range.
    pub pricing: Vec<f64>,
    /// The price as pages print it: "$X" or "$X to $Y".
    pub price_tag: String,
    /// Option groups in catalog order: (name, values). Values are what `click[...]` selects.
    pub options: Vec<(String, Vec<String>)>,
    /// Product attributes the reward fuzzy-matches against goal attributes.
    pub attributes: Vec<String>,
    /// One of the scrape's top-level categories ("beauty", "garden", ...).
    pub category: String,
    /// The scrape query that found the product (type reward).
    pub query: String,
    /// "A › B › C" path (type reward).
    pub product_category: String,
    /// Shown on the item page ("N.A." in the 1k catalog).
    pub rating: String,
    /// Review texts for the Reviews sub-page (empty in the 1k catalog).
    pub reviews: Vec<String>,
    /// Instruction for synthetic goals, when the product has one.
    pub instruction: Option<String>,
    /// The attributes the instruction asks for.
    pub instruction_attributes: Vec<String>,
    /// Nouns of the title, repeats kept (type reward).
    pub title_nouns: Vec<String>,
}

impl Product {
    /// The exact lower-cased text the original index holds: title, description, first bullet
    /// point and "name: v1, v2, and name2: ..." option text, joined by spaces.
    pub fn indexed_text(&self) -> String {
        let options = self
            .options
            .iter()
            .map(|(name, values)| format!("{name}: {}", values.join(", ")))
            .collect::<Vec<_>>()
            .join(", and ");
        let first_bullet = self.bullet_points.first().map_or("", String::as_str);
        [
            self.title.as_str(),
            self.description.as_str(),
            first_bullet,
            options.as_str(),
        ]
        .join(" ")
        .to_lowercase()
    }
}

/// Products, their selling prices and the search index. Shared (behind an `Arc`) by every fork
/// of the environment.
#[derive(Debug)]
pub struct Catalog {
    /// In file (or generation) order, which is the goal order.
    pub products: Vec<Product>,
    /// ASIN (upper-case) -> position in `products`.
    pub by_asin: HashMap<String, usize>,
    /// The price each product sells at: its single price, or a point of its range drawn once
    /// per catalog (the original draws it with `random.uniform` at load time).
    pub prices: Vec<f64>,
    /// BM25 index over `Product::indexed_text`, document ids = positions in `products`.
    pub index: SearchIndex,
}

/// Python's `repr` of a float as the original's price tags print it ("19.99", "100.0").
pub fn py_float(x: f64) -> String {
    let s = format!("{x}");
    if s.contains('.') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// The price tag the original builds from `pricing`.
pub fn price_tag(pricing: &[f64]) -> String {
    match pricing {
        [p] => format!("${}", py_float(*p)),
        [lo, hi, ..] => format!("${} to ${}", py_float(*lo), py_float(*hi)),
        [] => "$100.0".to_owned(),
    }
}

impl Catalog {
    /// The catalog `config` names: the product files, or the seeded synthetic catalog when
    /// `products` is empty. `rng` continues into goal generation, as the original's global
    /// random state does.
    pub fn load(config: &WebShopConfig, rng: &mut ChaCha8Rng) -> Result<Catalog, WebShopError> {
        let products = if config.products.is_empty() {
            let mut gen_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed_ca7a_1065);
            synth::generate(config.synthetic_products, &mut gen_rng)
        } else {
            load_products(config)?
        };
        Ok(Catalog::from_products(products, rng))
    }

    /// Draw selling prices and build the index.
    pub fn from_products(products: Vec<Product>, rng: &mut ChaCha8Rng) -> Catalog {
        let prices = products
            .iter()
            .map(|p| match p.pricing.as_slice() {
                [] => 100.0,
                [price] => *price,
                // random.uniform(a, b) = a + (b - a) * random()
                [lo, hi, ..] => lo + (hi - lo) * rng.random::<f64>(),
            })
            .collect();
        let texts: Vec<String> = products.iter().map(Product::indexed_text).collect();
        let index = SearchIndex::build(
            products
                .iter()
                .zip(&texts)
                .map(|(p, t)| (p.asin.as_str(), t.as_str())),
        );
        let by_asin = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.asin.clone(), i))
            .collect();
        Catalog {
            products,
            by_asin,
            prices,
            index,
        }
    }
}

/// Read the processed product file, the attributes / instructions file and the noun lists.
fn load_products(config: &WebShopConfig) -> Result<Vec<Product>, WebShopError> {
    let file = config.products.as_str();
    let Json::List(records) = json::read_file(file)? else {
        return Err(WebShopError::Json {
            file: file.to_owned(),
            problem: "expected a list of product records".into(),
        });
    };
    let attrs = json::read_file(&config.attributes)?;
    let nouns = json::read_file(&config.title_nouns)?;
    let mut seen = HashSet::new();
    let (mut bad_asin, mut duplicate) = (0usize, 0usize);
    let mut products = Vec::with_capacity(records.len());
    for (i, value) in records.iter().enumerate() {
        let rec = RecordAt {
            file,
            record: format!("record {i}"),
            value,
        };
        let asin = rec.string("asin")?;
        // The original skips these two kinds of records silently; we count and warn.
        if asin == "nan" || asin.chars().count() > 10 {
            bad_asin += 1;
            continue;
        }
        if !seen.insert(asin.clone()) {
            duplicate += 1;
            continue;
        }
        let mut product = product_record(&rec, asin)?;
        attach_attributes(&mut product, &config.attributes, &attrs)?;
        product.title_nouns = nouns_of(&config.title_nouns, &nouns, &product.asin)?;
        products.push(product);
    }
    if bad_asin + duplicate > 0 {
        tracing::warn!(
            "{file}: skipped {bad_asin} record(s) with an invalid asin and {duplicate} duplicate(s), as the original does"
        );
    }
    Ok(products)
}

/// Option combinations one product may have: each becomes a synthetic goal, and a record
/// whose groups multiply past this (12 groups of 10 values: 10^12) is broken, not a product.
/// The real catalogs stay far below it.
const MAX_OPTION_COMBINATIONS: usize = 100_000;

fn product_record(rec: &RecordAt, asin: String) -> Result<Product, WebShopError> {
    let options = rec.string_lists("options")?;
    let combinations = options
        .iter()
        .try_fold(1usize, |n, (_, values)| n.checked_mul(values.len().max(1)));
    if combinations.is_none_or(|n| n > MAX_OPTION_COMBINATIONS) {
        return Err(rec.error(
            "options",
            format!("its option groups combine into more than {MAX_OPTION_COMBINATIONS} goals"),
        ));
    }
    let mut pricing = rec.numbers("pricing")?;
    if pricing.is_empty() {
        pricing.push(100.0);
    }
    pricing.truncate(2);
    let price_tag = match rec.value.get("Price") {
        Some(_) => rec.string("Price")?,
        None => price_tag(&pricing),
    };
    let reviews = match rec.value.get("Reviews") {
        None => Vec::new(),
        Some(Json::List(items)) => items.iter().map(review_text).collect(),
        Some(_) => return Err(rec.error("Reviews", "expected a list")),
    };
    let rating = match rec.value.get("Rating") {
        Some(Json::Num(n)) => py_float(*n),
        Some(_) => rec.string("Rating")?,
        None => "N.A.".to_owned(),
    };
    Ok(Product {
        asin,
        title: rec.string("Title")?,
        description: rec.string("Description")?,
        bullet_points: rec.strings("BulletPoints")?,
        pricing,
        price_tag,
        options,
        attributes: match rec.value.get("Attributes") {
            Some(_) => rec.strings("Attributes")?,
            None => vec!["DUMMY_ATTR".to_owned()],
        },
        category: rec.string("category")?,
        query: rec.string("query")?.to_lowercase().trim().to_owned(),
        product_category: rec.string("product_category")?,
        rating,
        reviews,
        instruction: None,
        instruction_attributes: Vec::new(),
        title_nouns: Vec::new(),
    })
}

/// A review object as its sub-page shows it: "\"title\"", score and body, space-joined.
fn review_text(review: &Json) -> String {
    let field = |k: &str| match review.get(k) {
        Some(Json::Str(s)) => s.clone(),
        Some(Json::Num(n)) => py_float(*n),
        _ => String::new(),
    };
    format!(
        "\"{}\" {} {}",
        field("title"),
        field("score"),
        field("body")
    )
}

/// Take attributes and the instruction from the attributes file, as the original's
/// `load_products(human_goals=False)` does (no entry: keep the record's own attributes).
fn attach_attributes(p: &mut Product, file: &str, attrs: &Json) -> Result<(), WebShopError> {
    let Some(entry) = attrs.get(&p.asin) else {
        return Ok(());
    };
    let rec = RecordAt {
        file,
        record: p.asin.clone(),
        value: entry,
    };
    if entry.get("attributes").is_some() {
        p.attributes = rec.strings("attributes")?;
    }
    if let Some(Json::Str(_)) = entry.get("instruction") {
        p.instruction = Some(rec.string("instruction")?);
        p.instruction_attributes = rec.strings("instruction_attributes")?;
        if p.instruction_attributes.is_empty() {
            // The original asserts this; a goal without attributes has no reward denominator.
            return Err(rec.error(
                "instruction_attributes",
                "empty for a product with an instruction",
            ));
        }
    }
    Ok(())
}

fn nouns_of(file: &str, nouns: &Json, asin: &str) -> Result<Vec<String>, WebShopError> {
    let rec = RecordAt {
        file,
        record: asin.to_owned(),
        value: nouns,
    };
    match nouns.get(asin) {
        Some(v) => json::strings_of(v).map_err(|p| rec.error("title nouns", p)),
        None => Err(rec.error("title nouns", "no noun list for this ASIN")),
    }
}
