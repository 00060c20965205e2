//! A Sokoban room: the fixed layout (walls, targets), shared by every clone through an `Arc`, and
//! the moving parts (player, boxes) held inline so that a fork is a small memcpy.
//!
//! Invariant: no floor cell lies on the border of the grid (generated rooms have a wall ring;
//! level files get one when their floor reaches the edge), so a neighbour of the player or of a
//! box is always inside the grid and movement needs no bounds checks.

use std::sync::Arc;

use super::render;

/// Largest room, in cells: a level file bigger than this is rejected. Bounds the inline box set.
pub const MAX_CELLS: usize = 1024;
const WORDS: usize = MAX_CELLS / 64;

/// A set of cells (index `row * cols + col`) as a fixed bitset: copying it needs no allocation,
/// and iteration yields cells in row-major order, the order the observation lists them in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CellSet([u64; WORDS]);

impl CellSet {
    #[inline]
    pub fn contains(&self, cell: usize) -> bool {
        self.0[cell >> 6] >> (cell & 63) & 1 == 1
    }
    #[inline]
    pub fn insert(&mut self, cell: usize) {
        self.0[cell >> 6] |= 1 << (cell & 63);
    }
    #[inline]
    pub fn remove(&mut self, cell: usize) {
        self.0[cell >> 6] &= !(1 << (cell & 63));
    }
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    pub fn intersection(&self, other: &CellSet) -> CellSet {
        CellSet(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }
    pub fn difference(&self, other: &CellSet) -> CellSet {
        CellSet(std::array::from_fn(|i| self.0[i] & !other.0[i]))
    }
    /// Cells in increasing index order.
    pub fn iter(&self) -> CellIter<'_> {
        CellIter {
            set: self,
            word: 0,
            bits: self.0[0],
        }
    }
}

/// Iterator over a [`CellSet`], lowest cell first.
pub struct CellIter<'a> {
    set: &'a CellSet,
    word: usize,
    /// Bits of `set.0[word]` not yet yielded.
    bits: u64,
}

impl Iterator for CellIter<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.word += 1;
            if self.word == WORDS {
                return None;
            }
            self.bits = self.set.0[self.word];
        }
        let bit = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(self.word * 64 + bit)
    }
}

impl std::fmt::Debug for CellSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<usize> for CellSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = CellSet::default();
        for cell in iter {
            set.insert(cell);
        }
        set
    }
}

/// The four moves, in gym-sokoban's order (up, down, left, right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SokobanAction {
    Up,
    Down,
    Left,
    Right,
}

impl SokobanAction {
    pub const ALL: [SokobanAction; 4] = [Self::Up, Self::Down, Self::Left, Self::Right];

    /// (row, col) change of the move.
    pub fn delta(self) -> (isize, isize) {
        match self {
            Self::Up => (-1, 0),
            Self::Down => (1, 0),
            Self::Left => (0, -1),
            Self::Right => (0, 1),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Up => "Up",
            Self::Down => "Down",
            Self::Left => "Left",
            Self::Right => "Right",
        }
    }

    /// Case-insensitive name lookup.
    pub fn parse(text: &str) -> Option<SokobanAction> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(text))
    }
}

/// What cannot move: the grid's size, its walls and its targets, plus the observation's fixed
/// first lines, computed once per room rather than once per render.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    rows: usize,
    cols: usize,
    walls: CellSet,
    targets: CellSet,
    /// Non-target cells with walls on two adjacent sides: a box pushed there is stuck for good,
    /// so the solver never pushes one there.
    dead_corners: CellSet,
    /// "Coordinates: ... Targets: ...\n", the part of the observation that never changes.
    header: String,
    /// The grid map without player and boxes (ASCII, rows joined by newlines): a render copies
    /// it and patches in the few moving cells.
    grid: String,
}

impl Layout {
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn walls(&self) -> &CellSet {
        &self.walls
    }
    pub fn targets(&self) -> &CellSet {
        &self.targets
    }
    pub fn dead_corners(&self) -> &CellSet {
        &self.dead_corners
    }
    pub fn header(&self) -> &str {
        &self.header
    }
    pub fn grid(&self) -> &str {
        &self.grid
    }
    /// Index offset of one move.
    #[inline]
    pub fn offset(&self, action: SokobanAction) -> isize {
        let (dr, dc) = action.delta();
        dr * self.cols as isize + dc
    }
    /// A cell with walls on both sides along each axis cannot be pushed along either.
    pub fn is_corner(&self, cell: usize) -> bool {
        let wall = |a: SokobanAction| {
            self.walls
                .contains(cell.wrapping_add_signed(self.offset(a)))
        };
        (wall(SokobanAction::Up) || wall(SokobanAction::Down))
            && (wall(SokobanAction::Left) || wall(SokobanAction::Right))
    }
}

/// Why a set of cells does not make a room. Level files and the generator both build rooms
/// through [`Room::new`]; the level parser turns these into file/line errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("room of {rows} x {cols} cells is larger than the {MAX_CELLS} cells supported")]
    TooLarge { rows: usize, cols: usize },
    #[error("cell ({row}, {col}) on the border of the grid is not a wall")]
    OpenBorder { row: usize, col: usize },
    #[error("the player stands on a wall or a box at ({row}, {col})")]
    PlayerBlocked { row: usize, col: usize },
    #[error("{boxes} boxes but {targets} targets")]
    CountMismatch { boxes: usize, targets: usize },
    #[error("no boxes")]
    NoBoxes,
    #[error("a box or target lies in a wall at ({row}, {col})")]
    InWall { row: usize, col: usize },
}

/// A room in play: layout plus moving parts. Cloning shares the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    layout: Arc<Layout>,
    player: usize,
    boxes: CellSet,
}

/// What one move did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveEffect {
    /// The player moved (a push always moves the player too).
    pub moved: bool,
    /// Change in the number of boxes on targets: -1, 0 or +1.
    pub on_target_change: i32,
}

impl Room {
    /// Check the parts and build the room (cells are `row * cols + col`).
    pub fn new(
        rows: usize,
        cols: usize,
        walls: CellSet,
        targets: CellSet,
        boxes: CellSet,
        player: usize,
    ) -> Result<Room, RoomError> {
        if rows * cols > MAX_CELLS {
            return Err(RoomError::TooLarge { rows, cols });
        }
        let at = |cell: usize| (cell / cols, cell % cols);
        for cell in 0..rows * cols {
            let (row, col) = at(cell);
            let border = row == 0 || col == 0 || row + 1 == rows || col + 1 == cols;
            if border && !walls.contains(cell) {
                return Err(RoomError::OpenBorder { row, col });
            }
        }
        if let Some(cell) = boxes
            .iter()
            .chain(targets.iter())
            .find(|&c| walls.contains(c))
        {
            let (row, col) = at(cell);
            return Err(RoomError::InWall { row, col });
        }
        if player >= rows * cols || walls.contains(player) || boxes.contains(player) {
            let (row, col) = at(player);
            return Err(RoomError::PlayerBlocked { row, col });
        }
        if boxes.len() != targets.len() {
            return Err(RoomError::CountMismatch {
                boxes: boxes.len(),
                targets: targets.len(),
            });
        }
        if boxes.is_empty() {
            return Err(RoomError::NoBoxes);
        }
        let mut layout = Layout {
            rows,
            cols,
            walls,
            targets,
            dead_corners: CellSet::default(),
            header: String::new(),
            grid: String::new(),
        };
        layout.dead_corners = (0..rows * cols)
            .filter(|&c| !walls.contains(c) && !targets.contains(c) && layout.is_corner(c))
            .collect();
        layout.header = render::header(&layout);
        layout.grid = render::static_grid(&layout);
        Ok(Room {
            layout: Arc::new(layout),
            player,
            boxes,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn player(&self) -> usize {
        self.player
    }
    pub fn boxes(&self) -> &CellSet {
        &self.boxes
    }
    /// (row, col) of a cell index.
    pub fn coords(&self, cell: usize) -> (usize, usize) {
        (cell / self.layout.cols, cell % self.layout.cols)
    }
    pub fn boxes_on_targets(&self) -> usize {
        self.boxes.intersection(&self.layout.targets).len()
    }
    pub fn solved(&self) -> bool {
        self.boxes.difference(&self.layout.targets).is_empty()
    }

    /// The same layout with the player and boxes placed elsewhere (used by the solver to replay
    /// and by tests). The parts are not re-checked beyond debug assertions.
    pub fn with_parts(&self, player: usize, boxes: CellSet) -> Room {
        debug_assert!(!self.layout.walls.contains(player) && !boxes.contains(player));
        debug_assert_eq!(boxes.len(), self.boxes.len());
        Room {
            layout: Arc::clone(&self.layout),
            player,
            boxes,
        }
    }

    /// Sum over boxes of the Manhattan distance to the nearest target: a progress measure for
    /// search heuristics (0 when solved).
    pub fn box_target_distance(&self) -> usize {
        let dist = |a: usize, b: usize| {
            let ((ar, ac), (br, bc)) = (self.coords(a), self.coords(b));
            ar.abs_diff(br) + ac.abs_diff(bc)
        };
        self.boxes
            .iter()
            .map(|b| {
                self.layout
                    .targets
                    .iter()
                    .map(|t| dist(b, t))
                    .min()
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Play one move under the gym-sokoban rules: step onto floor or a target; push a box if the
    /// cell behind it is free; anything else is a no-op.
    #[inline]
    pub fn apply(&mut self, action: SokobanAction) -> MoveEffect {
        let layout = &*self.layout;
        let offset = layout.offset(action);
        let next = self.player.wrapping_add_signed(offset);
        let mut effect = MoveEffect {
            moved: false,
            on_target_change: 0,
        };
        if layout.walls.contains(next) {
            return effect;
        }
        if self.boxes.contains(next) {
            let behind = next.wrapping_add_signed(offset);
            if layout.walls.contains(behind) || self.boxes.contains(behind) {
                return effect;
            }
            self.boxes.remove(next);
            self.boxes.insert(behind);
            effect.on_target_change =
                layout.targets.contains(behind) as i32 - layout.targets.contains(next) as i32;
        }
        self.player = next;
        effect.moved = true;
        effect
    }
}
