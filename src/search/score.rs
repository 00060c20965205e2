//! Scoring a candidate reply on a fork of the environment: the sum of the rewards its actions
//! earn (plus its format penalty), optionally plus a task heuristic (the change in a potential:
//! Sokoban box progress, FrozenLake risk-aware distance). A reply with no valid action scores
//! [`NO_VALID_ACTION`]. Stochastic tasks: "shared" plays the fork with the copied RNG (it
//! previews the real outcome); "independent" reseeds `simulations` forks and averages.
//!
//! The "optimal" potential replaces the heuristic with the task's exact value (Sokoban: minus the
//! moves left on a shortest solution, by breadth-first search; FrozenLake: the best success still
//! reachable, by dynamic programming over the slips). It is the most a scorer can tell search,
//! so it calibrates the heuristics; on FrozenLake best-of-N scores a reply by its exact
//! expectation over every slip instead of by sampled forks.

use std::cell::RefCell;
use std::rc::Rc;

use crate::env::frozenlake::{FrozenLake, LakeValues, TurnLimits};
use crate::env::{ParsedReply, TaskEnv, TurnResult, TurnRules, play_turn, turn_actions};

/// Score of a candidate that names no valid action.
pub const NO_VALID_ACTION: f64 = -1e6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stochastic {
    Shared,
    Independent { simulations: usize },
}

/// The potential whose gain a turn earns on top of its reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Potential {
    /// The spec's task heuristic (box progress, risk-aware distance, page progress).
    Heuristic,
    /// The task's exact value (see the module doc); Sokoban and FrozenLake only.
    Optimal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scorer {
    /// Weight of the potential (0 = environment reward only).
    pub heuristic_weight: f64,
    pub potential: Potential,
    pub stochastic: Stochastic,
}

/// Where a scored turn sits in its episode, before the turn is played: the optimal potential
/// values a state by the turns and actions still left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Horizon {
    pub limits: TurnLimits,
    pub turns_left: usize,
    pub actions_left: usize,
}

impl Horizon {
    /// The horizon after a turn that spent `actions`.
    fn after(self, actions: usize) -> Horizon {
        Horizon {
            turns_left: self.turns_left.saturating_sub(1),
            actions_left: self.actions_left.saturating_sub(actions),
            ..self
        }
    }
}

/// A candidate's score and the forks made to compute it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f64,
    pub forks: usize,
}

impl Scorer {
    pub fn reward_only() -> Scorer {
        Scorer {
            heuristic_weight: 0.0,
            potential: Potential::Heuristic,
            stochastic: Stochastic::Shared,
        }
    }

    /// The value of one played turn: reward + penalty + weighted potential gain. `horizon` is
    /// the episode's state before the turn.
    pub fn turn_value(
        &self,
        before: &TaskEnv,
        after: &TaskEnv,
        result: &TurnResult,
        horizon: Horizon,
    ) -> f64 {
        if result.no_valid_action {
            return NO_VALID_ACTION;
        }
        let mut v = result.reward + result.penalty;
        if self.heuristic_weight != 0.0 {
            let gain = match self.potential {
                Potential::Heuristic => potential(after) - potential(before),
                Potential::Optimal => {
                    optimal_potential(after, horizon.after(result.actions.len()))
                        - optimal_potential(before, horizon)
                }
            };
            v += self.heuristic_weight * gain;
        }
        v
    }

    /// Score `reply` as the next turn of `base` (never modified). `seed` feeds independent mode.
    pub fn score(
        &self,
        base: &TaskEnv,
        reply: &ParsedReply,
        horizon: Horizon,
        rules: &TurnRules,
        seed: u64,
    ) -> Scored {
        let actions_used = rules
            .max_actions_per_episode
            .saturating_sub(horizon.actions_left);
        if let (Potential::Optimal, TaskEnv::FrozenLake(lake)) = (self.potential, base)
            && self.heuristic_weight != 0.0
        {
            return Scored {
                score: exact_lake_score(lake, reply, rules, horizon),
                forks: 0,
            };
        }
        let play = |env: &mut TaskEnv| {
            let result = play_turn(env, reply, actions_used, rules);
            self.turn_value(base, env, &result, horizon)
        };
        match self.stochastic {
            Stochastic::Shared => Scored {
                score: play(&mut base.clone()),
                forks: 1,
            },
            Stochastic::Independent { simulations } => {
                let k = simulations.max(1);
                let total: f64 = (0..k)
                    .map(|i| {
                        let mut fork = base.clone();
                        fork.reseed(crate::search::episode::turn_seed(seed, i + 1));
                        play(&mut fork)
                    })
                    .sum();
                Scored {
                    score: total / k as f64,
                    forks: k,
                }
            }
        }
    }
}

/// FrozenLake under the optimal potential: the format penalty plus the exact probability of
/// success after playing the reply's moves this turn and optimally afterwards.
fn exact_lake_score(
    lake: &FrozenLake,
    reply: &ParsedReply,
    rules: &TurnRules,
    horizon: Horizon,
) -> f64 {
    let (actions, any_invalid) = turn_actions(lake, reply, rules);
    if actions.is_empty() {
        return NO_VALID_ACTION;
    }
    let values = lake_values(lake, horizon.limits);
    let q = lake.plan_success(&values, &actions, horizon.turns_left, horizon.actions_left);
    q + if any_invalid {
        rules.format_penalty
    } else {
        0.0
    }
}

/// The optimal potential of a state (higher is better). Sokoban: minus the moves left on a
/// shortest solution (an unsolvable room: minus twice its cell count, below any solvable one).
/// FrozenLake: the best success still reachable. WebShop has no exact value: its heuristic.
pub fn optimal_potential(env: &TaskEnv, horizon: Horizon) -> f64 {
    match env {
        TaskEnv::Sokoban(e) => {
            let room = e.room();
            match crate::env::sokoban::solve(room, SOLVER_STATES) {
                Some(path) => -(path.len() as f64),
                None => -2.0 * (room.layout().rows() * room.layout().cols()) as f64,
            }
        }
        TaskEnv::FrozenLake(lake) => {
            let values = lake_values(lake, horizon.limits);
            lake.value_here(&values, horizon.turns_left, horizon.actions_left)
        }
        TaskEnv::WebShop(_) => potential(env),
    }
}

/// States one Sokoban solve may visit: far more than a 6x6 room with one box has.
const SOLVER_STATES: usize = 200_000;

/// Lakes whose value tables a thread keeps: a search actor scores many turns of one episode in
/// a row, so the last few lakes cover nearly every lookup.
const CACHED_LAKES: usize = 8;

type LakeKey = (crate::env::frozenlake::LakeMap, u64, TurnLimits);

thread_local! {
    static LAKE_VALUES: RefCell<Vec<(LakeKey, Rc<LakeValues>)>> = const { RefCell::new(Vec::new()) };
}

/// The value table of `lake`'s map and slip rate, computed once per thread and kept (LRU).
fn lake_values(lake: &FrozenLake, limits: TurnLimits) -> Rc<LakeValues> {
    let key: LakeKey = (lake.map().clone(), lake.success_rate().to_bits(), limits);
    LAKE_VALUES.with_borrow_mut(|cache| {
        if let Some(i) = cache.iter().position(|(k, _)| *k == key) {
            let hit = cache.remove(i);
            let values = hit.1.clone();
            cache.push(hit);
            return values;
        }
        let values = Rc::new(lake.values(limits));
        if cache.len() == CACHED_LAKES {
            cache.remove(0);
        }
        cache.push((key, values.clone()));
        values
    })
}

/// The task heuristic as a potential of a state; higher is better. Differences of it reward
/// progress. Sokoban: minus the summed box-to-nearest-target distance. FrozenLake: minus the
/// safe-path distance to the goal, minus 1 for standing next to a hole, minus 10 in a hole.
pub fn potential(env: &TaskEnv) -> f64 {
    env.potential()
}
