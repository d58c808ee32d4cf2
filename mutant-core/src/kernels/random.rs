//! A small seeded pseudo-random generator (splitmix64), so that sampling,
//! permutation tests and random top-ups are reproducible without a dependency.

/// A splitmix64 generator: fast, seedable, good enough for sampling and
/// shuffling (not for cryptography).
///
/// ```
/// use mutant_core::kernels::SplitMix64;
/// let mut first = SplitMix64::new(7);
/// let mut second = SplitMix64::new(7);
/// assert_eq!(first.next_u64(), second.next_u64());
/// assert!(first.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A uniform integer in `0..bound` (`bound` > 0), without modulo bias
    /// worth mentioning (Lemire's multiply-shift).
    pub fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for position in (1..items.len()).rev() {
            let other = self.below(position + 1);
            items.swap(position, other);
        }
    }

    /// `count` distinct indices from `0..population`, in increasing order; all
    /// of them when `count >= population`.
    pub fn sample_indices(&mut self, population: usize, count: usize) -> Vec<usize> {
        if count >= population {
            return (0..population).collect();
        }
        // Partial Fisher-Yates over an index vector: O(population) memory,
        // which is fine for the sizes kernels sample from.
        let mut indices: Vec<usize> = (0..population).collect();
        for position in 0..count {
            let other = position + self.below(population - position);
            indices.swap(position, other);
        }
        indices.truncate(count);
        indices.sort_unstable();
        indices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut generator = SplitMix64::new(1);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let value = generator.below(5);
            seen[value] = true;
        }
        assert!(seen.iter().all(|&was_seen| was_seen));
    }

    #[test]
    fn sample_indices_are_distinct_and_sorted() {
        let mut generator = SplitMix64::new(3);
        let sample = generator.sample_indices(100, 10);
        assert_eq!(sample.len(), 10);
        assert!(sample.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(generator.sample_indices(3, 10), vec![0, 1, 2]);
    }
}
