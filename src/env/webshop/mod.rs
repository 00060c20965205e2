//! WebShop (Yao et al., 2022), offline: search a product catalog, open items, choose options and
//! buy; the purchase is scored against the instruction exactly as the original scores it.
//!
//! Actions are `search[query]` and `click[text]` (verbs case-insensitive, arguments
//! lower-cased). `parse_action` accepts anything of that shape; whether it does something is the
//! step's business (an unknown clickable is a no-op with reward 0, as in the original).
//!
//! The `Env` trait needs `Copy` actions while WebShop's carry text, so an action holds an id into
//! a text table shared by the environment and all its forks (`ActionTexts`). The table only
//! grows (one entry per distinct action text ever parsed).

pub mod bench;
pub mod catalog;
mod config;
pub mod fuzz;
pub mod goals;
mod json;
pub mod pages;
pub mod porter;
pub mod reward;
pub mod search;
pub mod synth;
mod synth_vocab;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use self::catalog::Catalog;
pub use self::config::WebShopConfig;
use self::goals::{Goal, Split};
use self::pages::{Page, Session};
use self::reward::{GoalView, ProductView, RewardBreakdown};
use super::{Env, EnvError, StepOutcome};

/// Problems building a WebShop environment.
#[derive(Debug, thiserror::Error)]
pub enum WebShopError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON: {problem}")]
    Json { file: String, problem: String },
    #[error("{file}: {record}: field {field:?}: {problem}")]
    Record {
        file: String,
        record: String,
        field: String,
        problem: String,
    },
    #[error("the {split} split has no goals (the catalog gives {total} goals in all)")]
    NoGoals { split: String, total: usize },
}

impl From<WebShopError> for EnvError {
    fn from(e: WebShopError) -> EnvError {
        EnvError::Invalid(e.to_string())
    }
}

/// The verb of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Search,
    Click,
}

/// One action: a verb and its (lower-cased) argument, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebShopAction {
    pub verb: Verb,
    /// Index into the shared `ActionTexts`.
    text: u32,
}

/// Action texts by id, shared by an environment and its forks.
#[derive(Debug, Default)]
struct ActionTexts {
    /// Text -> id, so a repeated action reuses its id.
    ids: HashMap<Arc<str>, u32>,
    /// Id -> text.
    texts: Vec<Arc<str>>,
}

impl ActionTexts {
    fn intern(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.texts.len() as u32;
        let text: Arc<str> = Arc::from(text);
        self.texts.push(text.clone());
        self.ids.insert(text, id);
        id
    }
}

/// The original's `parse_action`: `re.match(r'(.+)\[(.+)\]', action)` — greedy, anchored at the
/// start only, `.` not crossing a newline. Returns (verb text, argument).
pub fn split_action(text: &str) -> Option<(&str, &str)> {
    let line = text.split('\n').next().unwrap_or("");
    // The verb is as long as possible: try '[' positions from the right.
    for (i, _) in line
        .char_indices()
        .rev()
        .filter(|&(i, c)| c == '[' && i > 0)
    {
        let rest = &line[i + 1..];
        // The argument is as long as possible: the last ']' leaving at least one char.
        if let Some(j) = rest.rfind(']').filter(|&j| j > 0) {
            return Some((&line[..i], &rest[..j]));
        }
    }
    None
}

/// The WebShop environment. Clones are forks sharing the catalog, goals and action texts.
#[derive(Debug, Clone)]
pub struct WebShop {
    /// Products, prices and index, shared by all forks.
    catalog: Arc<Catalog>,
    /// Every synthetic goal, shared by all forks.
    goals: Arc<Vec<Goal>>,
    /// Goal indices of the configured split; `reset(seed)` takes `split[seed % len]`.
    split: Arc<Vec<usize>>,
    /// Texts of parsed actions, shared so an action parsed on one fork steps any other.
    texts: Arc<Mutex<ActionTexts>>,
    /// Step limit per episode (`webshop.max_steps`).
    max_steps: usize,
    /// Whether item pages offer the Attributes sub-page.
    show_attributes: bool,
    /// The current goal (index into `goals`).
    goal: usize,
    /// Page, last search and choices of this episode.
    session: Session,
    /// Steps taken this episode (against `max_steps`).
    steps: usize,
    /// Set by Buy Now.
    outcome: Option<RewardBreakdown>,
    /// The step limit ended the episode without a purchase.
    out_of_steps: bool,
}

impl WebShop {
    /// Load or generate the catalog, build the index and the goals of the configured split.
    pub fn new(config: &WebShopConfig) -> Result<WebShop, WebShopError> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let catalog = Catalog::load(config, &mut rng)?;
        let goals = goals::synthetic_goals(&catalog, &mut rng);
        let split_kind = Split::parse(&config.split).unwrap_or(Split::Train);
        let split = goals::split_indices(goals.len(), config.seed, split_kind);
        if split.is_empty() {
            return Err(WebShopError::NoGoals {
                split: config.split.clone(),
                total: goals.len(),
            });
        }
        let mut env = WebShop {
            catalog: Arc::new(catalog),
            goals: Arc::new(goals),
            split: Arc::new(split),
            texts: Arc::default(),
            max_steps: config.max_steps,
            show_attributes: config.show_attributes,
            goal: 0,
            session: Session::start(),
            steps: 0,
            outcome: None,
            out_of_steps: false,
        };
        env.reset(0);
        Ok(env)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Every synthetic goal of the catalog (all splits), in generation order.
    pub fn all_goals(&self) -> &[Goal] {
        &self.goals
    }

    /// Goal indices (into `all_goals`) of the configured split, in the order resets use them.
    pub fn split_goals(&self) -> &[usize] {
        &self.split
    }

    /// The goal of the current episode.
    pub fn goal(&self) -> &Goal {
        &self.goals[self.goal]
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The reward breakdown of the purchase, once bought.
    pub fn outcome(&self) -> Option<&RewardBreakdown> {
        self.outcome.as_ref()
    }

    fn text(&self, action: WebShopAction) -> Arc<str> {
        let texts = self.texts.lock().unwrap_or_else(|e| e.into_inner());
        texts
            .texts
            .get(action.text as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// The reward of buying `product` now with `options` chosen.
    pub fn score_purchase(&self, product: usize, options: &[(String, String)]) -> RewardBreakdown {
        let goal = self.goal();
        let target = &self.catalog.products[goal.product];
        let bought = &self.catalog.products[product];
        let goal_view = GoalView {
            query: &target.query,
            product_category: &target.product_category,
            title_nouns: &target.title_nouns,
            attributes: &target.instruction_attributes,
            options: &goal.options,
            price_upper: goal.price_upper,
        };
        let product_view = ProductView {
            query: &bought.query,
            product_category: &bought.product_category,
            title_nouns: &bought.title_nouns,
            attributes: &bought.attributes,
            title: &bought.title,
            bullet_points: &bought.bullet_points,
            description: &bought.description,
        };
        let price = self.catalog.prices[product];
        reward::reward(
            &goal_view,
            &product_view,
            price,
            options.iter().map(|(_, v)| v.as_str()),
        )
    }

    /// How far the episode has come through the shop's pages, in [0, 1]: start 0, results
    /// 1/3, an item or its sub-pages 2/3, a purchase 1. For the search helper's scorer.
    pub fn progress_score(&self) -> f64 {
        match self.session.page {
            Page::Start => 0.0,
            Page::Results => 1.0 / 3.0,
            Page::Item | Page::Sub(_) => 2.0 / 3.0,
            Page::Done => 1.0,
        }
    }

    /// How well the item in view matches the goal, in [0, 1]: on an item page the reward Buy
    /// Now would give with the options chosen so far; on a results page the best such reward
    /// over the visible products (no options chosen); after a purchase its reward; else 0.
    pub fn match_score(&self) -> f64 {
        match (self.session.page, self.session.product) {
            (Page::Done, _) => self.outcome.as_ref().map_or(0.0, |o| o.reward),
            (Page::Item | Page::Sub(_), Some(p)) => {
                self.score_purchase(p, &self.session.options).reward
            }
            (Page::Results, _) => self
                .session
                .visible_results()
                .iter()
                .map(|&p| self.score_purchase(p, &[]).reward)
                .fold(0.0, f64::max),
            _ => 0.0,
        }
    }

    fn no_op(&self) -> StepOutcome {
        StepOutcome {
            reward: 0.0,
            done: self.done(),
            success: false,
            effective: false,
        }
    }
}

impl Env for WebShop {
    type Action = WebShopAction;

    fn reset(&mut self, seed: u64) {
        self.goal = self.split[(seed % self.split.len() as u64) as usize];
        self.session = Session::start();
        self.steps = 0;
        self.outcome = None;
        self.out_of_steps = false;
    }

    fn step(&mut self, action: WebShopAction) -> StepOutcome {
        if self.done() {
            return self.no_op();
        }
        self.steps += 1;
        let arg = self.text(action);
        let catalog = Arc::clone(&self.catalog);
        let effective = match action.verb {
            Verb::Search => {
                self.session.search(&catalog, &arg);
                true
            }
            Verb::Click => self.session.click(&catalog, self.show_attributes, &arg),
        };
        let mut reward = 0.0;
        if self.session.page == Page::Done {
            let product = self.session.product.unwrap_or(self.goal().product);
            let outcome = self.score_purchase(product, &self.session.options);
            reward = outcome.reward;
            self.outcome = Some(outcome);
        } else if self.steps >= self.max_steps {
            self.out_of_steps = true;
        }
        StepOutcome {
            reward,
            done: self.done(),
            success: self.success(),
            effective,
        }
    }

    fn observation(&self) -> String {
        let reward = self.outcome.as_ref().map_or(0.0, |o| o.reward);
        self.session.render(
            &self.catalog,
            &self.goal().instruction,
            self.show_attributes,
            reward,
        )
    }

    fn parse_action(&self, text: &str) -> Option<WebShopAction> {
        let (verb, arg) = split_action(text)?;
        let verb = if verb.eq_ignore_ascii_case("search") {
            Verb::Search
        } else if verb.eq_ignore_ascii_case("click") {
            Verb::Click
        } else {
            return None;
        };
        let arg = arg.to_lowercase();
        let mut texts = self.texts.lock().unwrap_or_else(|e| e.into_inner());
        Some(WebShopAction {
            verb,
            text: texts.intern(&arg),
        })
    }

    fn action_name(&self, action: WebShopAction) -> String {
        let verb = match action.verb {
            Verb::Search => "search",
            Verb::Click => "click",
        };
        format!("{verb}[{}]", self.text(action))
    }

    fn action_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.done() {
            return names;
        }
        if self.session.page == Page::Start {
            names.push("search[<query>]".to_owned());
        }
        for (text, _) in self.session.clickables(&self.catalog, self.show_attributes) {
            if text != "search" {
                names.push(format!("click[{text}]"));
            }
        }
        names
    }

    fn done(&self) -> bool {
        self.session.page == Page::Done || self.out_of_steps
    }

    fn success(&self) -> bool {
        self.outcome.as_ref().is_some_and(|o| o.reward == 1.0)
    }
}
