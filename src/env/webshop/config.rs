//! `[webshop]`: which catalog, which goals, episode limits.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use super::goals::Split;
use crate::config::{Issues, Section};

/// `[webshop]`: catalog files (or the synthetic catalog), goal split and step limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct WebShopConfig {
    /// Processed product JSON (e.g. products_1k.json); "" = the seeded synthetic catalog.
    pub products: String,
    /// Per-ASIN attributes and instructions (items_ins_v2_1000.json); needed with `products`.
    pub attributes: String,
    /// Per-ASIN title nouns for the type reward (title_nouns_1k.json); needed with `products`.
    pub title_nouns: String,
    /// Products in the synthetic catalog (used when `products` is "").
    pub synthetic_products: usize,
    /// Seed of the synthetic catalog, of range prices and goal price bounds, and of the split.
    pub seed: u64,
    /// Goals episodes draw from: "train", "validation" (1,000 goals) or "test" (500 goals);
    /// reset(seed) takes goal number seed mod the split's size.
    pub split: String,
    /// Actions per episode; the episode ends unrewarded when they run out before Buy Now.
    pub max_steps: usize,
    /// Show the item page's Attributes button (the original's `show_attrs`, off by default).
    pub show_attributes: bool,
}

impl Default for WebShopConfig {
    fn default() -> Self {
        Self {
            products: String::new(),
            attributes: String::new(),
            title_nouns: String::new(),
            synthetic_products: 1000,
            seed: 233,
            split: "train".into(),
            max_steps: 9,
            show_attributes: false,
        }
    }
}

impl Section for WebShopConfig {
    fn validate(&self, p: &str, issues: &mut Issues) {
        issues.check(
            Split::parse(&self.split).is_some(),
            &format!("{p}.split"),
            &self.split,
            "one of train, validation, test",
        );
        issues.range(&format!("{p}.max_steps"), self.max_steps, 1, 1000);
        issues.range(
            &format!("{p}.synthetic_products"),
            self.synthetic_products,
            10,
            1_000_000,
        );
        if !self.products.is_empty() {
            for (key, value) in [
                ("attributes", &self.attributes),
                ("title_nouns", &self.title_nouns),
            ] {
                issues.check(
                    !value.is_empty(),
                    &format!("{p}.{key}"),
                    value,
                    "a file path when webshop.products is set",
                );
            }
        }
    }
}
