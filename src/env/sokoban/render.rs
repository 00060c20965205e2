//! The text observation, the "grid with coordinates" form of the spec:
//!
//! ```text
//! Coordinates:
//! Board size: 6 rows x 6 cols (zero-indexed).
//! Targets: (1, 3)
//! Boxes: (2, 3)
//! Player: (3, 3)
//! Grid Map:
//! ######
//! ...
//! ```
//!
//! It is rendered after every step of every rollout and of every search fork, so it is written
//! straight into one pre-sized `String` (no `format!`, no intermediate strings).

use super::room::{Layout, Room};

const WALL: &str = "#";
const FLOOR: &str = "_";
const TARGET: &str = "O";
const BOX: &str = "X";
const BOX_ON_TARGET: &str = "√";
const PLAYER: &str = "P";
const PLAYER_ON_TARGET: &str = "S";

/// Append a small non-negative integer. Hand-written because `write!` through `fmt` costs more
/// than the rest of a coordinate line; coordinates never exceed a few digits.
fn push_number(out: &mut String, n: usize) {
    if n < 10 {
        out.push((b'0' + n as u8) as char);
    } else {
        push_number(out, n / 10);
        out.push((b'0' + (n % 10) as u8) as char);
    }
}

/// Append `Label: (r, c), (r, c)\n`, or nothing when `cells` is empty.
fn push_line(out: &mut String, label: &str, cols: usize, cells: impl Iterator<Item = usize>) {
    let mut first = true;
    for cell in cells {
        if first {
            out.push_str(label);
            out.push_str(": ");
            first = false;
        } else {
            out.push_str(", ");
        }
        out.push('(');
        push_number(out, cell / cols);
        out.push_str(", ");
        push_number(out, cell % cols);
        out.push(')');
    }
    if !first {
        out.push('\n');
    }
}

/// The lines that never change for a layout: through the "Targets" line (all targets, covered
/// or not, as the original lists `room_fixed == target`).
pub fn header(layout: &Layout) -> String {
    let mut out = String::with_capacity(96);
    out.push_str("Coordinates: \nBoard size: ");
    push_number(&mut out, layout.rows());
    out.push_str(" rows x ");
    push_number(&mut out, layout.cols());
    out.push_str(" cols (zero-indexed).\n");
    push_line(&mut out, "Targets", layout.cols(), layout.targets().iter());
    out
}

/// The grid map of the fixed cells only: walls, floor, targets.
pub fn static_grid(layout: &Layout) -> String {
    let (rows, cols) = (layout.rows(), layout.cols());
    let mut out = String::with_capacity(rows * (cols + 1));
    for cell in 0..rows * cols {
        if cell > 0 && cell % cols == 0 {
            out.push('\n');
        }
        out.push_str(if layout.walls().contains(cell) {
            WALL
        } else if layout.targets().contains(cell) {
            TARGET
        } else {
            FLOOR
        });
    }
    out
}

/// The whole observation of `room`.
pub fn observation(room: &Room) -> String {
    let layout = room.layout();
    let cols = layout.cols();
    let (header, grid) = (layout.header(), layout.grid());
    let targets = layout.targets();
    let boxes = room.boxes();
    let player = room.player();
    // Coordinate lines take at most ~12 bytes per box plus labels; "√" adds 2 bytes per box.
    let capacity = header.len() + grid.len() + 80 + 16 * boxes.len();
    let mut out = String::with_capacity(capacity);
    out.push_str(header);
    push_line(
        &mut out,
        "Boxes",
        cols,
        boxes.iter().filter(|&b| !targets.contains(b)),
    );
    push_line(
        &mut out,
        "Boxes on target",
        cols,
        boxes.iter().filter(|&b| targets.contains(b)),
    );
    let player_on_target = targets.contains(player);
    let label = if player_on_target {
        "Player on target"
    } else {
        "Player"
    };
    push_line(&mut out, label, cols, std::iter::once(player));
    out.push_str("Grid Map: \n");
    // Copy the static grid, replacing the moving cells (in increasing order) as they come.
    let mut copied = 0;
    let mut patch = |out: &mut String, cell: usize, symbol: &str| {
        let at = cell / cols * (cols + 1) + cell % cols;
        out.push_str(&grid[copied..at]);
        out.push_str(symbol);
        copied = at + 1;
    };
    let player_symbol = if player_on_target {
        PLAYER_ON_TARGET
    } else {
        PLAYER
    };
    let mut player_pending = true;
    for b in boxes.iter() {
        if player_pending && player < b {
            patch(&mut out, player, player_symbol);
            player_pending = false;
        }
        let symbol = if targets.contains(b) {
            BOX_ON_TARGET
        } else {
            BOX
        };
        patch(&mut out, b, symbol);
    }
    if player_pending {
        patch(&mut out, player, player_symbol);
    }
    out.push_str(&grid[copied..]);
    out
}
