//! Prompt caches kept between generation calls, so that an episode's next turn prefills only what
//! it added (the reply and the new observation), not the whole history again.
//!
//! A multi-turn prompt at turn t is the prompt of turn t-1 plus the committed reply and one user
//! message. Without this store every turn re-prefilled the episode from its first token, which
//! made an episode's prefill quadratic in its turns. Matching is by content (the longest stored
//! prompt that is a strict prefix of the new one), so no caller has to name its episode, and
//! beams or forks that diverged simply miss. Entries are valid for one weights version only:
//! keys and values computed with old weights are never mixed into a new version's replies.

use std::collections::VecDeque;
use std::sync::Arc;

use super::infer::LayerKv;

/// A prompt whose keys and values are held, frozen as a shareable prefix.
struct Stored {
    tokens: Vec<u32>,
    cache: Arc<Vec<LayerKv>>,
}

/// The most recently used prompt caches of one weights version, at most `capacity` of them.
#[derive(Default)]
pub struct PromptStore {
    /// Weights version the entries were computed with.
    version: u64,
    capacity: usize,
    /// Least recently used first.
    entries: VecDeque<Stored>,
    /// Prompt tokens that a lookup found cached (for the reuse metric and tests).
    pub reused_tokens: u64,
}

impl PromptStore {
    pub fn new(capacity: usize) -> PromptStore {
        PromptStore {
            capacity,
            ..PromptStore::default()
        }
    }

    /// Forget everything computed with another weights version.
    pub fn set_version(&mut self, version: u64) {
        if version != self.version {
            self.entries.clear();
            self.version = version;
        }
    }

    /// The longest stored prompt that is a strict prefix of `prompt` (at least one token must be
    /// left to prefill, since its logits start the reply), with its length.
    pub fn lookup(&mut self, prompt: &[u32]) -> Option<(Arc<Vec<LayerKv>>, usize)> {
        let best = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.tokens.len() < prompt.len() && prompt.starts_with(&e.tokens))
            .max_by_key(|(_, e)| e.tokens.len())
            .map(|(i, _)| i)?;
        let hit = self.entries.remove(best)?;
        let found = (hit.cache.clone(), hit.tokens.len());
        self.reused_tokens += hit.tokens.len() as u64;
        self.entries.push_back(hit);
        Some(found)
    }

    /// Keep `tokens`' cache, dropping the least recently used entry when full.
    pub fn insert(&mut self, tokens: &[u32], cache: Arc<Vec<LayerKv>>) {
        if self.capacity == 0 {
            return;
        }
        self.entries.retain(|e| e.tokens != tokens);
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(Stored {
            tokens: tokens.to_vec(),
            cache,
        });
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(tag: f32) -> Arc<Vec<LayerKv>> {
        Arc::new(vec![LayerKv {
            k: vec![tag],
            v: vec![tag],
        }])
    }

    #[test]
    fn longest_strict_prefix_wins_and_exact_match_is_not_a_hit() {
        let mut store = PromptStore::new(4);
        store.insert(&[1, 2], cache(1.0));
        store.insert(&[1, 2, 3, 4], cache(2.0));
        store.insert(&[9, 9], cache(3.0));
        let (hit, len) = store.lookup(&[1, 2, 3, 4, 5]).expect("hit");
        assert_eq!((hit[0].k[0], len), (2.0, 4));
        // The exact prompt leaves nothing to prefill, so only the shorter entry matches.
        let (hit, len) = store.lookup(&[1, 2, 3, 4]).expect("hit");
        assert_eq!((hit[0].k[0], len), (1.0, 2));
        assert!(store.lookup(&[5, 1, 2, 3]).is_none());
        assert_eq!(store.reused_tokens, 6);
    }

    #[test]
    fn least_recently_used_entry_goes_first_and_a_new_version_clears() {
        let mut store = PromptStore::new(2);
        store.insert(&[1], cache(1.0));
        store.insert(&[2], cache(2.0));
        assert!(store.lookup(&[1, 7]).is_some()); // [1] is now the most recent
        store.insert(&[3], cache(3.0));
        assert!(store.lookup(&[2, 7]).is_none(), "[2] was evicted");
        assert!(store.lookup(&[1, 7]).is_some());
        store.set_version(1);
        assert!(store.is_empty());
        let mut off = PromptStore::new(0);
        off.insert(&[1], cache(1.0));
        assert!(off.is_empty(), "capacity 0 keeps nothing");
    }
}
