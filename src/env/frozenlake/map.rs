//! The lake itself: which cells are holes, where start and goal are, and the walking distance of
//! every cell to the goal. A map never changes during an episode, so forks share it.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::env::EnvError;

/// Distance of a cell from which the goal cannot be reached (or that is a hole).
pub const UNREACHABLE: u32 = u32::MAX;

/// Generation attempts before the fallback path is carved. With the default 4x4 map and
/// p_frozen = 0.9 a single attempt fails only a few percent of the time, so the fallback exists
/// only to bound the time spent on extreme settings (tiny p_frozen on a large map).
const MAX_TRIES: usize = 1000;

/// One lake. Cells are indexed row-major (`row * cols + col`).
#[derive(Debug, Clone, PartialEq)]
pub struct LakeMap {
    /// Height in cells.
    pub rows: usize,
    /// Width in cells.
    pub cols: usize,
    /// `holes[i]`: stepping on cell `i` ends the episode with reward 0.
    pub holes: Vec<bool>,
    /// Cell where the player starts.
    pub start: usize,
    /// Cell that pays 1 and ends the episode.
    pub goal: usize,
    /// Fewest moves from each cell to the goal over safe cells, ignoring slips; the search
    /// scorer uses it as a progress measure and generation uses it as the reachability test.
    pub dist: Vec<u32>,
    /// BFS work queue kept between resets so that generating a map does not allocate.
    queue: Vec<u32>,
}

impl LakeMap {
    pub fn empty() -> LakeMap {
        LakeMap {
            rows: 0,
            cols: 0,
            holes: Vec::new(),
            start: 0,
            goal: 0,
            dist: Vec::new(),
            queue: Vec::new(),
        }
    }

    /// Draw a map: each cell frozen with probability `p_frozen`, start and goal distinct
    /// uniform cells (forced frozen), retried until the goal is reachable from the start.
    /// Needs `rows * cols >= 2` and `p_frozen` in [0, 1] (the config validation ensures both).
    pub fn generate(&mut self, rng: &mut ChaCha8Rng, rows: usize, cols: usize, p_frozen: f64) {
        let n = rows * cols;
        self.rows = rows;
        self.cols = cols;
        self.holes.clear();
        self.holes.resize(n, false);
        for _ in 0..MAX_TRIES {
            for hole in self.holes.iter_mut() {
                *hole = !rng.random_bool(p_frozen);
            }
            self.start = rng.random_range(0..n);
            // A uniform cell other than the start: draw from n - 1 cells and skip the start.
            self.goal = rng.random_range(0..n - 1);
            if self.goal >= self.start {
                self.goal += 1;
            }
            self.holes[self.start] = false;
            self.holes[self.goal] = false;
            self.compute_distances();
            if self.dist[self.start] != UNREACHABLE {
                return;
            }
        }
        self.carve_path();
        self.compute_distances();
    }

    /// Clear the holes on an L-shaped path (along the row, then the column) from start to goal.
    fn carve_path(&mut self) {
        let (sr, sc) = (self.start / self.cols, self.start % self.cols);
        let (gr, gc) = (self.goal / self.cols, self.goal % self.cols);
        for c in sc.min(gc)..=sc.max(gc) {
            self.holes[sr * self.cols + c] = false;
        }
        for r in sr.min(gr)..=sr.max(gr) {
            self.holes[r * self.cols + gc] = false;
        }
    }

    /// Breadth-first search from the goal over non-hole cells (4-neighbourhood).
    pub fn compute_distances(&mut self) {
        let n = self.rows * self.cols;
        self.dist.clear();
        self.dist.resize(n, UNREACHABLE);
        self.queue.clear();
        self.dist[self.goal] = 0;
        self.queue.push(self.goal as u32);
        let mut head = 0;
        while head < self.queue.len() {
            let cell = self.queue[head] as usize;
            head += 1;
            let (r, c) = (cell / self.cols, cell % self.cols);
            let next = self.dist[cell] + 1;
            let mut visit = |i: usize| {
                if !self.holes[i] && self.dist[i] == UNREACHABLE {
                    self.dist[i] = next;
                    self.queue.push(i as u32);
                }
            };
            if c > 0 {
                visit(cell - 1);
            }
            if c + 1 < self.cols {
                visit(cell + 1);
            }
            if r > 0 {
                visit(cell - self.cols);
            }
            if r + 1 < self.rows {
                visit(cell + self.cols);
            }
        }
    }

    /// Parse a map in gymnasium's letters: `S` start, `F` frozen, `H` hole, `G` goal; rows are
    /// separated by newlines or `/`, surrounding whitespace is ignored. The goal must be
    /// reachable from the start, as in generated maps.
    pub fn parse(text: &str) -> Result<LakeMap, EnvError> {
        let bad = |msg: String| EnvError::Invalid(format!("frozenlake map: {msg}"));
        let lines: Vec<&str> = text
            .split(['\n', '/'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let rows = lines.len();
        let cols = lines.first().map_or(0, |l| l.chars().count());
        if rows * cols < 2 {
            return Err(bad(format!("needs at least 2 cells, got {rows}x{cols}")));
        }
        let mut map = LakeMap::empty();
        map.rows = rows;
        map.cols = cols;
        let (mut start, mut goal) = (Vec::new(), Vec::new());
        for (r, line) in lines.iter().enumerate() {
            if line.chars().count() != cols {
                return Err(bad(format!(
                    "row {r} has {} cells, row 0 has {cols}",
                    line.chars().count()
                )));
            }
            for (c, ch) in line.chars().enumerate() {
                let i = r * cols + c;
                match ch {
                    'S' => start.push(i),
                    'G' => goal.push(i),
                    'F' => {}
                    'H' => {}
                    other => {
                        return Err(bad(format!(
                            "row {r} col {c}: {other:?} is not one of S, F, H, G"
                        )));
                    }
                }
                map.holes.push(ch == 'H');
            }
        }
        match (start.as_slice(), goal.as_slice()) {
            ([s], [g]) => (map.start, map.goal) = (*s, *g),
            _ => {
                return Err(bad(format!(
                    "needs exactly one S and one G, found {} S and {} G",
                    start.len(),
                    goal.len()
                )));
            }
        }
        map.compute_distances();
        if map.dist[map.start] == UNREACHABLE {
            return Err(bad("the goal cannot be reached from the start".into()));
        }
        Ok(map)
    }
}
