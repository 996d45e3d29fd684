//! How long a task waits before its next run: exponential backoff with "equal jitter", and a
//! tiny deterministic random source for the jitter.

/// The delay before the next run after `attempt` runs have failed (`attempt` is 1 after the
/// first failure; 0 is treated as 1).
///
/// The un-jittered delay is `base_ms × 2^(attempt-1)`, saturating, capped at `max_ms`. With
/// "equal jitter" the result is half of that fixed plus a random part of up to the other half
/// taken from `jitter` (any random `u64` from the caller): the result lies in
/// `[ceil(d/2), d]` where `d` is the capped delay. It is 0 only when `base_ms` is 0; when
/// `base_ms > 0` and `max_ms` is 0 the cap counts as 1 ms. Never overflows, for any input.
pub fn next_delay_ms(attempt: u32, base_ms: u64, max_ms: u64, jitter: u64) -> u64 {
    let d = capped_delay_ms(attempt, base_ms, max_ms);
    let half = d / 2;
    // `half + 1` cannot overflow: half <= u64::MAX / 2.
    (d - half) + jitter % (half + 1)
}

/// The delay without jitter: `base_ms × 2^(attempt-1)`, capped at `max_ms` (at least 1 ms when
/// `base_ms > 0`). The upper bound of [`next_delay_ms`].
pub fn capped_delay_ms(attempt: u32, base_ms: u64, max_ms: u64) -> u64 {
    if base_ms == 0 {
        return 0;
    }
    let cap = max_ms.max(1);
    let shift = attempt.saturating_sub(1);
    let exp = if shift >= u64::BITS {
        u64::MAX
    } else {
        base_ms.saturating_mul(1u64 << shift)
    };
    exp.min(cap)
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, deterministic generator, good enough
/// for jitter. Not for anything secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// Seeded from the wall clock (nanoseconds) mixed with `salt` (e.g. a process id or a
    /// counter), for a module that wants different jitter on every start.
    pub fn from_clock(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SplitMix64::new(nanos ^ salt.rotate_left(32))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JITTERS: [u64; 7] = [0, 1, 2, 12345, u64::MAX / 2, u64::MAX - 1, u64::MAX];

    #[test]
    fn exponential_then_capped() {
        assert_eq!(capped_delay_ms(1, 100, 10_000), 100);
        assert_eq!(capped_delay_ms(2, 100, 10_000), 200);
        assert_eq!(capped_delay_ms(3, 100, 10_000), 400);
        assert_eq!(capped_delay_ms(7, 100, 10_000), 6_400);
        assert_eq!(capped_delay_ms(8, 100, 10_000), 10_000);
        assert_eq!(capped_delay_ms(0, 100, 10_000), 100);
        assert_eq!(capped_delay_ms(1, 500, 200), 200);
        assert_eq!(capped_delay_ms(1, 5, 0), 1);
        assert_eq!(capped_delay_ms(3, 0, 1000), 0);
    }

    #[test]
    fn jittered_delay_stays_within_half_and_full() {
        let mut rng = SplitMix64::new(7);
        for base in [1u64, 2, 3, 10, 100, 1000, u64::MAX / 3, u64::MAX] {
            for max in [0u64, 1, 2, 50, 1000, 30_000, u64::MAX] {
                for attempt in [0u32, 1, 2, 3, 10, 63, 64, 65, 1000, u32::MAX] {
                    let d = capped_delay_ms(attempt, base, max);
                    assert!(d >= 1 && d <= max.max(1), "{attempt} {base} {max}");
                    let mut js = JITTERS.to_vec();
                    js.extend((0..20).map(|_| rng.next_u64()));
                    for j in js {
                        let r = next_delay_ms(attempt, base, max, j);
                        assert!(r >= d - d / 2 && r <= d, "{attempt} {base} {max} {j}: {r}");
                        assert!(r > 0);
                    }
                }
            }
        }
    }

    #[test]
    fn zero_base_means_no_delay() {
        for j in JITTERS {
            assert_eq!(next_delay_ms(5, 0, 1000, j), 0);
        }
    }

    #[test]
    fn jitter_reaches_both_ends() {
        // d = 100: half = 50, so the result is 50 + j % 51.
        assert_eq!(next_delay_ms(1, 100, 1000, 0), 50);
        assert_eq!(next_delay_ms(1, 100, 1000, 50), 100);
        assert_eq!(next_delay_ms(1, 100, 1000, 51), 50);
        // Odd d = 3: half = 1, result in [2, 3].
        assert_eq!(next_delay_ms(1, 3, 1000, 0), 2);
        assert_eq!(next_delay_ms(1, 3, 1000, 1), 3);
        assert_eq!(next_delay_ms(1, 1, 1000, u64::MAX), 1);
    }

    #[test]
    fn bounds_are_monotone_in_attempt_and_respect_the_cap() {
        for (base, max) in [
            (1u64, 1u64),
            (100, 30_000),
            (7, 1_000_000),
            (1000, 999),
            (3, u64::MAX),
        ] {
            let mut prev_hi = 0;
            let mut prev_lo = 0;
            for attempt in 1..=200u32 {
                let hi = capped_delay_ms(attempt, base, max);
                let lo = next_delay_ms(attempt, base, max, 0);
                assert!(hi >= prev_hi && lo >= prev_lo, "{base} {max} {attempt}");
                assert!(hi <= max.max(1));
                prev_hi = hi;
                prev_lo = lo;
            }
            // Far out the cap holds and nothing overflows.
            assert_eq!(capped_delay_ms(u32::MAX, base, max), max.max(1));
            assert!(next_delay_ms(u32::MAX, base, max, u64::MAX) <= max.max(1));
        }
    }

    #[test]
    fn splitmix64_reference_values() {
        // Reference outputs of the published SplitMix64 for seed 1234567.
        let mut r = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn splitmix64_is_deterministic_and_spreads() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let xs: Vec<u64> = (0..1000).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..1000).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let distinct: std::collections::HashSet<_> = xs.iter().collect();
        assert_eq!(distinct.len(), 1000);
        // Jitter over a 100 ms delay covers the whole [50, 100] range.
        let mut seen = std::collections::HashSet::new();
        let mut r = SplitMix64::from_clock(1);
        for _ in 0..10_000 {
            seen.insert(next_delay_ms(1, 100, 1000, r.next_u64()));
        }
        assert_eq!(seen.len(), 51);
    }
}
