//! How stale the replica is, from the primary's WAL position sampled over time.
//!
//! Every probe reads the primary's flushed WAL position (LSN) and keeps it with the time it was
//! read, then reads how far the replica has replayed. A replica that has replayed up to LSN `r`
//! holds everything the primary had committed at the newest sample whose LSN is at most `r`, so
//! it is at most `now − (that sample's time)` behind. An idle primary writes no WAL, its LSN stays
//! put, and a replica that has replayed it is as fresh as the last probe: the measure needs no
//! heartbeat table and no clocks to agree (`pg_last_xact_replay_timestamp` would read an idle
//! primary as an ever-growing lag).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// The primary's recent WAL positions, oldest first.
#[derive(Debug)]
pub struct LagTracker {
    samples: VecDeque<(Instant, i64)>,
    window: Duration,
}

impl LagTracker {
    /// Keeps samples for `window`; a replica behind all of them is reported as `window` behind.
    pub fn new(window: Duration) -> Self {
        Self { samples: VecDeque::new(), window }
    }

    /// Records the primary's flushed LSN, read at `at`.
    pub fn primary(&mut self, at: Instant, lsn: i64) {
        self.samples.push_back((at, lsn));
        // Drop samples older than the window, but keep the newest of them: it is the answer for
        // a replica that has replayed it and nothing newer.
        while self.samples.len() > 1 && self.samples[1].0 + self.window <= at {
            self.samples.pop_front();
        }
    }

    /// How far behind a replica that has replayed up to `replay` is at `now`; `None` when no
    /// sample is known yet.
    pub fn staleness(&self, replay: i64, now: Instant) -> Option<Duration> {
        let (oldest, _) = *self.samples.front()?;
        let caught_up_to = self.samples.iter().rev().find(|(_, lsn)| *lsn <= replay).map(|(at, _)| *at);
        Some(match caught_up_to {
            Some(at) => now.saturating_duration_since(at),
            // Behind every sample: at least as old as the oldest one.
            None => now.saturating_duration_since(oldest).max(self.window),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_replica_that_replayed_the_newest_position_is_as_fresh_as_the_sample() {
        let t0 = Instant::now();
        let mut lag = LagTracker::new(10_000 * MS);
        lag.primary(t0, 100);
        lag.primary(t0 + 100 * MS, 200);
        assert_eq!(lag.staleness(200, t0 + 110 * MS), Some(10 * MS));
        assert_eq!(lag.staleness(250, t0 + 110 * MS), Some(10 * MS));
    }

    #[test]
    fn a_replica_behind_is_as_old_as_the_newest_position_it_has() {
        let t0 = Instant::now();
        let mut lag = LagTracker::new(10_000 * MS);
        for i in 0..10 {
            lag.primary(t0 + i * 100 * MS, 100 * i64::from(i));
        }
        // Replayed 450: it has what the primary had at 400 (t0 + 400 ms), not at 500.
        assert_eq!(lag.staleness(450, t0 + 950 * MS), Some(550 * MS));
    }

    #[test]
    fn an_idle_primary_is_not_read_as_lag() {
        let t0 = Instant::now();
        let mut lag = LagTracker::new(1_000 * MS);
        for i in 0..100 {
            lag.primary(t0 + i * 100 * MS, 500);
        }
        assert_eq!(lag.staleness(500, t0 + 9_905 * MS), Some(5 * MS));
    }

    #[test]
    fn a_replica_behind_the_whole_window_is_at_least_the_window_behind() {
        let t0 = Instant::now();
        let mut lag = LagTracker::new(1_000 * MS);
        for i in 0..50 {
            lag.primary(t0 + i * 100 * MS, 1_000 + i64::from(i));
        }
        let behind = lag.staleness(10, t0 + 4_900 * MS).unwrap();
        assert!(behind >= 1_000 * MS, "{behind:?}");
        assert_eq!(LagTracker::new(MS).staleness(10, t0), None);
    }
}
