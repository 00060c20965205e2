//! Which rollouts the learner trains on: instance filtering (keep the groups whose returns vary
//! most) and trajectory selection (within a group, keep the half farthest from its mean).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::advantages::{mean, unbiased_std};

/// Below this group std the returns count as all equal, so "farthest from the mean" means nothing
/// and the kept half is chosen at random instead (as the reference code does).
const FLAT_GROUP_STD: f64 = 1e-3;

/// How many groups of `n` a `ratio` keeps: `floor(ratio·n)` (RAGEN's `int(ratio·n)`), at least
/// one. The tiny slack absorbs float error such as `0.3·10 = 2.9999…`.
pub fn groups_to_keep(n: usize, ratio: f64) -> usize {
    if n == 0 {
        return 0;
    }
    ((ratio * n as f64 + 1e-9).floor() as usize).clamp(1, n)
}

/// Instance filtering. `returns_by_group[g]` holds the episode returns of group `g`. Groups are
/// ranked by the unbiased std of their returns (a group of one, or a NaN std, ranks lowest) and
/// the top `filter_ratio` share is kept, at least one group; ties go to the lower index. The
/// kept group indices are returned in ascending order.
pub fn filter_groups(returns_by_group: &[Vec<f64>], filter_ratio: f64) -> Vec<usize> {
    let spread: Vec<f64> = returns_by_group
        .iter()
        .map(|returns| {
            let std = unbiased_std(returns);
            if std.is_nan() { f64::NEG_INFINITY } else { std }
        })
        .collect();
    let mut order: Vec<usize> = (0..returns_by_group.len()).collect();
    // `sort_by` is stable, so equal spreads keep index order.
    order.sort_by(|&a, &b| spread[b].total_cmp(&spread[a]));
    order.truncate(groups_to_keep(returns_by_group.len(), filter_ratio));
    order.sort_unstable();
    order
}

/// Trajectory selection within one group: keep `max(1, n/2)` trajectories whose returns are
/// farthest from the group mean (ties to the lower index); if the group's unbiased std is below
/// 1e-3, keep a random half drawn from `rng`. Kept indices are returned in ascending order.
pub fn select_trajectories<R: Rng + ?Sized>(returns: &[f64], rng: &mut R) -> Vec<usize> {
    let n = returns.len();
    if n == 0 {
        return Vec::new();
    }
    let keep = (n / 2).max(1);
    let mut order: Vec<usize> = (0..n).collect();
    if unbiased_std(returns) < FLAT_GROUP_STD {
        order.shuffle(rng);
    } else {
        let m = mean(returns);
        let distance = |i: usize| (returns[i] - m).abs();
        order.sort_by(|&a, &b| distance(b).total_cmp(&distance(a)));
    }
    order.truncate(keep);
    order.sort_unstable();
    order
}

/// Instance filtering, then (if `select_half`) trajectory selection in each kept group.
/// Returns `(group index, kept trajectory indices)` in ascending group order. The random halves
/// of flat groups are drawn from one ChaCha8 stream seeded by `seed`, in that order.
pub fn filter_and_select(
    returns_by_group: &[Vec<f64>],
    filter_ratio: f64,
    select_half: bool,
    seed: u64,
) -> Vec<(usize, Vec<usize>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    filter_groups(returns_by_group, filter_ratio)
        .into_iter()
        .map(|g| {
            let returns = &returns_by_group[g];
            let kept = if select_half {
                select_trajectories(returns, &mut rng)
            } else {
                (0..returns.len()).collect()
            };
            (g, kept)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_keeps_at_least_one_group() {
        let groups = vec![vec![1.0, 1.0], vec![0.0, 2.0], vec![3.0, 3.0]];
        assert_eq!(filter_groups(&groups, 0.01), vec![1]);
        assert_eq!(groups_to_keep(8, 0.25), 2);
        assert_eq!(groups_to_keep(10, 0.3), 3);
        assert_eq!(groups_to_keep(0, 0.5), 0);
    }

    #[test]
    fn filter_keeps_highest_spread_and_breaks_ties_by_index() {
        let groups = vec![
            vec![0.0, 0.0],
            vec![0.0, 1.0],
            vec![5.0, 5.0],
            vec![1.0, 0.0],
            vec![0.0, 4.0],
        ];
        assert_eq!(filter_groups(&groups, 0.4), vec![1, 4]);
        assert_eq!(filter_groups(&groups, 0.6), vec![1, 3, 4]);
        let flat = vec![vec![2.0, 2.0]; 4];
        assert_eq!(filter_groups(&flat, 0.5), vec![0, 1]);
    }

    #[test]
    fn filter_ranks_nan_and_singletons_last() {
        let groups = vec![vec![f64::NAN, 1.0], vec![7.0], vec![0.0, 0.1]];
        assert_eq!(filter_groups(&groups, 0.34), vec![2]);
    }

    #[test]
    fn selection_keeps_the_half_farthest_from_the_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let returns = [0.0, 10.0, 4.0, 6.0, 5.0, -1.0];
        // mean 4: distances 4, 6, 0, 2, 1, 5.
        assert_eq!(select_trajectories(&returns, &mut rng), vec![0, 1, 5]);
        assert_eq!(select_trajectories(&[3.0], &mut rng), vec![0]);
        assert!(select_trajectories(&[], &mut rng).is_empty());
    }

    #[test]
    fn flat_group_selection_is_random_but_seeded() {
        let returns = [1.0; 16];
        let pick = |seed| select_trajectories(&returns, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(pick(3), pick(3));
        assert_eq!(pick(3).len(), 8);
        let distinct: std::collections::HashSet<Vec<usize>> = (0..8).map(pick).collect();
        assert!(
            distinct.len() > 1,
            "different seeds should pick different halves"
        );
    }

    #[test]
    fn filter_and_select_combines_both_steps() {
        let groups = vec![
            vec![1.0; 4],
            vec![0.0, 3.0, 1.0, 2.0],
            vec![0.0, 9.0, 0.0, 9.0],
        ];
        let all = filter_and_select(&groups, 0.5, false, 7);
        assert_eq!(all, vec![(2, vec![0, 1, 2, 3])]);
        let halves = filter_and_select(&groups, 0.67, true, 7);
        assert_eq!(halves, vec![(1, vec![0, 1]), (2, vec![0, 1])]);
        assert_eq!(halves, filter_and_select(&groups, 0.67, true, 7));
    }
}
