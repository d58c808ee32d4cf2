//! Dot products from bfloat16 copies of the vectors, on the AVX-512 BF16
//! units of CPUs that have them (AMD Zen 4 and later, Intel Cooper Lake and
//! Sapphire Rapids and later): twice the multiply-adds an instruction of f32
//! FMA gives, on half the bytes.
//!
//! A bfloat16 keeps 8 of an f32's 24 significand bits, so these products are
//! not the distances a search returns. The search uses them as a filter
//! with a proven bound: every product comes out raised by
//! [`ErrorBound`]'s bound on its own error, so the key computed from it is
//! never above the exact key. The search keeps the rows whose lower bound
//! is small, measures them exactly, and checks that no row it dropped could
//! have been nearer (`search::run`); a query whose check fails is searched
//! again in f32.
//!
//! This is the one module of the crate with `unsafe` code: the kernel is a
//! `#[target_feature]` function called after the CPU was seen to have the
//! feature, and it loads and stores through pointers whose bounds it checks
//! first. In tests, `Bf16Products::emulated` runs the whole path on any
//! CPU with the kernel in plain Rust, and `reference_dots` checks both.
#![allow(unsafe_code)]

use std::ops::Range;

/// Queries per micro-tile: each query's pairs are broadcast against a
/// panel of rows.
const MICRO_QUERIES: usize = 8;
/// f32 lanes of one AVX-512 register.
const LANES: usize = 16;
/// Registers of rows per micro-tile: 8 queries x 3 registers keep 24 of the
/// 32 registers accumulating.
const PANEL_VECTORS: usize = 3;
/// Dataset rows per packed panel.
pub(crate) const PANEL_ROWS: usize = LANES * PANEL_VECTORS;

/// Proof that this CPU runs AVX-512 BF16: only [`Bf16Products::detect`]
/// makes one (and, in tests, `Bf16Products::emulated`, which computes the
/// same products in plain Rust on any CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bf16Products {
    route: Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Avx512,
    #[cfg(test)]
    Emulated,
}

impl Bf16Products {
    /// `Some` where the CPU has AVX-512 F and BF16 and the environment does
    /// not turn the filter off (`MUTANT_KNN_BF16=0`, for comparisons and for
    /// anyone who wants every product in f32).
    pub(crate) fn detect() -> Option<Self> {
        if std::env::var_os("MUTANT_KNN_BF16").is_some_and(|value| value == "0") {
            return None;
        }
        cpu_has_bf16().then_some(Bf16Products {
            route: Route::Avx512,
        })
    }

    /// The products in plain Rust, one at a time: the search's bf16 path on
    /// any CPU, for tests.
    #[cfg(test)]
    pub(crate) fn emulated() -> Self {
        Bf16Products {
            route: Route::Emulated,
        }
    }

    /// `dots[q * stride + r]` = the bf16 dot product of query
    /// `queries.range.start + q` and row `rows.range.start + r`, raised by
    /// `bound`'s bound on its error, so never below the exact f32 dot product
    /// of the original vectors. The query range starts on a micro-tile
    /// ([`MICRO_QUERIES`]) and the row range on a panel of rows packed
    /// [`Packed::rows`].
    pub(crate) fn bounded_dots(
        self,
        queries: PackedRange<'_>,
        rows: PackedRange<'_>,
        bound: ErrorBound,
        dots: &mut [f32],
        stride: usize,
    ) {
        let (query_range, row_range) = (queries.range, rows.range);
        let (queries, rows) = (queries.packed, rows.packed);
        if query_range.is_empty() {
            return;
        }
        let n_pairs = rows.n_pairs;
        assert_eq!(queries.n_pairs, n_pairs, "packed for one dimension");
        assert_eq!(rows.group, PANEL_ROWS, "rows packed in panels");
        assert!(
            query_range.start.is_multiple_of(MICRO_QUERIES)
                && row_range.start.is_multiple_of(PANEL_ROWS)
        );
        assert!(query_range.end <= queries.n_vectors && row_range.end <= rows.n_vectors);
        assert!(
            stride >= row_range.len()
                && dots.len() >= query_range.len().saturating_sub(1) * stride + row_range.len()
        );
        let mut tile = [0.0f32; MICRO_QUERIES * PANEL_ROWS];
        for first_query in query_range.clone().step_by(MICRO_QUERIES) {
            let block_queries = MICRO_QUERIES.min(query_range.end - first_query);
            let (block, block_stride) = queries.lanes_from(first_query);
            for first_row in row_range.clone().step_by(PANEL_ROWS) {
                let panel_rows = PANEL_ROWS.min(row_range.end - first_row);
                let (panel, _) = rows.lanes_from(first_row);
                let panel = &panel[..n_pairs * PANEL_ROWS];
                match self.route {
                    // A lone query (a single search, or the last of a
                    // batch) does not pay for seven padded ones.
                    Route::Avx512 if block_queries == 1 => {
                        micro_tile::<1>(block, block_stride, panel, &mut tile);
                    }
                    Route::Avx512 => {
                        micro_tile::<MICRO_QUERIES>(block, block_stride, panel, &mut tile);
                    }
                    #[cfg(test)]
                    Route::Emulated => {
                        emulated_micro_tile(block, block_stride, panel, &mut tile);
                    }
                }
                let norms = &rows.norms[first_row..first_row + panel_rows];
                for local_query in 0..block_queries {
                    let query_norm = queries.norms[first_query + local_query];
                    let per_row_norm = bound.per_product * query_norm + bound.per_norm;
                    let per_query = query_norm
                        * (bound.per_squared_norm * query_norm + bound.per_norm)
                        + bound.absolute;
                    let out_start = (first_query - query_range.start + local_query) * stride
                        + first_row
                        - row_range.start;
                    let out = &mut dots[out_start..][..panel_rows];
                    let products = &tile[local_query * PANEL_ROWS..][..panel_rows];
                    for ((out, &product), &norm) in out.iter_mut().zip(products).zip(norms) {
                        *out = product
                            + norm * (per_row_norm + bound.per_squared_norm * norm)
                            + per_query;
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_bf16() -> bool {
    false
}

/// How far a bf16 dot product may stray from the f32 one, as the search
/// needs it, for vectors `q` and `x`:
/// `per_product * |q| * |x| + per_squared_norm * (|q|^2 + |x|^2) +
/// per_norm * (|q| + |x|) + absolute`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ErrorBound {
    per_product: f32,
    per_squared_norm: f32,
    per_norm: f32,
    absolute: f32,
}

impl ErrorBound {
    /// The bound for vectors of `dimension` values; `l2_keys` where the keys
    /// add a squared norm to the product.
    ///
    /// - Rounding a value to bf16 moves it by at most 2^-8 of itself, so a
    ///   product of two moves by at most 2^-7 + 2^-16 of `|q_i x_i|`, and
    ///   the sum of `|q_i x_i|` is at most `|q| |x|` (Cauchy-Schwarz). The
    ///   products of two bf16 are exact in f32; their f32 sum adds at most
    ///   `dimension` roundings of 2^-24 of the same sum. `per_product`
    ///   doubles the latter, which also covers the keys' f32 arithmetic.
    /// - An l2 key `|x|^2 - 2 q.x` is rounded in f32 with `|x|^2` in it:
    ///   `per_squared_norm` covers it for either vector's key (a self graph
    ///   shares one product between two rows' lists).
    /// - The instruction reads values under 2^-126 (f32 subnormals) as zero
    ///   and flushes such sums: at most `2^-126 * sqrt(dimension)` of each
    ///   norm, and `2^-126` a step.
    pub(crate) fn new(dimension: usize, l2_keys: bool) -> Self {
        let roundings = (dimension + 8) as f32;
        let smallest_normal = f32::MIN_POSITIVE;
        ErrorBound {
            per_product: 2f32.powi(-7) + 2f32.powi(-16) + roundings * 2f32.powi(-23),
            per_squared_norm: if l2_keys { 2f32.powi(-21) } else { 0.0 },
            per_norm: smallest_normal * (dimension as f32).sqrt() * 2.0,
            absolute: smallest_normal * roundings * 2.0,
        }
    }
}

/// The f32 norm of `vector` raised by the most its f32 rounding can have
/// taken off, so that bounds built on it hold. Summed in independent lanes,
/// which the compiler vectorizes.
fn norm_upper(vector: &[f32]) -> f32 {
    const SUM_LANES: usize = 16;
    let mut lanes = [0.0f32; SUM_LANES];
    let (chunks, rest) = vector.as_chunks::<SUM_LANES>();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += value * value;
        }
    }
    let squared: f32 =
        lanes.iter().sum::<f32>() + rest.iter().map(|value| value * value).sum::<f32>();
    squared.sqrt() * (1.0 + (vector.len() + 4 * SUM_LANES) as f32 * 2f32.powi(-23))
}

/// An f32 rounded to the nearest bf16 (ties to even), as its 16 bits. Finite
/// values only: the data model admits no others.
fn bf16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
    (rounded >> 16) as u16
}

/// The bf16 value with these bits, as an f32.
#[cfg(test)]
fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// A vector's values in bf16, two to a 32-bit lane (the first in the low
/// half, as the BF16 dot product instruction pairs them), the last lane
/// padded with a zero for an odd dimension. A loop the compiler vectorizes.
fn pairs_of(values: &[f32], pairs: &mut [u32]) {
    let (whole, rest) = values.as_chunks::<2>();
    for (pair, &[low, high]) in pairs.iter_mut().zip(whole) {
        *pair = u32::from(bf16_bits(low)) | (u32::from(bf16_bits(high)) << 16);
    }
    if let [last] = rest {
        pairs[whole.len()] = u32::from(bf16_bits(*last));
    }
}

/// Vectors in bf16, interleaved in groups: within a group of `group`
/// vectors, pair `p` of every vector sits side by side, so that one load
/// brings pair `p` of 16 of them. Rows to search are packed in panels of
/// [`PANEL_ROWS`] ([`Packed::rows`]), which also serve as queries (a self
/// graph's blocks); outside queries in groups of [`MICRO_QUERIES`]
/// ([`Packed::pack_queries`]). The last group is padded with zero vectors.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Packed {
    pairs: Vec<u32>,
    norms: Vec<f32>,
    n_vectors: usize,
    n_pairs: usize,
    group: usize,
}

/// Some consecutive vectors of a [`Packed`].
#[derive(Debug, Clone)]
pub(crate) struct PackedRange<'a> {
    packed: &'a Packed,
    range: Range<usize>,
}

/// Writes one vector's pairs into its lane `idx` of the interleaved `pairs`
/// (groups of `group` vectors), counting from the start of `pairs`.
fn write_lanes(pairs: &mut [u32], group: usize, idx: usize, vector_pairs: &[u32]) {
    let n_pairs = vector_pairs.len();
    let group_pairs = &mut pairs[(idx / group) * n_pairs * group..];
    for (pair_idx, &pair) in vector_pairs.iter().enumerate() {
        group_pairs[pair_idx * group + idx % group] = pair;
    }
}

/// Vectors per piece of a parallel [`Packed::rows`]: whole panels.
const PACK_PIECE: usize = 64 * PANEL_ROWS;

impl Packed {
    /// The row-major `rows` of `dimension` values in panels of
    /// [`PANEL_ROWS`], packed on up to `threads` threads.
    pub(crate) fn rows(rows: &[f32], dimension: usize, threads: usize) -> Self {
        let mut packed = Packed::default();
        packed.repack(rows, dimension, PANEL_ROWS, threads);
        packed
    }

    /// Packs the row-major `queries` of `dimension` values in groups of
    /// [`MICRO_QUERIES`], reusing the allocation.
    pub(crate) fn pack_queries(&mut self, queries: &[f32], dimension: usize) {
        self.repack(queries, dimension, MICRO_QUERIES, 1);
    }

    fn repack(&mut self, vectors: &[f32], dimension: usize, group: usize, threads: usize) {
        let n_vectors = vectors.len() / dimension;
        let n_pairs = dimension.div_ceil(2);
        self.n_vectors = n_vectors;
        self.n_pairs = n_pairs;
        self.group = group;
        self.pairs.clear();
        self.pairs
            .resize(n_vectors.div_ceil(group) * n_pairs * group, 0);
        self.norms.clear();
        self.norms.resize(n_vectors, 0.0);
        let pieces = self
            .pairs
            .chunks_mut(PACK_PIECE * n_pairs)
            .zip(self.norms.chunks_mut(PACK_PIECE))
            .zip(vectors.chunks(PACK_PIECE * dimension));
        let pack_piece = |((pairs, norms), vectors): ((&mut [u32], &mut [f32]), &[f32])| {
            let mut vector_pairs = vec![0; n_pairs];
            for (idx, (vector, norm)) in vectors.chunks_exact(dimension).zip(norms).enumerate() {
                pairs_of(vector, &mut vector_pairs);
                write_lanes(pairs, group, idx, &vector_pairs);
                *norm = norm_upper(vector);
            }
        };
        if threads <= 1 || n_vectors <= PACK_PIECE {
            pieces.for_each(pack_piece);
        } else {
            let pieces = std::sync::Mutex::new(pieces);
            std::thread::scope(|scope| {
                let work = || {
                    loop {
                        let piece = pieces.lock().map(|mut pieces| pieces.next());
                        match piece {
                            Ok(Some(piece)) => pack_piece(piece),
                            _ => break,
                        }
                    }
                };
                for _ in 1..threads {
                    scope.spawn(work);
                }
                work();
            });
        }
    }

    /// Brings a [`Packed::rows`] up to date with `rows`, the same matrix
    /// after the vectors `changed` were rewritten: it grows or shrinks to
    /// the matrix, and repacks the changed vectors and any new ones.
    pub(crate) fn update_rows(
        &mut self,
        rows: &[f32],
        dimension: usize,
        changed: impl Iterator<Item = usize>,
    ) {
        let (old_n_vectors, n_vectors) = (self.n_vectors, rows.len() / dimension);
        let group = self.group;
        self.pairs
            .resize(n_vectors.div_ceil(group) * self.n_pairs * group, 0);
        self.norms.resize(n_vectors, 0.0);
        self.n_vectors = n_vectors;
        let mut vector_pairs = vec![0; self.n_pairs];
        let stale = changed.filter(|&idx| idx < old_n_vectors.min(n_vectors));
        for idx in stale.chain(old_n_vectors..n_vectors) {
            let vector = &rows[idx * dimension..(idx + 1) * dimension];
            pairs_of(vector, &mut vector_pairs);
            write_lanes(&mut self.pairs, group, idx, &vector_pairs);
            self.norms[idx] = norm_upper(vector);
        }
        // Lanes past the end stay zero vectors, as a fresh pack leaves them.
        vector_pairs.fill(0);
        for idx in n_vectors
            ..n_vectors
                .next_multiple_of(group)
                .min(old_n_vectors.next_multiple_of(group))
        {
            write_lanes(&mut self.pairs, group, idx, &vector_pairs);
        }
    }

    /// Bytes held.
    pub(crate) fn size_bytes(&self) -> usize {
        self.pairs.capacity() * size_of::<u32>() + self.norms.capacity() * size_of::<f32>()
    }

    /// Vectors `range` of the pack, for [`Bf16Products::bounded_dots`].
    pub(crate) fn range(&self, range: Range<usize>) -> PackedRange<'_> {
        PackedRange {
            packed: self,
            range,
        }
    }

    /// The lanes from vector `first` on (which starts a micro-tile), and the
    /// distance between one pair of them and the next.
    fn lanes_from(&self, first: usize) -> (&[u32], usize) {
        let start = (first / self.group) * self.n_pairs * self.group + first % self.group;
        (&self.pairs[start..], self.group)
    }

    /// Bytes held for `n_vectors` vectors of `dimension` values, packed as
    /// rows or as queries, for memory plans.
    pub(crate) fn bytes_for(n_vectors: usize, dimension: usize) -> u64 {
        (n_vectors.div_ceil(PANEL_ROWS) * PANEL_ROWS * dimension.div_ceil(2) * 4 + n_vectors * 4)
            as u64
    }
}

/// One micro-tile: the products of `QUERIES` (at most [`MICRO_QUERIES`])
/// packed queries (pair `p` of query `j` at `block[p * block_stride + j]`)
/// with a panel of [`PANEL_ROWS`] packed rows, a row of the tile per query.
/// Only called for a [`Route::Avx512`] proof.
#[cfg(target_arch = "x86_64")]
fn micro_tile<const QUERIES: usize>(
    block: &[u32],
    block_stride: usize,
    panel: &[u32],
    tile: &mut [f32; MICRO_QUERIES * PANEL_ROWS],
) {
    // SAFETY: a `Route::Avx512` proof exists only where `detect` saw AVX-512
    // F and BF16 on this CPU, the features `micro_tile_avx512` is compiled
    // for.
    unsafe { micro_tile_avx512::<QUERIES>(block, block_stride, panel, tile) }
}

#[cfg(not(target_arch = "x86_64"))]
fn micro_tile<const QUERIES: usize>(
    _block: &[u32],
    _block_stride: usize,
    _panel: &[u32],
    _tile: &mut [f32; MICRO_QUERIES * PANEL_ROWS],
) {
    unreachable!("Bf16Products::detect never succeeds off x86_64")
}

/// [`micro_tile`] in plain Rust: each lane's pairs multiplied in f32 and
/// summed in order, as the instruction does.
#[cfg(test)]
fn emulated_micro_tile(
    block: &[u32],
    block_stride: usize,
    panel: &[u32],
    tile: &mut [f32; MICRO_QUERIES * PANEL_ROWS],
) {
    let n_pairs = panel.len() / PANEL_ROWS;
    let halves = |lane: u32| (bf16_value(lane as u16), bf16_value((lane >> 16) as u16));
    for query_idx in 0..MICRO_QUERIES {
        for row_idx in 0..PANEL_ROWS {
            let mut sum = 0.0f32;
            for pair_idx in 0..n_pairs {
                let (query_low, query_high) = halves(block[pair_idx * block_stride + query_idx]);
                let (row_low, row_high) = halves(panel[pair_idx * PANEL_ROWS + row_idx]);
                sum += query_high * row_high;
                sum += query_low * row_low;
            }
            tile[query_idx * PANEL_ROWS + row_idx] = sum;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
fn micro_tile_avx512<const QUERIES: usize>(
    block: &[u32],
    block_stride: usize,
    panel: &[u32],
    tile: &mut [f32; MICRO_QUERIES * PANEL_ROWS],
) {
    use std::arch::x86_64::{
        __m512, __m512bh, _mm512_dpbf16_ps, _mm512_loadu_ps, _mm512_set1_epi32, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };
    let n_pairs = panel.len() / PANEL_ROWS;
    assert!(
        QUERIES <= MICRO_QUERIES
            && panel.len() == n_pairs * PANEL_ROWS
            && block_stride >= QUERIES
            && block.len() >= n_pairs.saturating_sub(1) * block_stride + QUERIES
    );
    let mut sums = [[_mm512_setzero_ps(); PANEL_VECTORS]; QUERIES];
    for pair_idx in 0..n_pairs {
        let mut rows = [_mm512_setzero_ps(); PANEL_VECTORS];
        for (vector_idx, row_vector) in rows.iter_mut().enumerate() {
            let offset = pair_idx * PANEL_ROWS + vector_idx * LANES;
            // SAFETY: `offset + 16 <= panel.len()`, since `pair_idx <
            // n_pairs` and the panel holds `n_pairs * PANEL_ROWS` lanes.
            *row_vector = unsafe { _mm512_loadu_ps(panel.as_ptr().add(offset).cast::<f32>()) };
        }
        let query_pairs = &block[pair_idx * block_stride..][..QUERIES];
        for (query_sums, &query_pair) in sums.iter_mut().zip(query_pairs) {
            // SAFETY: `__m512i`, `__m512` and `__m512bh` are all 64 bytes of
            // plain lanes; every bit pattern is a valid value of each.
            let query: __m512bh =
                unsafe { std::mem::transmute(_mm512_set1_epi32(query_pair as i32)) };
            for (sum, row_vector) in query_sums.iter_mut().zip(rows) {
                // SAFETY: as above.
                let row_pairs: __m512bh =
                    unsafe { std::mem::transmute::<__m512, __m512bh>(row_vector) };
                *sum = _mm512_dpbf16_ps(*sum, query, row_pairs);
            }
        }
    }
    for (query_idx, query_sums) in sums.iter().enumerate() {
        for (vector_idx, &sum) in query_sums.iter().enumerate() {
            let offset = query_idx * PANEL_ROWS + vector_idx * LANES;
            // SAFETY: `offset + 16 <= QUERIES * PANEL_ROWS`, within the
            // tile's `MICRO_QUERIES * PANEL_ROWS`.
            unsafe { _mm512_storeu_ps(tile.as_mut_ptr().add(offset), sum) };
        }
    }
}

/// The products [`Bf16Products::bounded_dots`] computes, before the bound is
/// added, in plain Rust: the vectors rounded to bf16, the products summed in
/// f64. For tests, on any CPU.
#[cfg(test)]
pub(crate) fn reference_dots(queries: &[f32], rows: &[f32], dimension: usize) -> Vec<f32> {
    let rounded = |vector: &[f32]| -> Vec<f64> {
        vector
            .iter()
            .map(|&value| f64::from(bf16_value(bf16_bits(value))))
            .collect()
    };
    let queries = rounded(queries);
    let rows = rounded(rows);
    let mut dots = Vec::new();
    for query in queries.chunks_exact(dimension) {
        for row in rows.chunks_exact(dimension) {
            dots.push(query.iter().zip(row).map(|(a, b)| a * b).sum::<f64>() as f32);
        }
    }
    dots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::random::SplitMix64;

    fn vectors(seed: u64, n: usize, dimension: usize, offset: f32) -> Vec<f32> {
        let mut random = SplitMix64::new(seed);
        (0..n * dimension)
            .map(|_| offset + random.next_f64() as f32 - 0.5)
            .collect()
    }

    #[test]
    fn rounding_to_bf16_is_to_nearest_even() {
        assert_eq!(bf16_value(bf16_bits(1.0)), 1.0);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to even (1).
        assert_eq!(bf16_value(bf16_bits(1.0 + 2f32.powi(-8))), 1.0);
        assert_eq!(
            bf16_value(bf16_bits(1.0 + 3.0 * 2f32.powi(-8))),
            1.0 + 2f32.powi(-6)
        );
        assert_eq!(bf16_value(bf16_bits(-3.0)), -3.0);
        let value = 0.123_456_79f32;
        assert!((bf16_value(bf16_bits(value)) - value).abs() <= value * 2f32.powi(-8));
    }

    #[test]
    fn bounded_dots_match_the_reference_and_never_fall_below_the_exact_product() {
        let routes = [Some(Bf16Products::emulated()), Bf16Products::detect()];
        for products in routes.into_iter().flatten() {
            bounded_dots_hold_their_bound(products);
        }
    }

    /// Queries packed as queries and as rows (a self graph's blocks), rows
    /// packed in parallel pieces, ranges that start past the first micro-tile
    /// and panel.
    fn bounded_dots_hold_their_bound(products: Bf16Products) {
        for (dimension, n_queries, n_rows, offset, skip) in [
            (384, 13, 100, 0.0, (0, 0)),
            (7, 9, 49, 3.0, (8, 48)),
            (1, 8, 48, -1.0, (0, 0)),
            (130, 17, 97, 0.25, (16, 48)),
            (4, 9, 3_200, 1.0, (8, 3_072)),
        ] {
            let queries = vectors(1, n_queries, dimension, offset);
            let rows = vectors(2, n_rows, dimension, -offset);
            let mut as_queries = Packed::default();
            as_queries.pack_queries(&queries, dimension);
            let as_rows = Packed::rows(&queries, dimension, 1);
            let packed_rows = Packed::rows(&rows, dimension, 2);
            let bound = ErrorBound::new(dimension, true);
            let (query_range, row_range) = (skip.0..n_queries, skip.1..n_rows);
            let stride = row_range.len() + 3;
            for packed_queries in [&as_queries, &as_rows] {
                let mut dots = vec![f32::NAN; query_range.len() * stride];
                products.bounded_dots(
                    packed_queries.range(query_range.clone()),
                    packed_rows.range(row_range.clone()),
                    bound,
                    &mut dots,
                    stride,
                );
                check_bounded(&queries, &rows, dimension, bound, &dots, stride, skip);
            }
        }
    }

    fn check_bounded(
        queries: &[f32],
        rows: &[f32],
        dimension: usize,
        bound: ErrorBound,
        dots: &[f32],
        stride: usize,
        skip: (usize, usize),
    ) {
        let reference = reference_dots(queries, rows, dimension);
        let n_rows = rows.len() / dimension;
        for (query_idx, query) in queries.chunks_exact(dimension).enumerate().skip(skip.0) {
            for (row_idx, row) in rows.chunks_exact(dimension).enumerate().skip(skip.1) {
                let exact: f64 = query
                    .iter()
                    .zip(row)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let (query_norm, row_norm) =
                    (f64::from(norm_upper(query)), f64::from(norm_upper(row)));
                let norms = query_norm * row_norm;
                let raised = f64::from(dots[(query_idx - skip.0) * stride + row_idx - skip.1]);
                assert!(raised >= exact, "{raised} below the exact {exact}");
                assert!(
                    raised - exact
                        <= 2.0 * f64::from(bound.per_product) * norms + 1e-3 * norms.max(1e-3)
                );
                let unbounded = raised
                    - f64::from(bound.per_product) * norms
                    - f64::from(bound.per_squared_norm) * (query_norm.powi(2) + row_norm.powi(2))
                    - f64::from(bound.per_norm) * (query_norm + row_norm)
                    - f64::from(bound.absolute);
                let expected = f64::from(reference[query_idx * n_rows + row_idx]);
                assert!(
                    (unbounded - expected).abs() <= 1e-5 * norms.max(1.0),
                    "{unbounded} vs the reference {expected} (dimension {dimension})"
                );
            }
        }
    }
}
