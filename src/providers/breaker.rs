//! A circuit breaker: after enough consecutive failures, stop calling a provider for a while, then
//! let a single probe through; its outcome closes the circuit or opens it again.
//!
//! State is per process on purpose: each instance learns a provider's health from its own calls,
//! and nothing another instance needs is lost when one restarts.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The circuit is closed (or this call is the half-open probe).
    Go,
    /// The circuit is open: fail fast; try again after this long.
    Refused(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The probe is out; everyone else waits for its verdict.
    HalfOpen {
        since: Instant,
    },
}

/// One provider's breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures and stays open for `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self { threshold: threshold.max(1), cool_down, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    /// Asks to make a call at `now`.
    pub fn permit(&self, now: Instant) -> Permit {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => Permit::Go,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { since: now };
                Permit::Go
            }
            State::Open { until } => Permit::Refused(until - now),
            // A probe that never reported back (its task was dropped) must not wedge the circuit.
            State::HalfOpen { since } if now.duration_since(since) >= self.cool_down => {
                *state = State::HalfOpen { since: now };
                Permit::Go
            }
            State::HalfOpen { since } => Permit::Refused(self.cool_down.saturating_sub(now.duration_since(since))),
        }
    }

    /// The call reached the provider and it answered sensibly.
    pub fn success(&self) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::Closed { failures: 0 };
    }

    /// The call failed in a way that says the provider is unwell (5xx, timeout, connection).
    pub fn failure(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed { failures: failures + 1 },
            _ => State::Open { until: now + self.cool_down },
        };
    }

    /// Whether the circuit is open (or half-open) right now, for metrics and errors.
    pub fn is_open(&self) -> bool {
        !matches!(*self.state.lock().unwrap_or_else(PoisonError::into_inner), State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_the_cool_down() {
        let breaker = Breaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        breaker.failure(t0);
        breaker.failure(t0);
        assert_eq!(breaker.permit(t0), Permit::Go);
        breaker.failure(t0);
        assert_eq!(breaker.permit(t0 + Duration::from_secs(10)), Permit::Refused(Duration::from_secs(20)));
        // After the cool-down one probe goes through; the others keep waiting for it.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(breaker.permit(later), Permit::Go);
        assert!(matches!(breaker.permit(later), Permit::Refused(_)));
        // A failed probe opens it again, a successful one closes it.
        breaker.failure(later);
        assert!(matches!(breaker.permit(later + Duration::from_secs(1)), Permit::Refused(_)));
        let much_later = later + Duration::from_secs(31);
        assert_eq!(breaker.permit(much_later), Permit::Go);
        breaker.success();
        assert_eq!(breaker.permit(much_later), Permit::Go);
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(5));
        let now = Instant::now();
        breaker.failure(now);
        breaker.success();
        breaker.failure(now);
        assert_eq!(breaker.permit(now), Permit::Go);
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_circuit() {
        let breaker = Breaker::new(1, Duration::from_secs(5));
        let now = Instant::now();
        breaker.failure(now);
        assert_eq!(breaker.permit(now + Duration::from_secs(5)), Permit::Go);
        assert!(matches!(breaker.permit(now + Duration::from_secs(6)), Permit::Refused(_)));
        assert_eq!(breaker.permit(now + Duration::from_secs(10)), Permit::Go);
    }
}
