//! Synthetic goals as the original's `get_synthetic_goals` builds them, and the seeded
//! train / validation / test split.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::catalog::Catalog;

/// Goals that go to the test split, taken first after the shuffle.
pub const TEST_GOALS: usize = 500;
/// Goals that go to the validation split, taken next.
pub const VALIDATION_GOALS: usize = 1000;

/// One instruction to fulfil.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// Position of the goal product in the catalog (query, category, title nouns and the
    /// instruction attributes come from it).
    pub product: usize,
    /// The text the agent reads.
    pub instruction: String,
    /// (name, value) per option group of the product, names sorted.
    pub options: Vec<(String, String)>,
    /// Highest acceptable price (1,000,000 when no price text was added).
    pub price_upper: f64,
}

/// `[10, 20, ..., 990]`.
fn price_steps() -> impl Iterator<Item = f64> {
    (1..100).map(|i| 10.0 * i as f64)
}

/// One goal per option combination of every product with an instruction, in catalog order,
/// combinations in `itertools.product` order over the sorted option names. `rng` draws each
/// product's price bound (continuing the state that drew range prices, as the original's
/// global random state does).
pub fn synthetic_goals(catalog: &Catalog, rng: &mut ChaCha8Rng) -> Vec<Goal> {
    let mut goals = Vec::new();
    for (index, product) in catalog.products.iter().enumerate() {
        let Some(instruction) = &product.instruction else {
            continue;
        };
        let price = catalog.prices[index];
        let range: Vec<f64> = price_steps().filter(|p| *p > price).take(4).collect();
        let (price_upper, price_text) = if range.len() >= 2 {
            // random.sample(range, 2), keep the larger.
            let i = rng.random_range(0..range.len());
            let mut j = rng.random_range(0..range.len() - 1);
            if j >= i {
                j += 1;
            }
            let upper = range[i].max(range[j]);
            (upper, format!(", and price lower than {upper:.2} dollars"))
        } else {
            (1_000_000.0, String::new())
        };
        let mut groups: Vec<&(String, Vec<String>)> = product.options.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        for combination in combinations(&groups) {
            let options: Vec<(String, String)> = groups
                .iter()
                .zip(&combination)
                .map(|((name, values), &k)| (name.clone(), values[k].clone()))
                .collect();
            let option_text = options
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", and ");
            let with = if option_text.is_empty() {
                String::new()
            } else {
                format!(" with {option_text}")
            };
            goals.push(Goal {
                product: index,
                instruction: format!("{instruction}{with}{price_text}"),
                options,
                price_upper,
            });
        }
    }
    goals
}

/// Index tuples of the cartesian product of the groups' values, last group fastest. No groups
/// give one empty combination; a group without values gives none.
fn combinations(groups: &[&(String, Vec<String>)]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for (_, values) in groups {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..values.len()).map(move |k| {
                    let mut next = prefix.clone();
                    next.push(k);
                    next
                })
            })
            .collect();
    }
    out
}

/// Which goals an episode may draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub const NAMES: &'static [&'static str] = &["train", "validation", "test"];

    pub fn parse(name: &str) -> Option<Split> {
        match name {
            "train" => Some(Split::Train),
            "validation" => Some(Split::Validation),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// Goal indices of `split` after one shuffle seeded by `seed`: test = the first 500,
/// validation = the next 1,000, train = the rest (each clipped to what exists).
pub fn split_indices(n_goals: usize, seed: u64, split: Split) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n_goals).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test_end = TEST_GOALS.min(n_goals);
    let validation_end = (TEST_GOALS + VALIDATION_GOALS).min(n_goals);
    match split {
        Split::Test => order[..test_end].to_vec(),
        Split::Validation => order[test_end..validation_end].to_vec(),
        Split::Train => order[validation_end..].to_vec(),
    }
}
