//! `[search]`: which TSR strategy builds training trajectories, and its sizes.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use crate::config::{Issues, Section};

/// The strategies, by config name.
pub const KINDS: &[&str] = &[
    "none",
    "best_of_n",
    "best_of_n_trajectory",
    "beam",
    "lookahead",
    "select",
];

/// `[search]`: TSR during training rollouts (never during validation or eval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSection {
    /// Strategy: none (plain sampling), best_of_n (per turn), best_of_n_trajectory, beam,
    /// lookahead, or select (trajectory selection: keep the half of each group farthest from
    /// its mean; generates nothing extra).
    pub kind: String,
    /// Candidates per turn (best_of_n, lookahead M) or whole episodes per instance
    /// (best_of_n_trajectory: each planned episode is the best of `n` played on forks).
    pub n: usize,
    /// best_of_n_trajectory: episodes kept out of the `n` played for one planned episode. Only 1
    /// is implemented (the spec's top k of a group, e.g. the reference's "double the group and
    /// keep the better half", is not), so larger values are refused rather than ignored.
    pub keep: usize,
    /// Beam width B: partial trajectories kept per instance.
    pub width: usize,
    /// Beam branching M: candidates each beam expands per turn (at least width).
    pub branch: usize,
    /// Lookahead depth D: extra turns a candidate's fork is continued with the policy.
    pub depth: usize,
    /// Score function: "reward" (environment reward on a fork), "heuristic" (reward plus the
    /// task's heuristic: Sokoban box progress, FrozenLake risk-aware) or "optimal" (reward plus
    /// the task's exact value: Sokoban moves left on a shortest solution, FrozenLake best
    /// reachable success; exact over the slips in best-of-N).
    pub scorer: String,
    /// Weight of the task heuristic (or exact value) when scorer = "heuristic" ("optimal").
    pub heuristic_weight: f64,
    /// Stochastic environments: "shared" (a fork copies the RNG and previews the real outcome)
    /// or "independent" (forks are reseeded; the score averages `simulations` of them).
    pub stochastic: String,
    /// Simulations per candidate in independent mode.
    pub simulations: usize,
    /// best_of_n and lookahead: besides the `n` policy samples, this many well-formed replies
    /// with uniformly random valid actions join every turn's candidates (0 = none), so the
    /// search can still find a move the policy has stopped proposing (a policy that has
    /// collapsed onto the moves toward the goal never samples the detour around a hole). Ties
    /// go to the policy's samples; the random replies count as candidates, not as generated
    /// tokens. For compact prompt forms (a chat-form reply without its thinking is invalid).
    pub explore: usize,
}

impl Default for SearchSection {
    fn default() -> Self {
        Self {
            kind: "none".into(),
            n: 4,
            keep: 1,
            width: 2,
            branch: 4,
            depth: 2,
            scorer: "reward".into(),
            heuristic_weight: 0.5,
            stochastic: "shared".into(),
            simulations: 4,
            explore: 0,
        }
    }
}

impl Section for SearchSection {
    fn validate(&self, p: &str, issues: &mut Issues) {
        let key = |k: &str| format!("{p}.{k}");
        issues.check(
            KINDS.contains(&self.kind.as_str()),
            &key("kind"),
            &self.kind,
            &format!("one of {}", KINDS.join(", ")),
        );
        issues.range(&key("n"), self.n, 1, 256);
        // 0 is what run folders written before this check hold (it was documented as "half"
        // but never read): it still loads, and means 1 like it always did.
        issues.check(
            self.keep <= 1,
            &key("keep"),
            self.keep,
            "1 (keeping more than the best of n is not implemented; 0 also means 1)",
        );
        issues.range(&key("width"), self.width, 1, 64);
        issues.check(
            self.branch >= self.width && self.branch <= 256,
            &key("branch"),
            self.branch,
            &format!("between width = {} and 256", self.width),
        );
        issues.range(&key("depth"), self.depth, 0, 64);
        issues.check(
            ["reward", "heuristic", "optimal"].contains(&self.scorer.as_str()),
            &key("scorer"),
            &self.scorer,
            "reward, heuristic or optimal",
        );
        issues.range(&key("heuristic_weight"), self.heuristic_weight, 0.0, 100.0);
        issues.check(
            ["shared", "independent"].contains(&self.stochastic.as_str()),
            &key("stochastic"),
            &self.stochastic,
            "shared or independent",
        );
        issues.range(&key("simulations"), self.simulations, 1, 1024);
        // Only best-of-N per turn reseeds and averages its forks; beam, lookahead and whole
        // episodes on forks always share the real environment's randomness, so "independent"
        // there would be silently ignored.
        issues.check(
            self.stochastic == "shared"
                || !["beam", "lookahead", "best_of_n_trajectory"].contains(&self.kind.as_str()),
            &key("stochastic"),
            &self.stochastic,
            "shared when kind is beam, lookahead or best_of_n_trajectory (only best_of_n \
             averages independent simulations)",
        );
        issues.range(&key("explore"), self.explore, 0, 256);
        issues.check(
            self.explore == 0 || ["best_of_n", "lookahead"].contains(&self.kind.as_str()),
            &key("explore"),
            self.explore,
            "0 unless kind is best_of_n or lookahead (the per-turn searches)",
        );
    }
}

/// Search settings that depend on other sections: depth within the turn limit, the scorer known
/// for the task.
pub fn cross_check(config: &crate::config::Config, issues: &mut Issues) {
    let s = &config.search;
    if s.kind == "lookahead" && s.depth >= config.env.max_turns {
        issues.push(
            "search.depth",
            format!(
                "{} is beyond the turn limit: lookahead needs depth < env.max_turns = {}",
                s.depth, config.env.max_turns
            ),
        );
    }
    if s.scorer == "heuristic"
        && !["sokoban", "frozenlake", "webshop"].contains(&config.env.task.as_str())
    {
        issues.push(
            "search.scorer",
            format!(
                "\"heuristic\" has no heuristic for task {:?}; use \"reward\"",
                config.env.task
            ),
        );
    }
    if s.scorer == "optimal" && config.env.task == "frozenlake" {
        let limits = config.env.turn_limits();
        let cells = config.frozenlake.rows * config.frozenlake.cols;
        if let Some(why) = crate::env::frozenlake::table_too_large(cells, limits) {
            issues.push("search.scorer", format!("\"optimal\": {why}"));
        }
    }
    if s.scorer == "optimal" && !["sokoban", "frozenlake"].contains(&config.env.task.as_str()) {
        issues.push(
            "search.scorer",
            format!(
                "\"optimal\" has no exact value for task {:?}; use \"heuristic\" or \"reward\"",
                config.env.task
            ),
        );
    }
}
