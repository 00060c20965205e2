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

/// The whole observation of `room`.
pub fn observation(room: &Room) -> String {
    let layout = room.layout();
    let (rows, cols) = (layout.rows(), layout.cols());
    // Grid bytes plus newlines plus room for a few multi-byte "√" and the coordinate lines.
    let mut out = String::with_capacity(layout.header().len() + rows * (cols + 1) + 128);
    out.push_str(layout.header());
    let targets = layout.targets();
    let boxes = room.boxes();
    push_line(&mut out, "Boxes", cols, boxes.difference(targets).iter());
    push_line(
        &mut out,
        "Boxes on target",
        cols,
        boxes.intersection(targets).iter(),
    );
    let player = room.player();
    let label = if targets.contains(player) {
        "Player on target"
    } else {
        "Player"
    };
    push_line(&mut out, label, cols, std::iter::once(player));
    out.push_str("Grid Map: \n");
    let walls = layout.walls();
    for row in 0..rows {
        if row > 0 {
            out.push('\n');
        }
        for cell in row * cols..(row + 1) * cols {
            let symbol = if walls.contains(cell) {
                WALL
            } else {
                match (targets.contains(cell), boxes.contains(cell), cell == player) {
                    (false, false, false) => FLOOR,
                    (true, false, false) => TARGET,
                    (false, true, _) => BOX,
                    (true, true, _) => BOX_ON_TARGET,
                    (false, false, true) => PLAYER,
                    (true, false, true) => PLAYER_ON_TARGET,
                }
            };
            out.push_str(symbol);
        }
    }
    out
}
