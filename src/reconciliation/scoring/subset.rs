//! Which of a customer's open invoices one credit may pay together: a bounded subset-sum search,
//! so a customer with hundreds of open invoices costs the engine no more than one with 24.

use super::MAX_SET;

/// The amounts considered: the largest not above the target, which need the fewest items.
pub const SUBSET_MAX_AMOUNTS: usize = 24;

/// The search gives up after this many steps (one step: one amount tried at one position),
/// a few milliseconds at most, returning what it found so far.
pub const SUBSET_MAX_STEPS: usize = 20_000;

/// Subsets of 2 to [`MAX_SET`] of `amounts` summing to `target` within `tolerance`, as sorted
/// index sets, at most `limit` of them, smaller sets first (then by indexes). Only positive
/// amounts not above the target count, and of those the [`SUBSET_MAX_AMOUNTS`] largest (ties by
/// index); the search stops after [`SUBSET_MAX_STEPS`] steps, so it may miss sets on large inputs.
pub fn subset_sums(target: i64, amounts: &[i64], tolerance: i64, limit: usize) -> Vec<Vec<usize>> {
    search(target, amounts, tolerance, limit).0
}

/// [`subset_sums`] and the steps it took.
fn search(target: i64, amounts: &[i64], tolerance: i64, limit: usize) -> (Vec<Vec<usize>>, usize) {
    if limit == 0 || target <= 0 {
        return (Vec::new(), 0);
    }
    let mut pool: Vec<(i64, usize)> =
        amounts.iter().enumerate().filter(|(_, a)| (1..=target).contains(*a)).map(|(i, &a)| (a, i)).collect();
    pool.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    pool.truncate(SUBSET_MAX_AMOUNTS);
    let mut prefix = vec![0_i128];
    for (amount, _) in &pool {
        prefix.push(prefix[prefix.len() - 1] + i128::from(*amount));
    }
    let tolerance = i128::from(tolerance.max(0));
    let mut search = Search {
        prefix,
        low: i128::from(target) - tolerance,
        high: i128::from(target) + tolerance,
        limit,
        steps: 0,
        max_steps: SUBSET_MAX_STEPS,
        chosen: Vec::with_capacity(MAX_SET),
        found: Vec::new(),
    };
    for size in 2..=MAX_SET.min(pool.len()) {
        if !search.extend(0, size, 0) {
            break;
        }
    }
    let mut sets: Vec<Vec<usize>> = search
        .found
        .iter()
        .map(|positions| {
            let mut set: Vec<usize> = positions.iter().map(|&p| pool[p].1).collect();
            set.sort_unstable();
            set
        })
        .collect();
    sets.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    (sets, search.steps)
}

/// The one set of 2 to [`MAX_SET`] of `amounts` that sums to `target` within `tolerance` and
/// holds at least one of `anchors` (indexes), as sorted indexes. None when there is none or more
/// than one, or when the search could not finish within [`SUBSET_MAX_STEPS`]: None never hides a
/// second set. Unlike [`subset_sums`] no positive amount is left out, since "only one" must have
/// looked at them all.
pub fn sole_set_with(target: i64, amounts: &[i64], tolerance: i64, anchors: &[usize]) -> Option<Vec<usize>> {
    sole_set_within(target, amounts, tolerance, anchors, SUBSET_MAX_STEPS)
}

/// [`sole_set_with`], giving up after `max_steps`.
fn sole_set_within(
    target: i64,
    amounts: &[i64],
    tolerance: i64,
    anchors: &[usize],
    max_steps: usize,
) -> Option<Vec<usize>> {
    let tolerance = i128::from(tolerance.max(0));
    let mut found: Vec<Vec<usize>> = Vec::new();
    let mut steps = 0;
    for (k, &anchor) in anchors.iter().enumerate() {
        let earlier = &anchors[..k];
        let first = i128::from(*amounts.get(anchor)?);
        if first <= 0 || earlier.contains(&anchor) {
            continue;
        }
        // The sets holding an earlier anchor were counted with it.
        let rest = i128::from(target) - first;
        let mut pool: Vec<(i64, usize)> = amounts
            .iter()
            .enumerate()
            .filter(|&(i, &a)| i != anchor && !earlier.contains(&i) && a > 0 && i128::from(a) <= rest + tolerance)
            .map(|(i, &a)| (a, i))
            .collect();
        pool.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut prefix = vec![0_i128];
        for (amount, _) in &pool {
            prefix.push(prefix[prefix.len() - 1] + i128::from(*amount));
        }
        let mut search = Search {
            prefix,
            low: rest - tolerance,
            high: rest + tolerance,
            limit: 2 - found.len(),
            steps,
            max_steps,
            chosen: Vec::with_capacity(MAX_SET),
            found: Vec::new(),
        };
        for size in 1..MAX_SET.min(pool.len() + 1) {
            if !search.extend(0, size, 0) {
                break;
            }
        }
        steps = search.steps;
        if steps > max_steps {
            return None;
        }
        for positions in search.found {
            let mut set: Vec<usize> = positions.iter().map(|&p| pool[p].1).collect();
            set.push(anchor);
            set.sort_unstable();
            found.push(set);
        }
        if found.len() > 1 {
            return None;
        }
    }
    found.pop()
}

/// A depth-first search over amounts sorted largest first, pruned by the largest and smallest
/// sums the remaining picks can still reach.
struct Search {
    /// `prefix[k]`: the sum of the `k` largest amounts.
    prefix: Vec<i128>,
    low: i128,
    high: i128,
    limit: usize,
    steps: usize,
    max_steps: usize,
    /// Positions picked so far.
    chosen: Vec<usize>,
    found: Vec<Vec<usize>>,
}

impl Search {
    /// Picks `left` more positions from `from` on; false once the search must stop.
    fn extend(&mut self, from: usize, left: usize, sum: i128) -> bool {
        if left == 0 {
            if (self.low..=self.high).contains(&sum) {
                self.found.push(self.chosen.clone());
            }
            return self.found.len() < self.limit;
        }
        let n = self.prefix.len() - 1;
        for p in from..=n - left {
            self.steps += 1;
            if self.steps > self.max_steps {
                return false;
            }
            // The largest sum from here on only shrinks as `p` moves right.
            if sum + self.prefix[p + left] - self.prefix[p] < self.low {
                break;
            }
            let amount = self.prefix[p + 1] - self.prefix[p];
            let smallest_rest = self.prefix[n] - self.prefix[n - (left - 1)];
            if sum + amount + smallest_rest > self.high {
                continue;
            }
            self.chosen.push(p);
            let go_on = self.extend(p + 1, left - 1, sum + amount);
            self.chosen.pop();
            if !go_on {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pair_that_pays_the_credit() {
        assert_eq!(subset_sums(500, &[100, 200, 300, 700], 0, 10), [[1, 2]]);
        assert_eq!(subset_sums(500, &[100, 200, 300, 700], 0, 0), Vec::<Vec<usize>>::new());
        assert!(subset_sums(500, &[500], 0, 10).is_empty(), "a single invoice is not a set");
        assert!(subset_sums(0, &[0, 0], 0, 10).is_empty());
    }

    #[test]
    fn smaller_sets_come_first_and_the_limit_holds() {
        let amounts = [100, 200, 300, 400, 500];
        assert_eq!(subset_sums(600, &amounts, 0, 10), vec![vec![0, 4], vec![1, 3], vec![0, 1, 2]]);
        assert_eq!(subset_sums(600, &amounts, 0, 2), vec![vec![0, 4], vec![1, 3]]);
    }

    #[test]
    fn tolerance_admits_near_sums_and_oversized_amounts_are_skipped() {
        assert_eq!(subset_sums(1_000, &[499, 499, 2_000, -5], 2, 10), [[0, 1]]);
        assert!(subset_sums(1_000, &[499, 499], 1, 10).is_empty());
        assert_eq!(subset_sums(i64::MAX, &[i64::MAX - 1, 1, i64::MAX], 0, 10), [[0, 1]], "no overflow");
    }

    #[test]
    fn only_the_largest_amounts_up_to_the_bound_are_considered() {
        let mut amounts = vec![100; SUBSET_MAX_AMOUNTS + 6];
        amounts.push(150);
        let sets = subset_sums(200, &amounts, 0, 1_000);
        let kept = SUBSET_MAX_AMOUNTS - 1;
        assert_eq!(sets.len(), kept * (kept - 1) / 2, "every pair of the first 23 hundreds");
        assert!(sets.iter().flatten().all(|&i| i < SUBSET_MAX_AMOUNTS - 1), "150 is larger: it takes a place");
        assert_eq!(subset_sums(250, &amounts, 0, 1), [[0, 30]]);
    }

    #[test]
    fn the_sole_set_with_an_anchor_is_found_and_a_second_one_refuses() {
        let amounts = [500, 300, 200, 700, 150];
        assert_eq!(sole_set_with(800, &amounts, 0, &[0]), Some(vec![0, 1]));
        assert_eq!(sole_set_with(1_000, &amounts, 0, &[0]), Some(vec![0, 1, 2]));
        assert_eq!(sole_set_with(1_000, &amounts, 0, &[3]), Some(vec![1, 3]), "700 + 300");
        assert_eq!(sole_set_with(850, &amounts, 0, &[0]), Some(vec![0, 2, 4]), "700 + 150 holds no anchor");
        assert_eq!(sole_set_with(650, &amounts, 0, &[2]), Some(vec![1, 2, 4]), "500 + 150 holds no anchor");
        let twice = [500, 300, 300];
        assert_eq!(sole_set_with(800, &twice, 0, &[0]), None, "either 300 may be meant");
        assert_eq!(sole_set_with(800, &twice, 0, &[1]), Some(vec![0, 1]), "the quoted 300 and the 500");
        assert_eq!(sole_set_with(800, &[500, 300, 200, 100], 0, &[0, 1]), None, "500 + 300 and 500 + 200 + 100");
        assert_eq!(sole_set_with(800, &[500, 300, 310], 10, &[0]), None, "a sum within tolerance is a rival too");
        assert_eq!(sole_set_with(800, &[500, 300, 310], 0, &[0]), Some(vec![0, 1]));
        assert_eq!(sole_set_with(800, &[500, 300], 0, &[]), None, "no anchor, no set");
        assert_eq!(sole_set_with(800, &[500, 300], 0, &[7]), None, "an anchor that is no amount");
        assert_eq!(sole_set_with(500, &[500, 0, -3], 0, &[0]), None, "one invoice is not a set");
        let seven = [100; 7];
        assert_eq!(sole_set_with(700, &seven, 0, &[0]), None, "more than MAX_SET invoices is no set");
    }

    #[test]
    fn the_sole_set_counts_each_set_once_whichever_anchors_it_holds() {
        assert_eq!(sole_set_with(800, &[500, 300, 50], 0, &[0, 1]), Some(vec![0, 1]));
        assert_eq!(sole_set_with(850, &[500, 300, 50], 0, &[2, 0]), Some(vec![0, 1, 2]));
        assert_eq!(sole_set_with(800, &[500, 300, 50], 0, &[1, 1]), Some(vec![0, 1]), "an anchor twice");
    }

    #[test]
    fn the_sole_set_is_never_claimed_when_the_search_gives_up() {
        let amounts = [500, 300, 200, 700, 150];
        assert_eq!(sole_set_within(850, &amounts, 0, &[0], 1_000), Some(vec![0, 2, 4]));
        assert_eq!(sole_set_within(850, &amounts, 0, &[0], 3), None, "cut short, it may have missed a second set");
        // Even amounts never reach an odd target: nothing prunes, and the bound stops it.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let spread: Vec<i64> = (0..60)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                2 * ((state >> 33) % 50_000) as i64 + 2
            })
            .collect();
        assert_eq!(sole_set_with(150_001, &spread, 0, &[0, 1, 2]), None);
    }

    #[test]
    fn the_search_stops_after_a_bounded_amount_of_work() {
        // A pseudo-random spread of 40 amounts and an odd target none of them reaches exactly:
        // the worst case, where nothing prunes early.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let amounts: Vec<i64> = (0..40)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                2 * ((state >> 33) % 50_000) as i64
            })
            .collect();
        let (sets, steps) = search(150_001, &amounts, 0, 10);
        assert!(sets.is_empty(), "even amounts never sum to an odd target");
        assert!(steps <= SUBSET_MAX_STEPS + 1, "{steps}");
        let (sets, steps) = search(100_000, &amounts, 0, 3);
        assert!(sets.len() <= 3 && steps <= SUBSET_MAX_STEPS + 1);
        assert!(sets.iter().all(|set| set.iter().map(|&i| amounts[i]).sum::<i64>() == 100_000), "{sets:?}");
    }
}
