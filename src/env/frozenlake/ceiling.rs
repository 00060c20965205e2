//! The best success probability any policy can reach on one lake under the agent's turn rules.
//!
//! The trainer's learning target ("close to what the task allows") needs the task's ceiling, and
//! on a slippery lake that is not 1: a turn of two actions is played open-loop (the second move is
//! chosen before the first slip is seen), the turn limit caps the episode, and some lakes force a
//! walk beside a hole. This is exact dynamic programming over (cell, turns left, actions left)
//! with the transition probabilities of `FrozenLake::step`, maximised over every sequence of one
//! to `max_actions_per_turn` moves per turn.

use super::{FrozenLake, FrozenLakeAction};

/// Turn rules the ceiling is computed under (the task's `[env]` limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnLimits {
    pub max_turns: usize,
    pub max_actions_per_turn: usize,
    pub max_actions_per_episode: usize,
}

/// Probability distribution over cells, plus the mass already at the goal or in a hole.
#[derive(Clone)]
struct Spread {
    alive: Vec<f64>,
    won: f64,
}

/// Best success from every cell with every number of turns and actions left, on one lake under
/// one set of turn rules: the optimal value function the ceiling and the "optimal" search
/// scorer read.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeValues {
    limits: TurnLimits,
    /// value[t][a][cell]: best success with t turns and a actions left from `cell`.
    value: Vec<Vec<Vec<f64>>>,
}

/// Entries of the value table at most (8 bytes each: 128 MiB).
const MAX_TABLE_ENTRIES: u128 = 1 << 24;
/// Cell updates at most: each table entry searches every sequence of up to
/// `max_actions_per_turn` moves over a distribution on the cells (about a minute here).
const MAX_WORK: u128 = 20_000_000_000;

/// Why the exact value table of a `cells`-cell lake under `limits` is too large to compute
/// (memory or time), or None. The table grows as turns x actions x cells and each entry's
/// search as 4^moves-per-turn x cells, so a few large settings that are each in range
/// multiply into hundreds of gigabytes.
pub fn table_too_large(cells: usize, limits: TurnLimits) -> Option<String> {
    let entries = (limits.max_turns as u128 + 1)
        * (limits.max_actions_per_episode as u128 + 1)
        * cells as u128;
    let moves = limits
        .max_actions_per_turn
        .min(limits.max_actions_per_episode)
        .min(60) as u32;
    let work = entries
        .saturating_mul(4u128.pow(moves))
        .saturating_mul(cells as u128);
    if entries > MAX_TABLE_ENTRIES {
        Some(format!(
            "the exact value table needs (env.max_turns + 1) x (env.max_actions_per_episode + 1) \
             x cells = {entries} entries, beyond {MAX_TABLE_ENTRIES}"
        ))
    } else if work > MAX_WORK {
        Some(format!(
            "the exact value table needs about {work:.1e} cell updates (4^env.max_actions_per_turn \
             sequences per entry), beyond {MAX_WORK:.0e}",
            work = work as f64,
            MAX_WORK = MAX_WORK as f64
        ))
    } else {
        None
    }
}

impl LakeValues {
    /// Best success from `cell` with `turns` and `actions` left (0 outside the table).
    pub fn at(&self, turns: usize, actions: usize, cell: usize) -> f64 {
        let turns = turns.min(self.limits.max_turns);
        let actions = actions.min(self.limits.max_actions_per_episode);
        self.value[turns][actions].get(cell).copied().unwrap_or(0.0)
    }
}

impl FrozenLake {
    /// The highest probability of reaching the goal from the current player cell, over all
    /// policies that see the board at the start of each turn (as the agent does).
    pub fn success_ceiling(&self, limits: TurnLimits) -> f64 {
        let values = self.values(limits);
        self.value_here(&values, limits.max_turns, limits.max_actions_per_episode)
    }

    /// Best success from the player's cell with `turns` and `actions` left.
    pub fn value_here(&self, values: &LakeValues, turns: usize, actions: usize) -> f64 {
        let (r, c) = self.player();
        let cell = r * self.cols() + c;
        if cell == self.map().goal {
            return 1.0;
        }
        if self.is_terminal_cell(cell) {
            return 0.0;
        }
        values.at(turns, actions, cell)
    }

    /// The optimal value function of this lake (the map and slip rate; not the player's cell).
    pub fn values(&self, limits: TurnLimits) -> LakeValues {
        let n = self.rows() * self.cols();
        let turns = limits.max_turns;
        let budget = limits.max_actions_per_episode;
        let mut value = vec![vec![vec![0.0f64; n]; budget + 1]; turns + 1];
        for t in 1..=turns {
            for a in 1..=budget {
                for cell in 0..n {
                    if self.is_terminal_cell(cell) {
                        continue;
                    }
                    value[t][a][cell] = self.best_turn(cell, a, limits, &value[t - 1]);
                }
            }
        }
        LakeValues { limits, value }
    }

    /// Exact success probability of playing `moves` as this turn from the player's cell, with
    /// `turns` and `actions` left before the turn, then playing optimally: the expectation over
    /// every slip, without sampling one.
    pub fn plan_success(
        &self,
        values: &LakeValues,
        moves: &[FrozenLakeAction],
        turns: usize,
        actions: usize,
    ) -> f64 {
        let (r, c) = self.player();
        let cell = r * self.cols() + c;
        if self.is_terminal_cell(cell) {
            return if cell == self.map().goal { 1.0 } else { 0.0 };
        }
        let mut spread = Spread {
            alive: vec![0.0; self.rows() * self.cols()],
            won: 0.0,
        };
        spread.alive[cell] = 1.0;
        let played = moves.len().min(actions);
        for &action in &moves[..played] {
            spread = self.move_spread(&spread, action);
        }
        let (turns_after, actions_after) = (turns.saturating_sub(1), actions - played);
        let future: f64 = spread
            .alive
            .iter()
            .enumerate()
            .map(|(cell, p)| p * values.at(turns_after, actions_after, cell))
            .sum();
        spread.won + future
    }

    fn is_terminal_cell(&self, cell: usize) -> bool {
        cell == self.map().goal || self.map().holes[cell]
    }

    /// Best expected success of one turn from `cell` with `actions_left`, then `next[a']`.
    fn best_turn(
        &self,
        cell: usize,
        actions_left: usize,
        limits: TurnLimits,
        next: &[Vec<f64>],
    ) -> f64 {
        let mut start = Spread {
            alive: vec![0.0; self.rows() * self.cols()],
            won: 0.0,
        };
        start.alive[cell] = 1.0;
        let longest = limits.max_actions_per_turn.min(actions_left);
        let mut best = 0.0f64;
        self.extend(&start, 0, longest, actions_left, next, &mut best);
        best
    }

    /// Depth-first over the moves of one turn: after each prefix of `used` moves, score stopping
    /// there, then try every next move while the turn has room.
    fn extend(
        &self,
        spread: &Spread,
        used: usize,
        longest: usize,
        actions_left: usize,
        next: &[Vec<f64>],
        best: &mut f64,
    ) {
        if used > 0 {
            let after = &next[actions_left - used];
            let future: f64 = spread.alive.iter().zip(after).map(|(p, v)| p * v).sum();
            *best = best.max(spread.won + future);
        }
        if used == longest {
            return;
        }
        for action in FrozenLakeAction::ALL {
            let moved = self.move_spread(spread, action);
            self.extend(&moved, used + 1, longest, actions_left, next, best);
        }
    }

    /// Push every living cell's mass through one slippery move.
    fn move_spread(&self, spread: &Spread, action: FrozenLakeAction) -> Spread {
        let p = self.success_rate();
        let side = (1.0 - p) / 2.0;
        let mut out = Spread {
            alive: vec![0.0; spread.alive.len()],
            won: spread.won,
        };
        for (cell, &mass) in spread.alive.iter().enumerate() {
            if mass == 0.0 {
                continue;
            }
            for (dir, share) in [
                (action, p),
                (action.turned(-1), side),
                (action.turned(1), side),
            ] {
                if share == 0.0 {
                    continue;
                }
                let to = self.neighbour(cell, dir);
                if to == self.map().goal {
                    out.won += mass * share;
                } else if !self.map().holes[to] {
                    out.alive[to] += mass * share;
                }
            }
        }
        out
    }

    /// The cell a move from `cell` lands on, by the rule `step` uses.
    fn neighbour(&self, cell: usize, dir: FrozenLakeAction) -> usize {
        let cols = self.cols();
        let (nr, nc) = self.moved((cell / cols, cell % cols), dir);
        nr * cols + nc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Env;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const RULES: TurnLimits = TurnLimits {
        max_turns: 5,
        max_actions_per_turn: 2,
        max_actions_per_episode: 10,
    };

    #[test]
    fn deterministic_lake_within_reach_is_certain_and_beyond_reach_impossible() {
        let lake = FrozenLake::from_map("SFFF/FFFF/FFFF/FFFG", 1.0).unwrap();
        assert_eq!(lake.success_ceiling(RULES), 1.0);
        let short = TurnLimits {
            max_turns: 2,
            ..RULES
        };
        // Six moves are needed; two turns of two moves give four.
        assert_eq!(lake.success_ceiling(short), 0.0);
        let three = TurnLimits {
            max_turns: 3,
            ..RULES
        };
        assert_eq!(lake.success_ceiling(three), 1.0);
    }

    #[test]
    fn one_slippery_move_next_to_the_goal_succeeds_at_the_success_rate_then_retries() {
        // Start beside the goal in a corridor of one row: "Right" wins with 0.8; a slip up or
        // down hits the wall and stays, so each further turn retries.
        let lake = FrozenLake::from_map("SG", 0.8).unwrap();
        let one_turn_one_move = TurnLimits {
            max_turns: 1,
            max_actions_per_turn: 1,
            max_actions_per_episode: 1,
        };
        assert!((lake.success_ceiling(one_turn_one_move) - 0.8).abs() < 1e-12);
        let two_moves = TurnLimits {
            max_turns: 1,
            max_actions_per_turn: 2,
            max_actions_per_episode: 2,
        };
        assert!((lake.success_ceiling(two_moves) - 0.96).abs() < 1e-12);
    }

    #[test]
    fn ceiling_equals_the_best_simulated_plan_when_one_turn_is_open_loop() {
        // One turn of four moves is a fixed plan, so the ceiling is the best of the 256 plans;
        // simulating every plan with the environment itself checks the transition model.
        let lake = FrozenLake::from_map("SFH/FFF/HFG", 0.8).unwrap();
        let rules = TurnLimits {
            max_turns: 1,
            max_actions_per_turn: 4,
            max_actions_per_episode: 4,
        };
        let ceiling = lake.success_ceiling(rules);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let trials = 20_000;
        let mut best_simulated = 0.0f64;
        for code in 0..256usize {
            let plan: Vec<FrozenLakeAction> = (0..4)
                .map(|i| FrozenLakeAction::ALL[(code >> (2 * i)) & 3])
                .collect();
            let mut wins = 0;
            for _ in 0..trials {
                let mut env = lake.clone();
                env.reseed(rand::Rng::next_u64(&mut rng));
                for &a in &plan {
                    if env.step(a).done {
                        break;
                    }
                }
                wins += usize::from(env.success());
            }
            best_simulated = best_simulated.max(wins as f64 / trials as f64);
        }
        // 20k trials: one standard error is at most 0.0035, the max over 256 plans adds ~3.
        assert!(
            (best_simulated - ceiling).abs() < 0.02,
            "{best_simulated} vs {ceiling}"
        );
        assert!(ceiling > 0.3 && ceiling < 1.0, "{ceiling}");
    }

    #[test]
    fn the_ceiling_is_the_best_first_turn_plan_and_plans_match_simulation() {
        // plan_success is the Q-value of a first turn; the ceiling maximises it over every first
        // turn of one or two moves, and one simulated plan agrees with its exact expectation.
        let lake = FrozenLake::from_map("SFFH/FHFF/FFFH/HFFG", 0.8).unwrap();
        let values = lake.values(RULES);
        let (turns, budget) = (RULES.max_turns, RULES.max_actions_per_episode);
        let mut plans: Vec<Vec<FrozenLakeAction>> =
            FrozenLakeAction::ALL.iter().map(|&a| vec![a]).collect();
        for a in FrozenLakeAction::ALL {
            for b in FrozenLakeAction::ALL {
                plans.push(vec![a, b]);
            }
        }
        let q: Vec<f64> = plans
            .iter()
            .map(|p| lake.plan_success(&values, p, turns, budget))
            .collect();
        let best = q.iter().copied().fold(f64::MIN, f64::max);
        assert!((best - lake.success_ceiling(RULES)).abs() < 1e-12);
        assert!(q.iter().any(|&v| v < best - 0.05), "plans differ: {q:?}");

        // Simulate [Down, Down] then the optimal policy (the best plan each later turn).
        let plan = [FrozenLakeAction::Down, FrozenLakeAction::Down];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let trials = 20_000;
        let mut wins = 0;
        for _ in 0..trials {
            let mut env = lake.clone();
            env.reseed(rand::Rng::next_u64(&mut rng));
            let (mut t, mut a) = (turns, budget);
            let mut moves = plan.to_vec();
            while !env.done() && t > 0 && a > 0 {
                let n = moves.len().min(a);
                for &m in &moves[..n] {
                    if env.step(m).done {
                        break;
                    }
                }
                (t, a) = (t - 1, a - n);
                moves = plans
                    .iter()
                    .max_by(|x, y| {
                        let qx = env.plan_success(&values, x, t, a);
                        let qy = env.plan_success(&values, y, t, a);
                        qx.total_cmp(&qy)
                    })
                    .unwrap()
                    .clone();
            }
            wins += usize::from(env.success());
        }
        let simulated = wins as f64 / trials as f64;
        let exact = lake.plan_success(&values, &plan, turns, budget);
        assert!((simulated - exact).abs() < 0.015, "{simulated} vs {exact}");
    }
}
