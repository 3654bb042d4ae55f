//! Seeded randomness: ChaCha8 streams and the few distributions the simulator draws from.
//!
//! The distributions are written here on top of the raw 64-bit stream, so the output for a seed depends only
//! on ChaCha8 (whose stream is fixed by its specification), never on a sampling library's algorithm.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One independent random stream.
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream `stream` of the generator seeded with `seed`: different parts of the simulation use
    /// different streams, so adding draws to one never shifts another.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        Rng(r)
    }

    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-32 for the sizes used here). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// An index drawn with probability proportional to its weight. The weights must not all be zero.
    pub fn weighted(&mut self, weights: impl Iterator<Item = u32> + Clone) -> usize {
        let total: u64 = weights.clone().map(u64::from).sum();
        let mut x = self.below(total.max(1));
        for (i, w) in weights.enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        0
    }

    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }

    /// A random (version 4 shaped) UUID, as Cognito writes event and request ids.
    pub fn uuid(&mut self) -> String {
        uuid_text(self.u64(), self.u64())
    }
}

/// Formats two 64-bit values as a version 4 UUID.
pub fn uuid_text(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 | ((b >> 62) & 3),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// A stateless hash of two values (SplitMix64 finaliser): per-user facts that are derived, not stored.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(0x6a09_e667_f3bc_c909);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1).u64(), Rng::new(7, 2).u64());
        assert_ne!(Rng::new(7, 1).u64(), Rng::new(8, 1).u64());
    }

    #[test]
    fn ranges_stay_inside_bounds() {
        let mut r = Rng::new(1, 0);
        for _ in 0..10_000 {
            let v = r.range(3, 5);
            assert!((3..=5).contains(&v));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.range(4, 4), 4);
    }

    #[test]
    fn uuids_have_the_canonical_shape() {
        let u = Rng::new(1, 0).uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert_eq!(u.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    }
}
