//! Compact search states and a reusable visited set, shared by the reverse-play generator and the
//! solver.
//!
//! A state (player cell, box cells in canonical order, a few flag bits) packs into one `u128` by
//! mixed radix: `((b_k * cells + ... + b_1) * cells + player) << flags | flag_bits`. When the
//! number of possible keys is small (a 6x6 room with one box has 36 * 36 * 2 of them) the key is
//! used directly as an index into a stamp array, so a lookup is one load and "clearing" the set
//! for the next search is one epoch increment; larger state spaces fall back to a hash set.
//! Each thread keeps its sets across searches so that `reset` allocates nothing in steady state.

use std::collections::HashSet;

/// Largest state space that gets a dense stamp array (4 bytes per slot, so 4 MiB at most).
const DENSE_MAX_SLOTS: u128 = 1 << 20;

/// Number of distinct keys for `positions` cells of a `cells`-cell room plus `flag_bits` flags,
/// or `None` when the keys would not fit in a `u128`.
pub fn key_space(cells: usize, positions: usize, flag_bits: u32) -> Option<u128> {
    let mut space: u128 = 1;
    for _ in 0..positions {
        space = space.checked_mul(cells as u128)?;
    }
    space.checked_mul(1u128.checked_shl(flag_bits)?)
}

/// Pack `player` and the (already sorted) `boxes` and `flags` into a key; see the module doc.
#[inline]
pub fn pack(
    cells: usize,
    player: usize,
    boxes: &[impl Into<usize> + Copy],
    flag_bits: u32,
    flags: u32,
) -> u128 {
    let mut key: u128 = 0;
    for &b in boxes.iter().rev() {
        key = key * cells as u128 + b.into() as u128;
    }
    key = key * cells as u128 + player as u128;
    (key << flag_bits) | flags as u128
}

/// A set of `u128` keys, dense or hashed depending on the key space; see the module doc.
#[derive(Default)]
pub struct Visited {
    /// `stamps[key] == epoch` means "visited in the current search".
    stamps: Vec<u32>,
    epoch: u32,
    /// The current search uses `stamps`, else `hashed`.
    dense: bool,
    hashed: HashSet<u128, foldhash::fast::FixedState>,
    /// Keys inserted in the current search.
    len: usize,
}

impl Visited {
    /// Forget every key and prepare for keys below `space`.
    pub fn begin(&mut self, space: u128) {
        self.len = 0;
        self.dense = space <= DENSE_MAX_SLOTS;
        if self.dense {
            let slots = space as usize;
            if self.stamps.len() < slots {
                self.stamps.resize(slots, 0);
            }
            self.epoch = self.epoch.wrapping_add(1);
            if self.epoch == 0 {
                self.stamps.fill(0);
                self.epoch = 1;
            }
        } else {
            self.hashed.clear();
        }
    }

    /// Insert `key`; `true` if it was new.
    #[inline]
    pub fn insert(&mut self, key: u128) -> bool {
        let new = if self.dense {
            let stamp = &mut self.stamps[key as usize];
            let new = *stamp != self.epoch;
            *stamp = self.epoch;
            new
        } else {
            self.hashed.insert(key)
        };
        self.len += new as usize;
        new
    }

    pub fn len(&self) -> usize {
        self.len
    }
}
