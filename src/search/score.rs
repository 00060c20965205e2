//! Scoring a candidate reply on a fork of the environment: the sum of the rewards its actions
//! earn (plus its format penalty), optionally plus a task heuristic (the change in a potential:
//! Sokoban box progress, FrozenLake risk-aware distance). A reply with no valid action scores
//! [`NO_VALID_ACTION`]. Stochastic tasks: "shared" plays the fork with the copied RNG (it
//! previews the real outcome); "independent" reseeds `simulations` forks and averages.

use crate::env::{ParsedReply, TaskEnv, TurnResult, TurnRules, play_turn};

/// Score of a candidate that names no valid action.
pub const NO_VALID_ACTION: f64 = -1e6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stochastic {
    Shared,
    Independent { simulations: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scorer {
    /// Weight of the task heuristic (0 = environment reward only).
    pub heuristic_weight: f64,
    pub stochastic: Stochastic,
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
            stochastic: Stochastic::Shared,
        }
    }

    /// The value of one played turn: reward + penalty + weighted potential gain.
    pub fn turn_value(&self, before: &TaskEnv, after: &TaskEnv, result: &TurnResult) -> f64 {
        if result.no_valid_action {
            return NO_VALID_ACTION;
        }
        let mut v = result.reward + result.penalty;
        if self.heuristic_weight != 0.0 {
            v += self.heuristic_weight * (potential(after) - potential(before));
        }
        v
    }

    /// Score `reply` as the next turn of `base` (never modified). `seed` feeds independent mode.
    pub fn score(
        &self,
        base: &TaskEnv,
        reply: &ParsedReply,
        actions_used: usize,
        rules: &TurnRules,
        seed: u64,
    ) -> Scored {
        let play = |env: &mut TaskEnv| {
            let result = play_turn(env, reply, actions_used, rules);
            self.turn_value(base, env, &result)
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

/// The task heuristic as a potential of a state; higher is better. Differences of it reward
/// progress. Sokoban: minus the summed box-to-nearest-target distance. FrozenLake: minus the
/// safe-path distance to the goal, minus 1 for standing next to a hole, minus 10 in a hole.
pub fn potential(env: &TaskEnv) -> f64 {
    env.potential()
}
