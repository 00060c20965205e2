//! Replay of failed training instances (`train.replay_groups`): the simplest form of
//! prioritized level replay (Jiang et al. 2021). Each step plays its `env_groups` fresh
//! instances by the spec's seed rule and, besides them, up to `replay_groups` instances whose
//! training episodes failed in earlier steps.
//!
//! Why: with TSR rollouts nearly every training episode succeeds (FrozenLake ~90%), and the few
//! instances a policy keeps failing (a lake whose straight way to the goal passes a hole) come
//! up about as rarely as they fail; the policy reaches the ceiling on the easy ones and never
//! sees the hard ones often enough. Playing a failed instance again gives the search another
//! chance to find what succeeds there, and the learner a success to learn it from.
//!
//! The queue is part of the loop's state (checkpointed with it), so a resumed run replays
//! exactly what the uninterrupted run would have.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::search::Episode;

/// An instance waiting to be played again.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Its environment seed.
    pub env_seed: u64,
    /// Times it has been replayed already.
    pub replays: u32,
}

/// Failed instances, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplayQueue {
    pub waiting: VecDeque<Entry>,
}

/// What replay did in one step, for `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayReport {
    /// Replayed instances played this step.
    pub groups: usize,
    /// Success rate of their episodes (None when none was replayed).
    pub success_rate: Option<f64>,
    /// Instances waiting after this step's failures were queued.
    pub waiting: usize,
}

impl ReplayQueue {
    /// The next `n` instances to replay (fewer when fewer wait).
    pub fn take(&mut self, n: usize) -> Vec<Entry> {
        let n = n.min(self.waiting.len());
        self.waiting.drain(..n).collect()
    }

    /// Queue the instances of a step that failed: group g < `fresh_groups` is a fresh
    /// instance, group `fresh_groups + j` replayed `taken[j]`. An instance fails when fewer
    /// than half of its episodes succeed; a replayed one is queued again only while it has been
    /// replayed fewer than `max_replays` times. The queue keeps at most `capacity` instances,
    /// dropping the oldest (the policy has moved on since they failed).
    pub fn record(
        &mut self,
        episodes: &[Episode],
        fresh_groups: usize,
        taken: &[Entry],
        max_replays: u32,
        capacity: usize,
    ) -> ReplayReport {
        let mut groups: std::collections::BTreeMap<usize, (u64, usize, usize)> = Default::default();
        for e in episodes {
            let g = groups
                .entry(e.spec.group)
                .or_insert((e.spec.env_seed, 0, 0));
            g.1 += usize::from(e.success);
            g.2 += 1;
        }
        let (mut replay_won, mut replay_played) = (0, 0);
        for (&group, &(env_seed, won, played)) in &groups {
            let replays = match group.checked_sub(fresh_groups) {
                None => 0,
                Some(j) => {
                    replay_won += won;
                    replay_played += played;
                    taken.get(j).map_or(max_replays, |t| t.replays + 1)
                }
            };
            if 2 * won < played && replays < max_replays {
                self.waiting.push_back(Entry { env_seed, replays });
            }
        }
        while self.waiting.len() > capacity {
            self.waiting.pop_front();
        }
        ReplayReport {
            groups: taken.len(),
            success_rate: (replay_played > 0).then(|| replay_won as f64 / replay_played as f64),
            waiting: self.waiting.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{EpisodeSpec, SearchCounts};

    fn episode(group: usize, env_seed: u64, success: bool) -> Episode {
        Episode {
            spec: EpisodeSpec {
                id: group as u64,
                group,
                env_seed,
                sample_seed: 0,
            },
            tokens: vec![],
            assistant_mask: vec![],
            token_version: vec![],
            turns: vec![],
            ret: f64::from(u8::from(success)),
            success,
            format_errors: 0,
            generated_tokens: 0,
            search: SearchCounts::default(),
            truncated: false,
            seconds: 0.0,
            optimal_len: None,
        }
    }

    #[test]
    fn failed_fresh_instances_wait_and_come_back_in_order() {
        let mut q = ReplayQueue::default();
        let eps = [
            episode(0, 100, true),
            episode(1, 101, false),
            episode(2, 102, false),
        ];
        let r = q.record(&eps, 3, &[], 2, 10);
        assert_eq!(r.waiting, 2);
        assert_eq!(r.success_rate, None);
        let taken = q.take(5);
        assert_eq!(
            taken.iter().map(|e| e.env_seed).collect::<Vec<_>>(),
            [101, 102]
        );
        assert!(taken.iter().all(|e| e.replays == 0));
        assert!(q.waiting.is_empty());
    }

    #[test]
    fn a_replayed_instance_returns_until_its_replays_are_spent() {
        let mut q = ReplayQueue::default();
        let first = [Entry {
            env_seed: 7,
            replays: 0,
        }];
        // Played again as group 1 (after one fresh group) and failed again: queued once more.
        q.record(
            &[episode(0, 1, true), episode(1, 7, false)],
            1,
            &first,
            2,
            10,
        );
        let again = q.take(1);
        assert_eq!(
            again,
            [Entry {
                env_seed: 7,
                replays: 1
            }]
        );
        // Failing its second replay spends it.
        let r = q.record(
            &[episode(0, 2, true), episode(1, 7, false)],
            1,
            &again,
            2,
            10,
        );
        assert_eq!(r.waiting, 0);
        assert_eq!(r.success_rate, Some(0.0));
    }

    #[test]
    fn groups_fail_below_half_and_the_oldest_are_dropped_beyond_capacity() {
        let mut q = ReplayQueue::default();
        // Group 0: 1 of 2 succeeded (kept out); group 1: 0 of 2.
        let eps = [
            episode(0, 10, true),
            episode(0, 10, false),
            episode(1, 11, false),
            episode(1, 11, false),
        ];
        q.record(&eps, 2, &[], 1, 10);
        assert_eq!(
            q.waiting.iter().map(|e| e.env_seed).collect::<Vec<_>>(),
            [11]
        );
        let more: Vec<Episode> = (0..3).map(|g| episode(g, 20 + g as u64, false)).collect();
        let r = q.record(&more, 3, &[], 1, 2);
        assert_eq!(r.waiting, 2);
        assert_eq!(
            q.waiting.iter().map(|e| e.env_seed).collect::<Vec<_>>(),
            [21, 22]
        );
    }
}
