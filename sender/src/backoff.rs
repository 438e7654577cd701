//! Exponential backoff with full jitter for retryable failures (spec §5.5, §5.6).

use rand::Rng;

/// Backoff knobs, ms. The n-th consecutive failure waits a uniform random time in
/// `0..=min(cap_ms, base_ms * 2^(n-1))` ("full jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first retry's delay, ms. Default 200.
    pub base_ms: u64,
    /// Largest ceiling, ms. Default 30,000.
    pub cap_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base_ms: crate::defaults::BACKOFF_BASE_MS,
            cap_ms: crate::defaults::BACKOFF_CAP_MS,
        }
    }
}

impl BackoffConfig {
    /// Ceiling of the delay after `failures` consecutive failures (1 = first failure), ms.
    pub fn ceiling_ms(&self, failures: u32) -> u64 {
        let shift = failures.saturating_sub(1).min(40);
        self.base_ms.saturating_mul(1u64 << shift).min(self.cap_ms)
    }

    /// A full-jitter delay after `failures` consecutive failures, ms, drawn from `rng`.
    pub fn delay_ms(&self, failures: u32, rng: &mut impl Rng) -> u64 {
        let ceiling = self.ceiling_ms(failures);
        if ceiling == 0 {
            0
        } else {
            rng.random_range(0..=ceiling)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_then_caps() {
        // spec §5.5: retry 5xx with backoff; ours is capped exponential
        let b = BackoffConfig {
            base_ms: 100,
            cap_ms: 1_000,
        };
        assert_eq!(b.ceiling_ms(1), 100);
        assert_eq!(b.ceiling_ms(2), 200);
        assert_eq!(b.ceiling_ms(4), 800);
        assert_eq!(b.ceiling_ms(5), 1_000);
        assert_eq!(b.ceiling_ms(500), 1_000);
    }

    #[test]
    fn delays_stay_under_the_ceiling_and_are_seeded() {
        let b = BackoffConfig::default();
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in 1..20 {
            let d = b.delay_ms(n, &mut r1);
            assert!(d <= b.ceiling_ms(n));
            assert_eq!(d, b.delay_ms(n, &mut r2));
        }
    }
}
