//! The text observation ("grid with coordinates" form of the spec).

use std::fmt::Write;

use super::map::LakeMap;

/// Render the lake with the player on `player` (a cell index).
///
/// Every hole is listed under "Holes", including one the player fell into: the line describes
/// the map, while the player's line says where the player is. The "Holes" line is left out
/// when the map has none, as the spec does for empty coordinate lines.
pub fn render(map: &LakeMap, player: usize) -> String {
    let cols = map.cols;
    let at = |i: usize| (i / cols, i % cols);
    let mut s = String::with_capacity(160 + map.holes.len() * 8);
    // `write!` into a String cannot fail.
    let _ = writeln!(s, "Coordinates: ");
    let _ = writeln!(
        s,
        "Board size: {} rows x {} cols (zero-indexed).",
        map.rows, cols
    );
    let (sr, sc) = at(map.start);
    let _ = writeln!(s, "Start: ({sr}, {sc})");
    let (gr, gc) = at(map.goal);
    let _ = writeln!(s, "Goal: ({gr}, {gc})");
    let label = if player == map.goal {
        "Player on goal"
    } else if map.holes[player] {
        "Player in hole"
    } else {
        "Player"
    };
    let (pr, pc) = at(player);
    let _ = writeln!(s, "{label}: ({pr}, {pc})");
    let mut first = true;
    for (i, _) in map.holes.iter().enumerate().filter(|(_, h)| **h) {
        s.push_str(if first { "Holes: " } else { ", " });
        first = false;
        let (r, c) = at(i);
        let _ = write!(s, "({r}, {c})");
    }
    if !first {
        s.push('\n');
    }
    s.push_str("Grid Map: ");
    for (i, &hole) in map.holes.iter().enumerate() {
        if i % cols == 0 {
            s.push('\n');
        }
        s.push(match (i == player, i == map.goal, hole) {
            (true, true, _) => '√',
            (true, false, true) => 'X',
            (true, false, false) => 'P',
            (false, true, _) => 'G',
            (false, false, true) => 'O',
            (false, false, false) => '_',
        });
    }
    s
}
