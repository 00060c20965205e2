//! Reverse play, gym-sokoban's `reverse_playing`: from the solved room (every box on its
//! target), a depth-first search in which each of the four actions moves the player and pulls
//! the box that stands behind it, if any. Every state it reaches is solvable by construction
//! (push the pulls back). Each new state is scored box_swaps x (sum over boxes of the Manhattan
//! distance to its own target), where box_swaps counts changes of the box being pulled, and the
//! first state with the highest score wins.
//!
//! Faithful to the original in the details that shape which room comes out:
//! - children are expanded in the order up, down, left, right, depth first;
//! - a state is identified by the player, the box cells and which boxes were never pulled (the
//!   original hashes its grid, where a never-pulled box is drawn differently), and a state seen
//!   once is never expanded again, whatever the depth or box_swaps it is reached with;
//! - the depth budget `ttl` starts at the depth limit and is decremented on entry, a state is
//!   expanded while it stays positive (so the deepest states are limit - 2 moves away);
//! - the search stops once `max_states` states are known;
//! - a state scores 0 while any target is covered, by a box or by the player (the original
//!   counts uncovered targets, and a player on a target covers it too).

use std::cell::RefCell;

use super::visited::{Visited, key_space, pack};

/// Most boxes a generated room may have (bounds the inline box array and the packed key).
pub const MAX_GEN_BOXES: usize = 10;
/// Most cells a generated room may have (cells are stored as `u8`).
pub const MAX_GEN_CELLS: usize = 256;

/// Limits of the search (config keys `search_depth`, `max_search_states`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReverseLimits {
    pub depth: usize,
    pub max_states: usize,
}

/// The fixed part of the room the search runs in.
pub struct ReverseRoom<'a> {
    pub cols: usize,
    /// `floor[cell]`: the cell is not a wall. The outer ring must be wall.
    pub floor: &'a [bool],
    /// Target of box `i` (where box `i` starts).
    pub targets: &'a [u8],
}

/// One search node. `boxes[i]` is the box that started on `targets[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReverseState {
    pub player: u8,
    pub boxes: [u8; MAX_GEN_BOXES],
    /// Bit `i`: box `i` was never pulled.
    unpulled: u16,
    /// Box pulled last, `u8::MAX` before the first pull.
    last_pull: u8,
    box_swaps: u32,
    ttl: i64,
}

/// The best state found and its score (0 means "no usable room": every state had a target
/// covered, or nothing ever moved).
#[derive(Debug, Clone, Copy)]
pub struct ReverseResult {
    pub state: ReverseState,
    pub score: u64,
    /// Sum of the boxes' Manhattan distances from their targets in `state`.
    pub displacement: u64,
}

thread_local! {
    /// Reused across searches on this thread: the visited set and the DFS stack.
    static SCRATCH: RefCell<(Visited, Vec<ReverseState>)> = RefCell::default();
}

/// Run the search from `player` with every box on its target.
pub fn reverse_play(room: &ReverseRoom<'_>, player: usize, limits: ReverseLimits) -> ReverseResult {
    SCRATCH.with_borrow_mut(|(visited, stack)| search(room, player, limits, visited, stack))
}

fn search(
    room: &ReverseRoom<'_>,
    player: usize,
    limits: ReverseLimits,
    visited: &mut Visited,
    stack: &mut Vec<ReverseState>,
) -> ReverseResult {
    let n = room.targets.len();
    let cells = room.floor.len();
    debug_assert!(n <= MAX_GEN_BOXES && cells <= MAX_GEN_CELLS);
    let mut is_target = [false; MAX_GEN_CELLS];
    for &t in room.targets {
        is_target[t as usize] = true;
    }
    let mut boxes = [0u8; MAX_GEN_BOXES];
    boxes[..n].copy_from_slice(room.targets);
    let root = ReverseState {
        player: player as u8,
        boxes,
        unpulled: (1u16 << n) - 1,
        last_pull: u8::MAX,
        box_swaps: 0,
        ttl: limits.depth as i64,
    };
    let space = key_space(cells, n + 1, n as u32).expect("generated rooms fit a u128 key");
    visited.begin(space);
    stack.clear();
    stack.push(root);
    let mut best: Option<ReverseResult> = None;
    let cols = cells_offsets(room.cols);
    while let Some(mut node) = stack.pop() {
        node.ttl -= 1;
        if node.ttl <= 0 {
            continue;
        }
        if visited.len() >= limits.max_states {
            break;
        }
        let mut sorted = node.boxes;
        sorted[..n].sort_unstable();
        let key = pack(
            cells,
            node.player as usize,
            &sorted[..n],
            n as u32,
            node.unpulled as u32,
        );
        if !visited.insert(key) {
            continue;
        }
        let (score, displacement) = score(room, &is_target, &node);
        if best.is_none_or(|b| score > b.score) {
            best = Some(ReverseResult {
                state: node,
                score,
                displacement,
            });
        }
        // Pushed in reverse so that "up" is expanded first, as the recursive original does.
        for &offset in cols.iter().rev() {
            if let Some(child) = pull(room, &node, n, offset) {
                stack.push(child);
            }
        }
    }
    best.unwrap_or(ReverseResult {
        state: root,
        score: 0,
        displacement: 0,
    })
}

/// Index offsets of up, down, left, right.
fn cells_offsets(cols: usize) -> [isize; 4] {
    let c = cols as isize;
    [-c, c, -1, 1]
}

fn score(room: &ReverseRoom<'_>, is_target: &[bool], node: &ReverseState) -> (u64, u64) {
    let n = room.targets.len();
    let cols = room.cols;
    let mut displacement = 0u64;
    let mut covered = is_target[node.player as usize];
    for (&b, &t) in node.boxes[..n].iter().zip(room.targets) {
        let (b, t) = (b as usize, t as usize);
        covered |= is_target[b];
        displacement += ((b / cols).abs_diff(t / cols) + (b % cols).abs_diff(t % cols)) as u64;
    }
    let score = if covered {
        0
    } else {
        node.box_swaps as u64 * displacement
    };
    (score, displacement)
}

/// The player steps by `offset` onto a free cell, pulling the box behind it along.
#[inline]
fn pull(
    room: &ReverseRoom<'_>,
    node: &ReverseState,
    n: usize,
    offset: isize,
) -> Option<ReverseState> {
    let player = node.player as usize;
    let next = player.wrapping_add_signed(offset);
    let boxes = &node.boxes[..n];
    if !room.floor[next] || boxes.contains(&(next as u8)) {
        return None;
    }
    let mut child = *node;
    child.player = next as u8;
    let behind = player.wrapping_add_signed(-offset) as u8;
    if let Some(i) = boxes.iter().position(|&b| b == behind) {
        child.boxes[i] = player as u8;
        child.unpulled &= !(1 << i);
        child.last_pull = i as u8;
    }
    if child.last_pull != node.last_pull {
        child.box_swaps += 1;
    }
    Some(child)
}
