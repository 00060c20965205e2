//! Room generation, the gym-sokoban method as RAGEN runs it: a random-walk topology, a player
//! and targets on random floor cells, reverse play to pull the boxes away (see `reverse`), then a
//! short random walk of the player so that it does not always start beside a box. All random
//! choices come from one ChaCha8 stream seeded by the reset seed.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::reverse::{
    MAX_GEN_BOXES, MAX_GEN_CELLS, ReverseLimits, ReverseResult, ReverseRoom, reverse_play,
};
use super::room::{CellSet, Room};

/// How the player is moved off the box after reverse play (config keys `nudge_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nudge {
    /// Probability of moving at all when the boxes moved one cell in total.
    pub prob_one_cell: f64,
    /// Probability of moving at all otherwise.
    pub prob: f64,
    /// Probability of another step after each step.
    pub continue_prob: f64,
    pub max_steps: usize,
}

/// Everything generation depends on besides the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    pub rows: usize,
    pub cols: usize,
    pub boxes: usize,
    /// Steps of the topology walk.
    pub walk_steps: usize,
    pub p_change_direction: f64,
    /// Topologies tried per seed before moving on to a derived seed.
    pub topology_tries: usize,
    pub limits: ReverseLimits,
    pub nudge: Nudge,
}

/// Derived seeds tried before giving up on a seed (only reachable with configurations where
/// reverse play can almost never move a box; then the last attempt is used as it is).
const MAX_DERIVED_SEEDS: usize = 10_000;

/// The next seed in a retry chain (splitmix64, so chains from nearby seeds do not overlap).
pub fn derive_seed(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The room for `seed`: the first seed of the chain `seed, derive_seed(seed), ...` whose
/// attempt yields a room with a positive reverse-play score.
pub fn generate(params: &GenParams, seed: u64) -> Room {
    debug_assert!(params.rows * params.cols <= MAX_GEN_CELLS && params.boxes <= MAX_GEN_BOXES);
    let mut seed = seed;
    let mut last = None;
    for _ in 0..MAX_DERIVED_SEEDS {
        match attempt(params, seed) {
            Attempt::Room(room) => return room,
            Attempt::Useless(room) => last = Some(room),
            Attempt::NoSpace => {}
        }
        seed = derive_seed(seed);
    }
    // Validation rules out the configurations that could get here; a room whose boxes start
    // on their targets is a valid (already solved) room, so it is still a safe answer.
    last.unwrap_or_else(|| fallback_room(params))
}

enum Attempt {
    Room(Room),
    /// Every topology scored 0; the last one, boxes on their targets.
    Useless(Room),
    /// The walk made fewer floor cells than the player and targets need.
    NoSpace,
}

fn attempt(params: &GenParams, seed: u64) -> Attempt {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cells = params.rows * params.cols;
    let mut outcome = None;
    for _ in 0..params.topology_tries {
        let floor = topology(&mut rng, params);
        let Some((player, targets)) = place(&mut rng, &floor[..cells], params.boxes) else {
            return Attempt::NoSpace;
        };
        let room = ReverseRoom {
            cols: params.cols,
            floor: &floor[..cells],
            targets: &targets[..params.boxes],
        };
        let result = reverse_play(&room, player, params.limits);
        let good = result.score > 0;
        outcome = Some((floor, targets, result));
        if good {
            break;
        }
    }
    let Some((floor, targets, mut result)) = outcome else {
        return Attempt::NoSpace;
    };
    let useless = result.score == 0;
    if !useless {
        nudge(&mut rng, params, &floor, &mut result);
    }
    let room = build(params, &floor, &targets[..params.boxes], &result);
    if useless {
        Attempt::Useless(room)
    } else {
        Attempt::Room(room)
    }
}

/// Floor cells carved by a random walk that stamps one of five 3x3 masks at every step.
fn topology(rng: &mut ChaCha8Rng, params: &GenParams) -> [bool; MAX_GEN_CELLS] {
    const DIRECTIONS: [(isize, isize); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];
    const MASKS: [[[bool; 3]; 3]; 5] = {
        const O: bool = false;
        const I: bool = true;
        [
            [[O, O, O], [I, I, I], [O, O, O]],
            [[O, I, O], [O, I, O], [O, I, O]],
            [[O, O, O], [I, I, O], [O, I, O]],
            [[O, O, O], [I, I, O], [I, I, O]],
            [[O, O, O], [O, I, I], [O, I, O]],
        ]
    };
    let (rows, cols) = (params.rows, params.cols);
    let mut floor = [false; MAX_GEN_CELLS];
    let mut direction = DIRECTIONS[rng.random_range(0..4)];
    // As the original (`randint(1, dim - 1)`, inclusive), the start may lie on the last row or
    // column; the first step clamps it into the interior before any mask is stamped. Kept for
    // the distribution: a 1.5% shift in 2-move rooms over 10,000 seeds disappears with it.
    let mut row = rng.random_range(1..=rows - 1);
    let mut col = rng.random_range(1..=cols - 1);
    for _ in 0..params.walk_steps {
        if rng.random::<f64>() < params.p_change_direction {
            direction = DIRECTIONS[rng.random_range(0..4)];
        }
        row = row.saturating_add_signed(direction.0).clamp(1, rows - 2);
        col = col.saturating_add_signed(direction.1).clamp(1, cols - 2);
        let mask = &MASKS[rng.random_range(0..MASKS.len())];
        for (dr, mask_row) in mask.iter().enumerate() {
            for (dc, &on) in mask_row.iter().enumerate() {
                if on {
                    floor[(row + dr - 1) * cols + col + dc - 1] = true;
                }
            }
        }
    }
    for (cell, is_floor) in floor.iter_mut().enumerate().take(rows * cols) {
        let (r, c) = (cell / cols, cell % cols);
        if r == 0 || c == 0 || r == rows - 1 || c == cols - 1 {
            *is_floor = false;
        }
    }
    floor
}

/// The player on a random floor cell, then each target on a random remaining one; `None` when
/// there are not more floor cells than player and targets (the original's rule).
fn place(
    rng: &mut ChaCha8Rng,
    floor: &[bool],
    boxes: usize,
) -> Option<(usize, [u8; MAX_GEN_BOXES])> {
    let mut free: Vec<u8> = (0..floor.len())
        .filter(|&c| floor[c])
        .map(|c| c as u8)
        .collect();
    if free.len() <= boxes + 1 {
        return None;
    }
    let player = free.remove(rng.random_range(0..free.len())) as usize;
    let mut targets = [0u8; MAX_GEN_BOXES];
    for target in targets.iter_mut().take(boxes) {
        *target = free.remove(rng.random_range(0..free.len()));
    }
    Some((player, targets))
}

/// Walk the player up to `max_steps` random steps over free cells it has not stood on.
fn nudge(
    rng: &mut ChaCha8Rng,
    params: &GenParams,
    floor: &[bool; MAX_GEN_CELLS],
    result: &mut ReverseResult,
) {
    let nudge = params.nudge;
    let p = if result.displacement == 1 {
        nudge.prob_one_cell
    } else {
        nudge.prob
    };
    if rng.random::<f64>() > p {
        return;
    }
    let state = &mut result.state;
    let boxes = &state.boxes[..params.boxes];
    let c = params.cols as isize;
    let mut visited = vec![state.player];
    while visited.len() <= nudge.max_steps {
        let player = state.player as usize;
        let mut moves = [0u8; 4];
        let mut count = 0;
        for offset in [-c, c, -1, 1] {
            let next = player.wrapping_add_signed(offset) as u8;
            if floor[next as usize] && !boxes.contains(&next) && !visited.contains(&next) {
                moves[count] = next;
                count += 1;
            }
        }
        if count == 0 {
            break;
        }
        state.player = moves[rng.random_range(0..count)];
        visited.push(state.player);
        if visited.len() > nudge.max_steps || rng.random::<f64>() > nudge.continue_prob {
            break;
        }
    }
}

fn build(
    params: &GenParams,
    floor: &[bool; MAX_GEN_CELLS],
    targets: &[u8],
    result: &ReverseResult,
) -> Room {
    let cells = params.rows * params.cols;
    let walls: CellSet = (0..cells).filter(|&c| !floor[c]).collect();
    let target_set: CellSet = targets.iter().map(|&t| t as usize).collect();
    let boxes: CellSet = result.state.boxes[..params.boxes]
        .iter()
        .map(|&b| b as usize)
        .collect();
    Room::new(
        params.rows,
        params.cols,
        walls,
        target_set,
        boxes,
        result.state.player as usize,
    )
    .expect("reverse play keeps the player and boxes on distinct floor cells")
}

/// A plain room with one open interior, for the unreachable case described in `generate`.
fn fallback_room(params: &GenParams) -> Room {
    let (rows, cols) = (params.rows, params.cols);
    let interior: Vec<usize> = (0..rows * cols)
        .filter(|&c| (1..rows - 1).contains(&(c / cols)) && (1..cols - 1).contains(&(c % cols)))
        .collect();
    let walls: CellSet = (0..rows * cols).filter(|c| !interior.contains(c)).collect();
    let boxes: CellSet = interior[1..=params.boxes].iter().copied().collect();
    Room::new(rows, cols, walls, boxes, boxes, interior[0])
        .expect("validation keeps boxes + 1 below the interior size")
}
