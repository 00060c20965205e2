//! Level files in the standard Sokoban text format: `#` wall, `@` player, `+` player on goal,
//! `$` box, `*` box on goal, `.` goal, space floor. Levels are separated by blank lines or `;`
//! comment lines. Cells the player cannot reach (the outside of the room, short lines) become
//! walls; a level whose floor reaches the edge of its text gets a wall ring around it, which
//! shifts its coordinates by one.
//!
//! Every problem is an [`EnvError::LevelFile`] naming the file and the line.

use std::collections::VecDeque;

use super::room::{CellSet, MAX_CELLS, Room};
use crate::env::EnvError;

/// Read and parse a level file.
pub fn load_levels(path: &str) -> Result<Vec<Room>, EnvError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnvError::Io {
        file: path.to_owned(),
        source,
    })?;
    parse_levels(&text, path)
}

/// Parse level-file text; `file` names it in errors.
pub fn parse_levels(text: &str, file: &str) -> Result<Vec<Room>, EnvError> {
    let mut levels = Vec::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with(';') {
            if !block.is_empty() {
                levels.push(parse_level(&block, file)?);
                block.clear();
            }
            continue;
        }
        if let Some((col, ch)) = line
            .chars()
            .enumerate()
            .find(|(_, ch)| !"#@+$*. ".contains(*ch))
        {
            return Err(error(
                file,
                line_no,
                format!(
                    "unexpected character {ch:?} in column {}; levels use # @ + $ * . and space",
                    col + 1
                ),
            ));
        }
        block.push((line_no, line));
    }
    if !block.is_empty() {
        levels.push(parse_level(&block, file)?);
    }
    if levels.is_empty() {
        return Err(error(file, 1, "the file holds no levels".into()));
    }
    Ok(levels)
}

fn error(file: &str, line: usize, problem: String) -> EnvError {
    EnvError::LevelFile {
        file: file.to_owned(),
        line,
        problem,
    }
}

/// Characters of one level's text box at most (rows x longest line).
const TEXT_CELLS_MAX: usize = 1 << 20;

/// One level's lines, each with its line number.
fn parse_level(lines: &[(usize, &str)], file: &str) -> Result<Room, EnvError> {
    let first_line = lines[0].0;
    let rows = lines.len();
    let cols = lines
        .iter()
        .map(|(_, l)| l.chars().count())
        .max()
        .unwrap_or(0);
    let place = |cell: usize| {
        let (line, _) = lines[cell / cols];
        format!("line {line}, column {}", cell % cols + 1)
    };
    // The text's bounding box, before cropping to the walls: a few long lines in a small file
    // must not allocate gigabytes before the size check below can refuse the level.
    if rows.saturating_mul(cols) > TEXT_CELLS_MAX {
        let problem = format!(
            "the level's text spans {rows} lines of up to {cols} characters; at most \
             {TEXT_CELLS_MAX} cells of text (and {MAX_CELLS} inside the walls) are supported"
        );
        return Err(error(file, first_line, problem));
    }
    // Outside the text counts as wall until the flood fill below decides what is inside.
    let mut wall = vec![true; rows * cols];
    let (mut boxes, mut targets) = (Vec::new(), Vec::new());
    let mut player: Option<usize> = None;
    for (r, &(line_no, text)) in lines.iter().enumerate() {
        for (c, ch) in text.chars().enumerate() {
            let cell = r * cols + c;
            wall[cell] = ch == '#';
            if matches!(ch, '$' | '*') {
                boxes.push(cell);
            }
            if matches!(ch, '.' | '*' | '+') {
                targets.push(cell);
            }
            if matches!(ch, '@' | '+') {
                if let Some(first) = player {
                    let problem = format!(
                        "a second player in column {} (the first is at {}); a level has one",
                        c + 1,
                        place(first)
                    );
                    return Err(error(file, line_no, problem));
                }
                player = Some(cell);
            }
        }
    }
    let Some(player) = player else {
        return Err(error(
            file,
            first_line,
            "the level has no player (@ or +)".into(),
        ));
    };
    let reached = reachable(&wall, rows, cols, player);
    if let Some(&cell) = boxes.iter().chain(&targets).find(|&&c| !reached[c]) {
        let problem = format!(
            "a box or goal at {} is outside the player's area",
            place(cell)
        );
        return Err(error(file, lines[cell / cols].0, problem));
    }
    for (cell, w) in wall.iter_mut().enumerate() {
        *w |= !reached[cell];
    }
    if boxes.is_empty() {
        return Err(error(file, first_line, "the level has no boxes".into()));
    }
    if boxes.len() != targets.len() {
        let problem = format!(
            "{} boxes but {} goals; they must be equal",
            boxes.len(),
            targets.len()
        );
        return Err(error(file, first_line, problem));
    }
    let is_wall = |r: usize, c: usize, dr: isize, dc: isize| match (
        r.checked_add_signed(dr),
        c.checked_add_signed(dc),
    ) {
        (Some(r), Some(c)) if r < rows && c < cols => wall[r * cols + c],
        _ => true,
    };
    for &cell in boxes.iter().filter(|c| !targets.contains(c)) {
        let (r, c) = (cell / cols, cell % cols);
        if (is_wall(r, c, -1, 0) || is_wall(r, c, 1, 0))
            && (is_wall(r, c, 0, -1) || is_wall(r, c, 0, 1))
        {
            let problem = format!(
                "the box at {} can never be moved (walls on two adjacent sides) and is not on a goal",
                place(cell)
            );
            return Err(error(file, lines[r].0, problem));
        }
    }
    // Give the room a wall ring when its floor touches the edge of the text.
    let open_edge = (0..rows * cols).any(|cell| {
        let (r, c) = (cell / cols, cell % cols);
        !wall[cell] && (r == 0 || c == 0 || r + 1 == rows || c + 1 == cols)
    });
    let pad = open_edge as usize;
    let (out_rows, out_cols) = (rows + 2 * pad, cols + 2 * pad);
    if out_rows * out_cols > MAX_CELLS {
        let problem = format!(
            "the level is {out_rows} x {out_cols} cells; at most {MAX_CELLS} cells are supported"
        );
        return Err(error(file, first_line, problem));
    }
    let map = |cell: usize| (cell / cols + pad) * out_cols + cell % cols + pad;
    let walls: CellSet = (0..out_rows * out_cols)
        .filter(|&out| {
            let (r, c) = (out / out_cols, out % out_cols);
            let inside = (pad..rows + pad).contains(&r) && (pad..cols + pad).contains(&c);
            !inside || wall[(r - pad) * cols + c - pad]
        })
        .collect();
    Room::new(
        out_rows,
        out_cols,
        walls,
        targets.iter().map(|&c| map(c)).collect(),
        boxes.iter().map(|&c| map(c)).collect(),
        map(player),
    )
    .map_err(|e| error(file, first_line, e.to_string()))
}

/// Cells reachable from `start` through non-wall cells (boxes do not block: they may move).
fn reachable(wall: &[bool], rows: usize, cols: usize, start: usize) -> Vec<bool> {
    let mut seen = vec![false; rows * cols];
    let mut queue = VecDeque::from([start]);
    seen[start] = true;
    while let Some(cell) = queue.pop_front() {
        let (r, c) = (cell / cols, cell % cols);
        let neighbours = [
            (r > 0).then(|| cell - cols),
            (r + 1 < rows).then(|| cell + cols),
            (c > 0).then(|| cell - 1),
            (c + 1 < cols).then(|| cell + 1),
        ];
        for next in neighbours.into_iter().flatten() {
            if !wall[next] && !seen[next] {
                seen[next] = true;
                queue.push_back(next);
            }
        }
    }
    seen
}
