//! The purchase reward of the original WebShop (`web_agent_site/engine/goal.py::get_reward` with
//! synthetic goals), including its quirks: a synthetic goal option is compared as the text of a
//! Python `(name, value)` tuple, and colour normalisation treats that tuple by element equality.

use std::collections::HashSet;

use serde::Serialize;

use super::fuzz::{py_pair_repr, token_set_ratio_of_tokens, tokens};

/// `COLOR_SET` of `web_agent_site/engine/normalize.py`, in its order (the first hit wins).
const COLOR_SET: &[&str] = &[
    "alabaster",
    "apricot",
    "aqua",
    "ash",
    "asphalt",
    "azure",
    "banana",
    "beige",
    "black",
    "blue",
    "blush",
    "bordeaux",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cheetah",
    "chestnut",
    "chocolate",
    "christmas",
    "coffee",
    "cognac",
    "copper",
    "coral",
    "cranberry",
    "cream",
    "crystal",
    "dark",
    "denim",
    "eggplant",
    "elephant",
    "espresso",
    "fuchsia",
    "gold",
    "granite",
    "grape",
    "graphite",
    "grass",
    "gray",
    "green",
    "grey",
    "heather",
    "indigo",
    "ivory",
    "ivy",
    "khaki",
    "lavender",
    "lemon",
    "leopard",
    "light",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "merlot",
    "midnight",
    "mint",
    "mocha",
    "multicolor",
    "mushroom",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "rainbow",
    "red",
    "rose",
    "royal",
    "rust",
    "sand",
    "sapphire",
    "seashell",
    "silver",
    "skull",
    "slate",
    "steel",
    "stone",
    "stonewash",
    "sunflower",
    "tan",
    "taupe",
    "teal",
    "tiger",
    "turquoise",
    "violet",
    "walnut",
    "wheat",
    "white",
    "wine",
    "yellow",
];

/// What the reward needs to know about the goal.
#[derive(Debug, Clone, Copy)]
pub struct GoalView<'a> {
    /// Scrape query of the goal product (type reward).
    pub query: &'a str,
    /// "A › B › C" category path of the goal product (type reward).
    pub product_category: &'a str,
    /// Nouns of the goal product's title, repeats kept (type reward).
    pub title_nouns: &'a [String],
    /// Instruction attributes the bought item should have.
    pub attributes: &'a [String],
    /// Synthetic goal options, (name, value), in goal order.
    pub options: &'a [(String, String)],
    /// Highest acceptable price.
    pub price_upper: f64,
}

/// What the reward needs to know about the bought product.
#[derive(Debug, Clone, Copy)]
pub struct ProductView<'a> {
    /// Scrape query (type reward: equal to the goal's).
    pub query: &'a str,
    /// "A › B › C" path (type reward: at least two shared levels).
    pub product_category: &'a str,
    /// Title nouns, repeats kept (type reward: shared with the goal's).
    pub title_nouns: &'a [String],
    /// The product's attribute list (fuzzy-matched against goal attributes).
    pub attributes: &'a [String],
    /// Title, bullet points and description: goal attributes found in them verbatim count.
    pub title: &'a str,
    pub bullet_points: &'a [String],
    pub description: &'a str,
}

/// The reward and every intermediate the original reports (`verbose=True`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RewardBreakdown {
    /// Type factor: 1, 0.5, 0.1 or 0.
    pub r_type: f64,
    /// Shared distinct title nouns over the goal title's noun count (0.2 without nouns).
    pub title_score: f64,
    /// Distinct nouns shared by the two titles.
    pub title_noun_intersection: usize,
    /// Same scrape query.
    pub query_match: bool,
    /// At least two shared category levels.
    pub category_match: bool,
    /// Goal attributes the product has.
    pub num_attr_matches: usize,
    /// Goal options the clicked values match.
    pub num_option_matches: usize,
    /// Price within the goal's bound.
    pub r_price: bool,
    /// #goal attributes + #goal options + 1.
    pub denominator: usize,
    /// The purchase reward in [0, 1].
    pub reward: f64,
}

impl RewardBreakdown {
    /// Fraction of goal attributes matched (`r_att`).
    pub fn r_att(&self, goal_attributes: usize) -> f64 {
        self.num_attr_matches as f64 / goal_attributes as f64
    }
    /// Fraction of goal options matched; `None` for a goal without options, as upstream.
    pub fn r_option(&self, goal_options: usize) -> Option<f64> {
        (goal_options > 0).then(|| self.num_option_matches as f64 / goal_options as f64)
    }
}

/// `get_reward(purchased_product, goal, price, options)`. `chosen` are the option values the
/// agent clicked (only values matter, as upstream).
pub fn reward<'c>(
    goal: &GoalView,
    product: &ProductView,
    price: f64,
    chosen: impl IntoIterator<Item = &'c str>,
) -> RewardBreakdown {
    let (r_type, title_score, shared, query_match, category_match) = type_reward(goal, product);
    let num_attr_matches = attribute_matches(goal, product);
    let num_option_matches = option_matches(goal.options, chosen);
    let r_price = price <= goal.price_upper;
    let denominator = goal.attributes.len() + goal.options.len() + 1;
    let numerator = num_attr_matches + num_option_matches + usize::from(r_price);
    let mut reward = numerator as f64 / denominator as f64;
    reward *= r_type;
    RewardBreakdown {
        r_type,
        title_score,
        title_noun_intersection: shared,
        query_match,
        category_match,
        num_attr_matches,
        num_option_matches,
        r_price,
        denominator,
        reward,
    }
}

/// `get_type_reward`: (r_type, title_score, shared nouns, query_match, category_match).
fn type_reward(goal: &GoalView, product: &ProductView) -> (f64, f64, usize, bool, bool) {
    let query_match = product.query == goal.query;
    let levels = |path: &'_ str| -> HashSet<String> {
        path.split('›')
            .map(|x| super::fuzz::py_strip(x).to_owned())
            .collect()
    };
    let category_match = levels(product.product_category)
        .intersection(&levels(goal.product_category))
        .count()
        >= 2;
    let bought: HashSet<&str> = product.title_nouns.iter().map(String::as_str).collect();
    let wanted: HashSet<&str> = goal.title_nouns.iter().map(String::as_str).collect();
    let shared = bought.intersection(&wanted).count();
    let title_score = if goal.title_nouns.is_empty() {
        0.2
    } else {
        shared as f64 / goal.title_nouns.len() as f64
    };
    let mut r_type = 1.0;
    if !(query_match || category_match || title_score > 0.2) {
        r_type = 0.5;
    }
    if title_score < 0.1 {
        r_type = 0.1;
    }
    if title_score == 0.0 {
        r_type = 0.0;
    }
    (r_type, title_score, shared, query_match, category_match)
}

/// `get_attribute_reward`'s count: a goal attribute matches a product attribute with
/// token_set_ratio > 85, or appears verbatim in the lower-cased title, bullets or description.
fn attribute_matches(goal: &GoalView, product: &ProductView) -> usize {
    let mut texts: Option<[String; 3]> = None;
    let product_tokens: Vec<Vec<String>> = product.attributes.iter().map(|a| tokens(a)).collect();
    let mut count = 0;
    for g_attr in goal.attributes {
        let g_tokens = tokens(g_attr);
        if product_tokens
            .iter()
            .any(|p| token_set_ratio_of_tokens(p, &g_tokens) > 85)
        {
            count += 1;
            continue;
        }
        let texts = texts.get_or_insert_with(|| {
            [
                product.title.to_lowercase(),
                product.bullet_points.join(" ").to_lowercase(),
                product.description.to_lowercase(),
            ]
        });
        if texts.iter().any(|t| t.contains(g_attr.as_str())) {
            count += 1;
        }
    }
    count
}

/// `normalize_color` of a clicked value: the first colour that is a substring replaces it.
pub fn normalize_color(value: &str) -> &str {
    COLOR_SET
        .iter()
        .find(|c| value.contains(*c))
        .copied()
        .unwrap_or(value)
}

/// `normalize_color` applied to a synthetic goal's `(name, value)` tuple: `in` on a tuple is
/// element equality, so only a colour equal to the name or the value replaces it; otherwise the
/// tuple reaches token_set_ratio, which compares its `str()`.
pub fn goal_option_text(name: &str, value: &str) -> String {
    match COLOR_SET.iter().find(|c| **c == name || **c == value) {
        Some(c) => (*c).to_owned(),
        None => py_pair_repr(name, value),
    }
}

/// `get_option_reward`'s count: each goal option counts once if some clicked value matches it.
fn option_matches<'c>(
    goal_options: &[(String, String)],
    chosen: impl IntoIterator<Item = &'c str>,
) -> usize {
    let chosen: Vec<Vec<String>> = chosen
        .into_iter()
        .map(|v| tokens(normalize_color(v)))
        .collect();
    goal_options
        .iter()
        .filter(|(name, value)| {
            let g = tokens(&goal_option_text(name, value));
            chosen.iter().any(|p| token_set_ratio_of_tokens(p, &g) > 85)
        })
        .count()
}
