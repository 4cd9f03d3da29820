//! How long a failed job waits before its next attempt: exponential, capped, with full jitter
//! (a uniformly random delay below the ceiling), so jobs that failed together do not retry
//! together.

use std::time::Duration;

/// Retry delays: the ceiling doubles per attempt from `base` up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(2), cap: Duration::from_secs(3600) }
    }
}

impl Backoff {
    /// The largest delay after failed attempt number `attempt` (1 for the first).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// The delay for `attempt` given `unit`, a random number in `[0, 1)`.
    pub fn delay(&self, attempt: i32, unit: f64) -> Duration {
        let unit = if unit.is_nan() { 1.0 } else { unit.clamp(0.0, 1.0) };
        self.ceiling(attempt).mul_f64(unit)
    }

    /// The delay for `attempt`, drawn at random.
    pub fn sample(&self, attempt: i32) -> Duration {
        self.delay(attempt, random_unit())
    }
}

/// A uniform random number in `[0, 1)`; the full ceiling, 1, if the OS cannot provide one.
pub fn random_unit() -> f64 {
    match getrandom::u64() {
        // 53 random bits: exactly what an f64 mantissa holds.
        Ok(bits) => (bits >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff { base: Duration::from_secs(2), cap: Duration::from_secs(60) };

    #[test]
    fn the_ceiling_doubles_per_attempt_up_to_the_cap() {
        assert_eq!(B.ceiling(1), Duration::from_secs(2));
        assert_eq!(B.ceiling(2), Duration::from_secs(4));
        assert_eq!(B.ceiling(5), Duration::from_secs(32));
        assert_eq!(B.ceiling(6), Duration::from_secs(60));
        assert_eq!(B.ceiling(1000), Duration::from_secs(60));
        assert_eq!(B.ceiling(i32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn nonsense_attempts_get_the_base() {
        assert_eq!(B.ceiling(0), Duration::from_secs(2));
        assert_eq!(B.ceiling(-3), Duration::from_secs(2));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        assert_eq!(B.delay(3, 0.0), Duration::ZERO);
        assert_eq!(B.delay(3, 0.5), Duration::from_secs(4));
        assert_eq!(B.delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(B.delay(3, 7.0), Duration::from_secs(8));
        assert_eq!(B.delay(3, -1.0), Duration::ZERO);
        assert_eq!(B.delay(3, f64::NAN), Duration::from_secs(8));
    }

    #[test]
    fn samples_stay_under_the_ceiling() {
        for attempt in 1..20 {
            assert!(B.sample(attempt) <= B.ceiling(attempt));
        }
    }
}
