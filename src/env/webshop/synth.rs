//! A seeded synthetic catalog with the schema and the rough statistics of WebShop's scraped one,
//! so that WebShop runs on a machine without the (research-only) data: 5 categories, 50 scrape
//! queries each, "A › B › C" category paths, titles of about 18 words, 0-3 option groups with
//! near-duplicate values, single prices or ranges, attributes that sometimes appear verbatim in
//! the description or bullet points, and an instruction for about 40% of the products. Title
//! nouns come from the generator (it knows which words it drew as nouns).

use rand::seq::IndexedRandom;
use rand::{Rng, RngExt};

use super::catalog::{Product, price_tag};
use super::synth_vocab::*;

/// Half the time, a sentence quoting `attr` word for word (the reward's substring check).
fn verbatim(attr: &str, rng: &mut impl Rng) -> String {
    if rng.random_bool(0.5) {
        format!(" Designed for {attr} use.")
    } else {
        String::new()
    }
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Near-duplicate values, as scraped option lists have ("black", "black 2", "matte black").
fn option_values(group: &str, rng: &mut impl Rng) -> Vec<String> {
    let pool: &[&str] = match group {
        "color" => COLORS,
        "size" => SIZES,
        "flavor name" | "scent" => FLAVORS,
        _ => STYLES,
    };
    let n = rng.random_range(2..=7usize).min(pool.len());
    let mut values: Vec<String> = if group == "size" {
        let start = rng.random_range(0..=pool.len() - n);
        pool[start..start + n]
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        pool.sample(rng, n).map(|s| s.to_string()).collect()
    };
    if rng.random_bool(0.3) {
        let base = values[0].clone();
        let variant = match rng.random_range(0..3) {
            0 => format!("{base} 2"),
            1 => format!("matte {base}"),
            _ => format!("{base} | pack of 2"),
        };
        values.push(variant);
    }
    values
}

/// `n` products drawn from `rng`.
pub fn generate(n: usize, rng: &mut impl Rng) -> Vec<Product> {
    let mut products = Vec::with_capacity(n);
    let mut asins = std::collections::HashSet::new();
    while products.len() < n {
        let cat = &CATEGORIES[products.len() % CATEGORIES.len()];
        let asin = format!("B0{:08X}", rng.random::<u32>());
        if !asins.insert(asin.clone()) {
            continue;
        }
        products.push(product(cat, asin, rng));
    }
    products
}

fn product(cat: &Category, asin: String, rng: &mut impl Rng) -> Product {
    let ty_i = rng.random_range(0..cat.types.len());
    let ty = cat.types[ty_i];
    let modifier = *cat.modifiers.choose(rng).expect("modifiers");
    let query = format!("{modifier} {ty}");
    let leaf = format!(
        "{} {}",
        capitalize(ty),
        LEVEL_WORDS[ty_i % LEVEL_WORDS.len()]
    );
    let mut path: Vec<String> = cat.path.iter().map(|s| s.to_string()).collect();
    path.push(capitalize(LEVEL_WORDS[(ty_i + 3) % LEVEL_WORDS.len()]));
    path.push(leaf);
    let n_attrs = rng.random_range(1..=4usize);
    let attributes: Vec<String> = cat
        .attributes
        .sample(rng, n_attrs)
        .map(|s| s.to_string())
        .collect();

    // Title: brand, adjectives, the type, an attribute phrase, filler nouns, audience, size.
    let brand: String = (0..rng.random_range(2..=3))
        .map(|_| *SYLLABLES.choose(rng).expect("syllables"))
        .collect();
    let brand = capitalize(&brand);
    let mut words: Vec<(String, bool)> = vec![(brand, true)];
    let n_adj = rng.random_range(1..=3usize);
    for adj in ADJECTIVES.sample(rng, n_adj) {
        words.push((capitalize(adj), false));
    }
    for w in ty.split(' ') {
        words.push((capitalize(w), true));
    }
    words.push(("with".into(), false));
    for w in attributes[0].split(' ') {
        words.push((capitalize(w), false));
    }
    let n_fill = rng.random_range(3..=6usize);
    for noun in FILLER_NOUNS.sample(rng, n_fill) {
        words.push((capitalize(noun), true));
    }
    words.push(("for".into(), false));
    words.push((capitalize(AUDIENCES.choose(rng).expect("audiences")), true));
    words.push((format!("{}-Pack", rng.random_range(1..=6)), false));
    let title = words
        .iter()
        .map(|(w, _)| w.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let title_nouns = words
        .iter()
        .filter(|(_, noun)| *noun)
        .map(|(w, _)| w.to_lowercase())
        .collect();

    let description = if rng.random_bool(0.3) {
        String::new()
    } else {
        format!(
            "This {ty} is made for everyday use and lasts.{}",
            verbatim(&attributes[attributes.len() - 1], rng)
        )
    };
    let mut bullet_points: Vec<String> = (0..rng.random_range(2..=5))
        .map(|i| {
            format!(
                "{}: quality {ty} detail number {}. ",
                capitalize(FILLER_NOUNS[i % FILLER_NOUNS.len()]),
                i + 1
            )
        })
        .collect();
    for attr in &attributes {
        let extra = verbatim(attr, rng);
        if !extra.is_empty() {
            bullet_points.push(extra.trim().to_owned());
        }
    }

    let n_groups = match rng.random_range(0..100) {
        0..58 => 0,
        58..83 => 1,
        83..99 => 2,
        _ => 3,
    }
    .min(cat.groups.len());
    let options: Vec<(String, Vec<String>)> = cat.groups[..n_groups]
        .iter()
        .map(|g| (g.to_string(), option_values(g, rng)))
        .collect();

    // Log-uniform between $2 and $500, in cents.
    let base = (rng.random_range(2f64.ln()..500f64.ln()).exp() * 100.0).round() / 100.0;
    let pricing = if rng.random_bool(0.1) {
        let hi = ((base * rng.random_range(1.1..2.5)) * 100.0).round() / 100.0;
        vec![base, hi]
    } else {
        vec![base]
    };

    let (instruction, instruction_attributes) = if rng.random_bool(0.415) {
        let k = rng.random_range(1..=attributes.len().min(3));
        let chosen: Vec<String> = attributes[..k].to_vec();
        let text = match chosen.split_last() {
            Some((last, rest)) if !rest.is_empty() => {
                format!("Find me {} {query} with {last}", rest.join(", "))
            }
            _ => format!("Find me {query} with {}", chosen[0]),
        };
        (Some(text), chosen)
    } else {
        (None, Vec::new())
    };

    Product {
        asin,
        title,
        description,
        bullet_points,
        price_tag: price_tag(&pricing),
        pricing,
        options,
        attributes,
        category: cat.name.to_owned(),
        query,
        product_category: path.join(" › "),
        rating: "N.A.".to_owned(),
        reviews: Vec::new(),
        instruction,
        instruction_attributes,
        title_nouns,
    }
}
