//! Breadth-first search over (player, boxes), one node per move, so the first solution found has
//! the fewest moves. Used by tests to prove generated rooms solvable, by the optional length
//! filter, and to report each room's optimal length (success by length bucket).
//!
//! Pruning keeps optimality: a box is never pushed onto a non-target corner, from which no push
//! can ever move it again.

use std::cell::RefCell;

use super::room::{Room, SokobanAction};
use super::visited::{Visited, key_space, pack};

/// Bounds on one search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolveLimits {
    /// Give up past this many moves (`usize::MAX`: no bound).
    pub max_moves: usize,
    /// Give up after this many distinct states.
    pub max_states: usize,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolveResult {
    /// An optimal (fewest moves) solution.
    Solved(Vec<SokobanAction>),
    /// No solution exists (every reachable state was explored).
    Unsolvable,
    /// A limit was hit first: no solution within `max_moves`, or `max_states` states used up.
    LimitReached,
    /// Too many boxes for this room size to pack a state into 128 bits.
    TooLarge,
}

/// Optimal solution within `max_states` states, or `None` when unsolvable or out of budget.
pub fn solve(room: &Room, max_states: usize) -> Option<Vec<SokobanAction>> {
    match search(
        room,
        SolveLimits {
            max_moves: usize::MAX,
            max_states,
        },
    ) {
        SolveResult::Solved(path) => Some(path),
        _ => None,
    }
}

/// Per-thread arena reused across searches: visited keys, and the BFS nodes in discovery order
/// (positions with stride `boxes + 1`, then parent index and action per node).
#[derive(Default)]
struct Arena {
    visited: Visited,
    positions: Vec<u16>,
    parents: Vec<u32>,
    actions: Vec<u8>,
}

thread_local! {
    static ARENA: RefCell<Arena> = RefCell::default();
}

pub fn search(room: &Room, limits: SolveLimits) -> SolveResult {
    ARENA.with_borrow_mut(|arena| bfs(room, limits, arena))
}

fn bfs(room: &Room, limits: SolveLimits, arena: &mut Arena) -> SolveResult {
    if room.solved() {
        return SolveResult::Solved(Vec::new());
    }
    let layout = room.layout();
    let cells = layout.rows() * layout.cols();
    let n = room.boxes().len();
    let Some(space) = key_space(cells, n + 1, 0) else {
        return SolveResult::TooLarge;
    };
    let stride = n + 1;
    let offsets = SokobanAction::ALL.map(|a| layout.offset(a));
    let (walls, targets, dead) = (layout.walls(), layout.targets(), layout.dead_corners());
    arena.visited.begin(space);
    arena.positions.clear();
    arena.parents.clear();
    arena.actions.clear();
    arena.positions.push(room.player() as u16);
    arena
        .positions
        .extend(room.boxes().iter().map(|b| b as u16));
    arena.parents.push(u32::MAX);
    arena.actions.push(0);
    arena.visited.insert(pack(
        cells,
        room.player(),
        &arena.positions[1..stride],
        0,
        0,
    ));
    let mut head = 0;
    let mut layer_end = 1;
    let mut depth = 0;
    let mut child = vec![0u16; stride];
    while head < arena.parents.len() {
        if head == layer_end {
            depth += 1;
            layer_end = arena.parents.len();
        }
        if depth >= limits.max_moves {
            return SolveResult::LimitReached;
        }
        let node = head;
        head += 1;
        for (a, &offset) in offsets.iter().enumerate() {
            child.copy_from_slice(&arena.positions[node * stride..(node + 1) * stride]);
            let next = (child[0] as usize).wrapping_add_signed(offset);
            if walls.contains(next) {
                continue;
            }
            child[0] = next as u16;
            let boxes = &mut child[1..];
            if let Ok(i) = boxes.binary_search(&(next as u16)) {
                let behind = next.wrapping_add_signed(offset);
                if walls.contains(behind)
                    || dead.contains(behind)
                    || boxes.binary_search(&(behind as u16)).is_ok()
                {
                    continue;
                }
                boxes[i] = behind as u16;
                boxes.sort_unstable();
            }
            if !arena.visited.insert(pack(cells, next, boxes, 0, 0)) {
                continue;
            }
            let solved = boxes.iter().all(|&b| targets.contains(b as usize));
            arena.positions.extend_from_slice(&child);
            arena.parents.push(node as u32);
            arena.actions.push(a as u8);
            if solved {
                return SolveResult::Solved(path_to(arena, arena.parents.len() - 1));
            }
            if arena.visited.len() >= limits.max_states {
                return SolveResult::LimitReached;
            }
        }
    }
    SolveResult::Unsolvable
}

fn path_to(arena: &Arena, mut node: usize) -> Vec<SokobanAction> {
    let mut path = Vec::new();
    while arena.parents[node] != u32::MAX {
        path.push(SokobanAction::ALL[arena.actions[node] as usize]);
        node = arena.parents[node] as usize;
    }
    path.reverse();
    path
}
