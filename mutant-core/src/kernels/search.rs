//! The exact kNN engine: dot products by blocked GEMM on faer (one product per
//! query block x dataset tile into a reused buffer), combined with per-row
//! norms into ranking keys, a bounded top-k per query, and a final exact
//! re-measure of the few surviving candidates. Where the CPU has AVX-512
//! BF16, the products come from `bf16`'s kernel instead, raised by their
//! error bound, so the keys are lower bounds: the re-measure then checks
//! that no dropped row could have been nearer, and a query it cannot prove
//! is searched again in f32 ([`proven_lists`]).
//!
//! Work is split into items (a query block x a contiguous split of the
//! dataset); items are claimed by worker threads, each with its own buffers,
//! and the per-split candidate lists of a query block are merged at the end.
//! Everything is deterministic: candidates are ordered by `(key, row)` and the
//! final lists by `(distance, row)`, whatever the thread count.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::bf16::{Bf16Products, ErrorBound, PANEL_ROWS, Packed};
use super::neighbours::NeighbourLists;
use super::progress::{Execution, parallel_map};
use super::symmetric;
use super::topk::{CandidateLists, by_key_then_row};
use super::view::{DatasetView, Metric};

/// The centre that l2 searches subtract from every vector before the GEMM,
/// when the data sits far from the origin: `|x|^2 + |y|^2 - 2 x.y` then keeps
/// its digits. `None` when centring is not worth a copy of the dataset. One
/// pass over the matrix, in blocks of rows on the execution's threads.
pub(crate) fn l2_centre(
    dataset: &DatasetView<'_>,
    execution: &Execution<'_>,
) -> Result<Option<Vec<f32>>> {
    const BLOCK_ROWS: usize = 4096;
    let dimension = dataset.dimension();
    let vectors = dataset.vectors();
    let n_rows = dataset.n_rows();
    let blocks = parallel_map(
        execution.threads(),
        n_rows.div_ceil(BLOCK_ROWS),
        || (),
        |_, block_idx| {
            execution.check_cancelled()?;
            let start = block_idx * BLOCK_ROWS;
            let end = (start + BLOCK_ROWS).min(n_rows);
            let mut sums = vec![0.0f64; dimension];
            let mut squared_norms = 0.0f64;
            for row in vectors[start * dimension..end * dimension].chunks_exact(dimension) {
                for (sum, &value) in sums.iter_mut().zip(row) {
                    *sum += f64::from(value);
                    squared_norms += f64::from(value) * f64::from(value);
                }
            }
            Ok((sums, squared_norms))
        },
    )?;
    let mut sums = vec![0.0f64; dimension];
    let mut squared_norms = 0.0f64;
    for (block_sums, block_squared) in blocks {
        for (sum, block_sum) in sums.iter_mut().zip(block_sums) {
            *sum += block_sum;
        }
        squared_norms += block_squared;
    }
    let n_rows = n_rows as f64;
    let mean: Vec<f64> = sums.iter().map(|sum| sum / n_rows).collect();
    let mean_squared_norm: f64 = mean.iter().map(|value| value * value).sum();
    let spread = squared_norms / n_rows - mean_squared_norm;
    // Rounding error grows with |x|^2 = |mean|^2 + spread; centring pays for
    // its copy once the mean dominates.
    Ok((mean_squared_norm > 4.0 * spread.max(0.0))
        .then(|| mean.iter().map(|&value| value as f32).collect()))
}

/// `vectors` minus `centre`, row by row.
pub(crate) fn centred(vectors: &[f32], centre: &[f32]) -> Vec<f32> {
    let mut copy = vectors.to_vec();
    for row in copy.chunks_exact_mut(centre.len()) {
        for (value, &offset) in row.iter_mut().zip(centre) {
            *value -= offset;
        }
    }
    copy
}
use crate::Result;

/// Queries per GEMM call (the `m` of the product).
const QUERY_BLOCK: usize = 512;
/// Dot products per GEMM call (query block x dataset tile): the buffer they
/// land in stays in L2 while it is scanned.
const TILE_PRODUCTS: usize = 128 * 1024;
/// Bounds of the dataset rows per GEMM call (the `n` of the product): 256
/// for full query blocks, more for small batches so that a single query does
/// not pay a call per few rows.
const MIN_DATASET_TILE: usize = 256;
const MAX_DATASET_TILE: usize = 8192;
/// Tiles per thread at least, where the rows allow: a few queries' work
/// splits into items of whole tiles, and one tile more on one thread than
/// on another would be a share of the whole search.
const TILES_PER_THREAD: usize = 16;

/// The dataset rows per GEMM call for query blocks of `query_block`.
fn dataset_tile(query_block: usize, n_rows: usize, threads: usize) -> usize {
    (TILE_PRODUCTS / query_block)
        .min(n_rows.div_ceil(TILES_PER_THREAD * threads.max(1)))
        .clamp(MIN_DATASET_TILE, MAX_DATASET_TILE)
}

/// Lanes checked together against a query's threshold before the slow path.
const SCAN_CHUNK: usize = 16;

/// Where the queries come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QuerySource<'a> {
    /// Vectors from outside the dataset, row-major.
    External(&'a [f32]),
    /// The dataset's own rows; a row is never its own neighbour.
    DatasetRows,
}

/// Everything a search needs, fixed for one call.
pub(crate) struct SearchPlan<'a> {
    /// The dataset as given: the final candidates are re-measured on it.
    pub(crate) dataset: DatasetView<'a>,
    /// The matrix the GEMM reads: the dataset, or a centred copy of it (l2).
    pub(crate) gemm_rows: &'a [f32],
    /// The query matrix the GEMM reads (centred like `gemm_rows`); for
    /// [`QuerySource::DatasetRows`] this is `gemm_rows`.
    pub(crate) gemm_queries: &'a [f32],
    pub(crate) metric: Metric,
    /// Per dataset row: the squared norm (l2), the inverse norm (cosine, 0 for
    /// a zero vector) or nothing (dot).
    pub(crate) row_terms: &'a [f32],
    pub(crate) queries: QuerySource<'a>,
    pub(crate) n_queries: usize,
    pub(crate) k: usize,
    pub(crate) filter: Option<&'a [bool]>,
    /// The CPU's bf16 products, where it has them: a search of more than a
    /// few outside queries then filters with them (see [`run`]), and of
    /// fewer where `packed_rows` is given.
    pub(crate) bf16: Option<Bf16Products>,
    /// `gemm_rows` packed for the filter ([`Packed::rows`]), if they were
    /// kept; a search that filters without them packs them itself.
    pub(crate) packed_rows: Option<&'a Packed>,
}

/// The term of one row that turns its dot products into ranking keys: its
/// squared norm (l2), its inverse norm (cosine, 0 for a zero vector), or 0
/// (dot, which needs none).
pub(crate) fn row_term(row: &[f32], metric: Metric) -> f32 {
    let squared: f32 = row.iter().map(|&value| value * value).sum();
    match metric {
        Metric::L2 => squared,
        Metric::Cosine if squared > 0.0 => 1.0 / squared.sqrt(),
        Metric::Cosine | Metric::Dot => 0.0,
    }
}

/// Computes the per-row terms that turn dot products into ranking keys, for
/// the row-major `vectors` of rows of `dimension` values.
pub(crate) fn row_terms(
    vectors: &[f32],
    dimension: usize,
    metric: Metric,
    execution: &Execution<'_>,
) -> Result<Vec<f32>> {
    if metric == Metric::Dot {
        return Ok(Vec::new());
    }
    let n_rows = vectors.len() / dimension;
    let chunk_rows = 4096;
    let n_chunks = n_rows.div_ceil(chunk_rows);
    let chunks = parallel_map(
        execution.threads(),
        n_chunks,
        || (),
        |_, chunk_idx| {
            execution.check_cancelled()?;
            let start = chunk_idx * chunk_rows;
            let end = (start + chunk_rows).min(n_rows);
            let rows = &vectors[start * dimension..end * dimension];
            Ok(rows
                .chunks_exact(dimension)
                .map(|row| row_term(row, metric))
                .collect::<Vec<f32>>())
        },
    )?;
    Ok(chunks.concat())
}

/// The peak working memory of one search, in bytes, as [`run`] plans it:
/// each worker's dot-product tile and candidate lists, the candidate lists
/// of every (query block, split) item, the final lists, and, for l2 data,
/// the centred copies of the dataset and of external queries (counted
/// whether or not the data sits far enough from the origin to need them),
/// and the dataset's bf16 copy with the packed queries (counted whether or
/// not the CPU has the filter).
/// A self-kNN graph (`external_queries` false) is planned by `symmetric`.
pub(crate) fn search_peak_bytes(
    n_queries: usize,
    n_rows: usize,
    dimension: usize,
    k: usize,
    threads: usize,
    external_queries: bool,
) -> u64 {
    let k = k.min(n_rows).max(1);
    if !external_queries {
        return symmetric::peak_bytes(n_rows, dimension, k, threads);
    }
    // Planned for the bf16 filter's lists, the longer ones, whichever runs.
    let capacity = bounded_capacity(k).max(candidate_capacity(k)) as u64;
    let n_query_blocks = n_queries.div_ceil(QUERY_BLOCK).max(1);
    let query_block = n_queries.div_ceil(n_query_blocks).max(1);
    let dataset_tile = dataset_tile(query_block, n_rows, threads);
    let n_tiles = n_rows.div_ceil(dataset_tile).max(1);
    let n_splits = if threads <= 1 {
        1
    } else {
        (4 * threads).div_ceil(n_query_blocks).clamp(1, n_tiles)
    } as u64;
    let (n_queries, threads) = (n_queries as u64, threads.max(1) as u64);
    let candidate_bytes = CandidateLists::bytes_per_list(capacity as usize);
    let packed_queries = Packed::bytes_for(query_block, dimension);
    let workers = threads
        * (4 * (query_block * (dataset_tile + PANEL_ROWS)) as u64
            + candidate_bytes * query_block as u64
            + packed_queries);
    let packed_rows = Packed::bytes_for(n_rows, dimension);
    let items = n_queries * n_splits * candidate_bytes;
    let lists = n_queries * (8 * k as u64 + 4) + threads * candidate_bytes * n_splits;
    let copies = 4 * ((n_rows + n_queries as usize) * dimension) as u64 + 8 * n_rows as u64;
    workers + items + lists + copies + packed_rows
}

/// Buffers one worker reuses across items.
struct WorkerBuffers {
    dots: Vec<f32>,
    candidates: CandidateLists,
    /// The item's queries, for the bf16 filter.
    packed_queries: Packed,
}

/// The candidates kept per query for `k` neighbours: a few spare ones
/// absorb the rounding of the GEMM expansion before the exact re-measure
/// decides the final order.
pub(crate) fn candidate_capacity(k: usize) -> usize {
    k + k.clamp(4, 32)
}

/// The candidates kept per query when the keys are bf16 lower bounds: the
/// rows whose bound falls below the k-th exact key must all fit, or the
/// query is searched again in f32. Measured with k = 10 and 11: 100,000
/// uniform rows of 384 values need up to 16 more than k for most queries
/// and more for 3% of them (none failed at 32 more); scikit-learn's digits
/// and breast cancer sets, every metric, none failed at 32 more (1% at 16).
/// More costs offers in every scan (k + 74 took 20% longer than k + 32).
pub(crate) fn bounded_capacity(k: usize) -> usize {
    k + k.max(32)
}

/// Runs the search and returns per-query lists of at most `k` neighbours.
/// The dataset's own rows as queries (a self-kNN graph) take the symmetric
/// path, which computes each pair's product once.
pub(crate) fn run(plan: &SearchPlan<'_>, execution: &Execution<'_>) -> Result<NeighbourLists> {
    if let QuerySource::DatasetRows = plan.queries {
        return symmetric::self_graph(plan, execution);
    }
    Ok(search_outside(plan, execution)?.0)
}

/// A search for outside queries, and how many of them the bf16 filter left
/// unproven (searched again in f32).
fn search_outside(
    plan: &SearchPlan<'_>,
    execution: &Execution<'_>,
) -> Result<(NeighbourLists, usize)> {
    let n_rows = plan.dataset.n_rows();
    let dimension = plan.dataset.dimension();

    let n_query_blocks = plan.n_queries.div_ceil(QUERY_BLOCK).max(1);
    let query_block = plan.n_queries.div_ceil(n_query_blocks).max(1);
    // A few queries read the matrix row by row (`FewQueryDots`), which
    // packing it to bf16 would only slow down; packed already, it is half
    // the bytes to read.
    let products = plan
        .bf16
        .filter(|_| query_block > FEW_QUERIES || plan.packed_rows.is_some());
    let capacity = match products {
        Some(_) => bounded_capacity(plan.k),
        None => candidate_capacity(plan.k),
    };
    // The dataset in bf16, once for every query block; its tiles start on
    // its panels.
    let packed_here = products
        .filter(|_| plan.packed_rows.is_none())
        .map(|_| Packed::rows(plan.gemm_rows, dimension, execution.threads()));
    let packed_rows = plan.packed_rows.or(packed_here.as_ref());
    let dataset_tile = match products {
        Some(_) => {
            dataset_tile(query_block, n_rows, execution.threads()).next_multiple_of(PANEL_ROWS)
        }
        None => dataset_tile(query_block, n_rows, execution.threads()),
    };
    let n_tiles = n_rows.div_ceil(dataset_tile).max(1);
    let n_splits = if execution.threads() == 1 {
        1
    } else {
        (4 * execution.threads())
            .div_ceil(n_query_blocks)
            .clamp(1, n_tiles)
    };
    let tiles_per_split = n_tiles.div_ceil(n_splits);
    let n_items = n_query_blocks * n_splits;
    let stage = execution.stage(0.0, 1.0, n_query_blocks * n_tiles);

    let item_candidates = parallel_map(
        execution.threads(),
        n_items,
        || WorkerBuffers {
            dots: vec![0.0; query_block * dataset_tile],
            candidates: CandidateLists::new(query_block, capacity),
            packed_queries: Packed::default(),
        },
        |buffers, item_idx| {
            let block_idx = item_idx / n_splits;
            let split_idx = item_idx % n_splits;
            let query_start = block_idx * query_block;
            let query_end = (query_start + query_block).min(plan.n_queries);
            let tile_start = split_idx * tiles_per_split;
            let tile_end = ((split_idx + 1) * tiles_per_split).min(n_tiles);
            buffers.candidates.reset(query_end - query_start);
            if products.is_some() {
                buffers.packed_queries.pack_queries(
                    &plan.gemm_queries[query_start * dimension..query_end * dimension],
                    dimension,
                );
            }
            for tile_idx in tile_start..tile_end {
                let row_start = tile_idx * dataset_tile;
                let row_end = (row_start + dataset_tile).min(n_rows);
                scan_tile(
                    plan,
                    products.zip(packed_rows),
                    buffers,
                    query_start..query_end,
                    row_start..row_end,
                    dimension,
                );
                stage.advance(1)?;
            }
            Ok(buffers.candidates.clone())
        },
    )?;

    let gather = |query_idx: usize, merged: &mut Vec<(f32, u32)>| {
        let block_idx = query_idx / query_block;
        for split_idx in 0..n_splits {
            let candidates = &item_candidates[block_idx * n_splits + split_idx];
            merged.extend_from_slice(candidates.get(query_idx - block_idx * query_block));
        }
    };
    match products {
        Some(_) => proven_lists(plan, capacity, execution, gather),
        None => Ok((measured_lists(plan, capacity, execution, gather)?, 0)),
    }
}

/// [`measured_lists`] for candidates whose keys are bf16 lower bounds: the
/// lists, with every query they do not prove searched again in f32, and how
/// many were.
pub(crate) fn proven_lists(
    plan: &SearchPlan<'_>,
    capacity: usize,
    execution: &Execution<'_>,
    gather: impl Fn(usize, &mut Vec<(f32, u32)>) + Sync,
) -> Result<(NeighbourLists, usize)> {
    let query_scales = query_scales(plan, execution)?;
    let (mut lists, unproven) =
        checked_lists(plan, capacity, Some(&query_scales), execution, gather)?;
    if !unproven.is_empty() {
        research_in_f32(plan, &unproven, &mut lists, execution)?;
    }
    Ok((lists, unproven.len()))
}

/// Per query, what turns its exact distance into the scale of the keys:
/// the squared norm of the (centred) query for l2, its norm for cosine,
/// nothing for dot (whose key is its distance).
fn query_scales(plan: &SearchPlan<'_>, execution: &Execution<'_>) -> Result<Vec<f32>> {
    let dimension = plan.dataset.dimension();
    let squared_norms = parallel_map(
        execution.threads(),
        plan.n_queries.div_ceil(MEASURE_BLOCK),
        || (),
        |_, block_idx| {
            execution.check_cancelled()?;
            let queries =
                block_idx * MEASURE_BLOCK..((block_idx + 1) * MEASURE_BLOCK).min(plan.n_queries);
            Ok(
                plan.gemm_queries[queries.start * dimension..queries.end * dimension]
                    .chunks_exact(dimension)
                    .map(|query| {
                        query
                            .iter()
                            .map(|&value| f64::from(value).powi(2))
                            .sum::<f64>()
                    })
                    .collect::<Vec<f64>>(),
            )
        },
    )?;
    Ok(squared_norms
        .into_iter()
        .flatten()
        .map(|squared| match plan.metric {
            Metric::L2 => squared as f32,
            Metric::Cosine => squared.sqrt() as f32,
            Metric::Dot => 0.0,
        })
        .collect())
}

/// The exact key of a distance, raised past the rounding of the distance
/// and of this conversion: what a dropped row's lower bound must exceed.
fn key_upper(metric: Metric, distance: f32, query_scale: f32) -> f64 {
    let (distance, scale) = (f64::from(distance), f64::from(query_scale));
    let (key, magnitude) = match metric {
        Metric::L2 => (distance * distance - scale, distance * distance + scale),
        Metric::Cosine => ((distance - 1.0) * scale, scale),
        Metric::Dot => (distance, distance.abs()),
    };
    key + magnitude * 2f64.powi(-20)
}

/// Searches again, with f32 products, the queries whose bf16 filter could not
/// prove its answer (`unproven`), and puts their lists in place. The rows of
/// a self graph search as outside queries, with one neighbour more, since
/// each finds itself, which its list then leaves out.
fn research_in_f32(
    plan: &SearchPlan<'_>,
    unproven: &[usize],
    lists: &mut NeighbourLists,
    execution: &Execution<'_>,
) -> Result<()> {
    let dimension = plan.dataset.dimension();
    let mut queries = Vec::with_capacity(unproven.len() * dimension);
    let mut gemm_queries = Vec::with_capacity(unproven.len() * dimension);
    for &query_idx in unproven {
        queries.extend_from_slice(query_vector(plan, query_idx, dimension));
        gemm_queries.extend_from_slice(
            &plan.gemm_queries[query_idx * dimension..(query_idx + 1) * dimension],
        );
    }
    let self_rows = matches!(plan.queries, QuerySource::DatasetRows);
    let f32_plan = SearchPlan {
        gemm_queries: &gemm_queries,
        queries: QuerySource::External(&queries),
        n_queries: unproven.len(),
        k: (plan.k + usize::from(self_rows)).min(plan.dataset.n_rows()),
        bf16: None,
        packed_rows: None,
        ..*plan
    };
    // Progress has reached its end; the few queries searched again stay there.
    let researched = run(&f32_plan, &execution.part(1.0, 1.0))?;
    for (researched_idx, &query_idx) in unproven.iter().enumerate() {
        let neighbours = researched
            .rows(researched_idx)
            .iter()
            .copied()
            .zip(researched.distances(researched_idx).iter().copied())
            .filter(|&(row, _)| !(self_rows && row as usize == query_idx))
            .take(plan.k);
        lists.replace_list(query_idx, neighbours);
    }
    Ok(())
}

/// The exact distances of a query's candidates `(key, row)`, written over
/// their keys, as a pulp operation: compiled for the CPU's SIMD.
struct Remeasure<'p, 'a, 'c> {
    plan: &'p SearchPlan<'a>,
    query: &'a [f32],
    candidates: &'c mut [(f32, u32)],
}

impl pulp::WithSimd for Remeasure<'_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for candidate in self.candidates.iter_mut() {
            candidate.0 = self
                .plan
                .metric
                .distance(self.query, self.plan.dataset.row(candidate.1 as usize));
        }
    }
}

/// Queries per item of [`measured_lists`].
const MEASURE_BLOCK: usize = 512;

/// The final lists: each query's candidates, gathered by `gather(query_idx,
/// merged)` (appending `(key, row)` pairs to `merged`), cut to the
/// `capacity` best by key, measured exactly and cut to the nearest `k`.
/// Per-query work, so a block of queries an item, on every thread.
pub(crate) fn measured_lists(
    plan: &SearchPlan<'_>,
    capacity: usize,
    execution: &Execution<'_>,
    gather: impl Fn(usize, &mut Vec<(f32, u32)>) + Sync,
) -> Result<NeighbourLists> {
    Ok(checked_lists(plan, capacity, None, execution, gather)?.0)
}

/// [`measured_lists`], and where the keys are lower bounds (`query_scales`
/// given, see [`query_scales`]), the queries whose lists they do not prove:
/// where some row was dropped whose bound is not above the k-th exact key.
fn checked_lists(
    plan: &SearchPlan<'_>,
    capacity: usize,
    query_scales: Option<&[f32]>,
    execution: &Execution<'_>,
    gather: impl Fn(usize, &mut Vec<(f32, u32)>) + Sync,
) -> Result<(NeighbourLists, Vec<usize>)> {
    let (k, dimension) = (plan.k, plan.dataset.dimension());
    let block_lists = parallel_map(
        execution.threads(),
        plan.n_queries.div_ceil(MEASURE_BLOCK),
        || Vec::with_capacity(2 * capacity),
        |merged: &mut Vec<(f32, u32)>, block_idx| {
            execution.check_cancelled()?;
            let queries =
                block_idx * MEASURE_BLOCK..((block_idx + 1) * MEASURE_BLOCK).min(plan.n_queries);
            let mut lengths = Vec::with_capacity(queries.len());
            let mut nearest = Vec::with_capacity(queries.len() * k);
            let mut unproven = Vec::new();
            let arch = pulp::Arch::new();
            for query_idx in queries {
                merged.clear();
                gather(query_idx, merged);
                // Every row not kept, here or by a list that was ever cut,
                // has a key at least the last kept one's (when any was
                // dropped: a list that was cut holds `capacity` or more).
                let dropped_above = if merged.len() >= capacity {
                    merged.select_nth_unstable_by(capacity - 1, by_key_then_row);
                    merged.truncate(capacity);
                    merged[capacity - 1].0
                } else {
                    f32::INFINITY
                };
                arch.dispatch(Remeasure {
                    plan,
                    query: query_vector(plan, query_idx, dimension),
                    candidates: merged,
                });
                merged.sort_unstable_by(by_key_then_row);
                let length = merged.len().min(k);
                if let Some(scales) = query_scales
                    && length > 0
                    && dropped_above.is_finite()
                    && key_upper(plan.metric, merged[length - 1].0, scales[query_idx])
                        >= f64::from(dropped_above)
                {
                    unproven.push(query_idx);
                }
                lengths.push(length);
                nearest.extend(
                    merged[..length]
                        .iter()
                        .map(|&(distance, row)| (row, distance)),
                );
            }
            Ok((lengths, nearest, unproven))
        },
    )?;
    let mut lists =
        NeighbourLists::with_capacity(plan.n_queries, k, plan.metric, plan.dataset.n_rows());
    let mut all_unproven = Vec::new();
    for (lengths, nearest, unproven) in block_lists {
        let mut start = 0;
        for length in lengths {
            lists.push_list(nearest[start..start + length].iter().copied());
            start += length;
        }
        all_unproven.extend(unproven);
    }
    Ok((lists, all_unproven))
}

fn query_vector<'a>(plan: &SearchPlan<'a>, query_idx: usize, dimension: usize) -> &'a [f32] {
    match plan.queries {
        QuerySource::External(vectors) => {
            &vectors[query_idx * dimension..(query_idx + 1) * dimension]
        }
        QuerySource::DatasetRows => plan.dataset.row(query_idx),
    }
}

/// One GEMM (queries x tile rows) and the scan of its results into the
/// candidate lists.
fn scan_tile(
    plan: &SearchPlan<'_>,
    bf16: Option<(Bf16Products, &Packed)>,
    buffers: &mut WorkerBuffers,
    query_range: std::ops::Range<usize>,
    row_range: std::ops::Range<usize>,
    dimension: usize,
) {
    let n_block_queries = query_range.len();
    let n_tile_rows = row_range.len();
    let query_values =
        &plan.gemm_queries[query_range.start * dimension..query_range.end * dimension];
    let tile_values = &plan.gemm_rows[row_range.start * dimension..row_range.end * dimension];
    let dots = &mut buffers.dots[..n_block_queries * n_tile_rows];
    if let Some((products, packed_rows)) = bf16 {
        // Each product raised by its error bound: the keys below are lower
        // bounds of the exact ones.
        let bound = ErrorBound::new(dimension, plan.metric == Metric::L2);
        products.bounded_dots(
            buffers.packed_queries.range(0..n_block_queries),
            packed_rows.range(row_range.clone()),
            bound,
            dots,
            n_tile_rows,
        );
    } else if n_block_queries <= FEW_QUERIES {
        pulp::Arch::new().dispatch(FewQueryDots {
            queries: query_values,
            rows: tile_values,
            dimension,
            dots,
        });
    } else {
        matmul(
            MatMut::from_row_major_slice_mut(dots, n_block_queries, n_tile_rows),
            Accum::Replace,
            MatRef::from_row_major_slice(query_values, n_block_queries, dimension),
            MatRef::from_column_major_slice(tile_values, dimension, n_tile_rows),
            1.0f32,
            Par::Seq,
        );
    }
    let terms = if plan.metric == Metric::Dot {
        &[][..]
    } else {
        &plan.row_terms[row_range.clone()]
    };
    let filter = plan.filter.map(|mask| &mask[row_range.clone()]);
    // The scan compiled for the widest SIMD the CPU has (pulp's dispatch).
    pulp::Arch::new().dispatch(TileScan {
        dots,
        n_tile_rows,
        terms,
        first_row: row_range.start,
        filter,
        metric: plan.metric,
        candidates: &mut buffers.candidates,
    });
}

/// Up to this many queries, a tile's dot products are computed row by row
/// ([`FewQueryDots`]) instead of by GEMM.
const FEW_QUERIES: usize = 8;

/// The dot products of a few queries with every row of a tile, reading each
/// row once while the queries stay in L1: for a handful of queries the
/// search is a read of the matrix, and GEMM's packing of the tile would read
/// it twice. Row-major output, a row of the tile's products per query.
struct FewQueryDots<'t> {
    queries: &'t [f32],
    rows: &'t [f32],
    dimension: usize,
    dots: &'t mut [f32],
}

/// Independent sums per dot product, so that the adds do not wait on each
/// other.
const DOT_LANES: usize = 32;

impl pulp::WithSimd for FewQueryDots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let FewQueryDots {
            queries,
            rows,
            dimension,
            dots,
        } = self;
        let n_tile_rows = rows.len() / dimension;
        for (row_idx, row) in rows.chunks_exact(dimension).enumerate() {
            for (query_idx, query) in queries.chunks_exact(dimension).enumerate() {
                let mut lanes = [0.0f32; DOT_LANES];
                let (row_blocks, row_rest) = row.as_chunks::<DOT_LANES>();
                let (query_blocks, query_rest) = query.as_chunks::<DOT_LANES>();
                for (row_block, query_block) in row_blocks.iter().zip(query_blocks) {
                    for lane in 0..DOT_LANES {
                        lanes[lane] = row_block[lane].mul_add(query_block[lane], lanes[lane]);
                    }
                }
                let rest: f32 = row_rest
                    .iter()
                    .zip(query_rest)
                    .map(|(&value, &query_value)| value * query_value)
                    .sum();
                dots[query_idx * n_tile_rows + row_idx] = lanes.iter().sum::<f32>() + rest;
            }
        }
    }
}

/// The scan of one tile of dot products into the queries' candidate lists,
/// as a pulp operation: its body is inlined into code compiled for the CPU's
/// SIMD (AVX2 and FMA where it has them).
struct TileScan<'t> {
    /// Row-major, a row of the tile's dot products per query.
    dots: &'t [f32],
    n_tile_rows: usize,
    terms: &'t [f32],
    first_row: usize,
    filter: Option<&'t [bool]>,
    metric: Metric,
    candidates: &'t mut CandidateLists,
}

impl pulp::WithSimd for TileScan<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let TileScan {
            dots,
            n_tile_rows,
            terms,
            first_row,
            filter,
            metric,
            candidates,
        } = self;
        for (local_query, query_dots) in dots.chunks_exact(n_tile_rows).enumerate() {
            match metric {
                Metric::L2 => scan_row(
                    query_dots,
                    terms,
                    first_row,
                    local_query,
                    filter,
                    candidates,
                    |dot, term| term - 2.0 * dot,
                ),
                Metric::Cosine => scan_row(
                    query_dots,
                    terms,
                    first_row,
                    local_query,
                    filter,
                    candidates,
                    |dot, term| -dot * term,
                ),
                Metric::Dot => scan_dot_row(query_dots, first_row, local_query, filter, candidates),
            }
        }
    }
}

/// Scans one query's dot products against a tile: computes keys a chunk at a
/// time and only takes the slow path when some lane beats the threshold.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn scan_row(
    dots: &[f32],
    terms: &[f32],
    first_row: usize,
    local_query: usize,
    filter: Option<&[bool]>,
    candidates: &mut CandidateLists,
    key_of: impl Fn(f32, f32) -> f32,
) {
    let mut threshold = candidates.threshold(local_query);
    let mut keys = [0.0f32; SCAN_CHUNK];
    let mut chunk_start = 0;
    while chunk_start < dots.len() {
        let chunk_len = SCAN_CHUNK.min(dots.len() - chunk_start);
        let any_below = if chunk_len == SCAN_CHUNK {
            let dot_chunk = &dots[chunk_start..chunk_start + SCAN_CHUNK];
            let term_chunk = &terms[chunk_start..chunk_start + SCAN_CHUNK];
            let mut any_below = false;
            for lane in 0..SCAN_CHUNK {
                keys[lane] = key_of(dot_chunk[lane], term_chunk[lane]);
                any_below |= keys[lane] < threshold;
            }
            any_below
        } else {
            for lane in 0..chunk_len {
                keys[lane] = key_of(dots[chunk_start + lane], terms[chunk_start + lane]);
            }
            true
        };
        if any_below {
            for (lane, &key) in keys[..chunk_len].iter().enumerate() {
                let local_row = chunk_start + lane;
                if key < threshold && filter.is_none_or(|mask| mask[local_row]) {
                    candidates.offer(local_query, key, (first_row + local_row) as u32);
                    threshold = candidates.threshold(local_query);
                }
            }
        }
        chunk_start += chunk_len;
    }
}

/// [`scan_row`] for the dot metric, whose key is the negated dot product.
#[inline(always)]
fn scan_dot_row(
    dots: &[f32],
    first_row: usize,
    local_query: usize,
    filter: Option<&[bool]>,
    candidates: &mut CandidateLists,
) {
    // The dot metric has no per-row term; reuse the generic scan with the dots
    // standing in for the (ignored) terms.
    scan_row(
        dots,
        dots,
        first_row,
        local_query,
        filter,
        candidates,
        |dot, _| -dot,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::random::SplitMix64;

    /// Searches `queries` in `rows` (l2 terms, no centring) with the
    /// emulated bf16 filter.
    fn filtered(
        rows: &[f32],
        queries: &[f32],
        dimension: usize,
        metric: Metric,
        k: usize,
    ) -> (NeighbourLists, usize) {
        filtered_with(rows, None, queries, dimension, metric, k)
    }

    fn filtered_with(
        rows: &[f32],
        packed_rows: Option<&Packed>,
        queries: &[f32],
        dimension: usize,
        metric: Metric,
        k: usize,
    ) -> (NeighbourLists, usize) {
        let execution = Execution::new().with_threads(2);
        let dataset = DatasetView::new(rows, dimension).unwrap();
        let row_terms = row_terms(rows, dimension, metric, &execution).unwrap();
        let plan = SearchPlan {
            dataset,
            gemm_rows: rows,
            gemm_queries: queries,
            metric,
            row_terms: &row_terms,
            queries: QuerySource::External(queries),
            n_queries: queries.len() / dimension,
            k,
            filter: None,
            bf16: Some(Bf16Products::emulated()),
            packed_rows,
        };
        search_outside(&plan, &execution).unwrap()
    }

    fn exact_rows(
        rows: &[f32],
        query: &[f32],
        dimension: usize,
        metric: Metric,
        k: usize,
    ) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = rows
            .chunks_exact(dimension)
            .enumerate()
            .map(|(row, vector)| (metric.distance(query, vector), row as u32))
            .collect();
        all.sort_by(|left, right| left.0.total_cmp(&right.0).then(left.1.cmp(&right.1)));
        all.iter().take(k).map(|&(_, row)| row).collect()
    }

    #[test]
    fn the_bf16_filter_proves_its_lists_on_spread_out_data() {
        let (n_rows, n_queries, dimension, k) = (3_000, 24, 96, 10);
        let mut random = SplitMix64::new(5);
        let mut values = |count: usize| -> Vec<f32> {
            (0..count)
                .map(|_| (random.next_f64() * 2.0 - 1.0) as f32)
                .collect()
        };
        let (rows, queries) = (values(n_rows * dimension), values(n_queries * dimension));
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            let (lists, researched) = filtered(&rows, &queries, dimension, metric, k);
            assert_eq!(researched, 0, "{metric:?}");
            for (query_idx, query) in queries.chunks_exact(dimension).enumerate() {
                assert_eq!(
                    lists.rows(query_idx),
                    exact_rows(&rows, query, dimension, metric, k)
                );
            }
        }
    }

    /// With the rows packed already (as a dataset's kept terms hold them),
    /// a few queries take the filter too, one of them alone.
    #[test]
    fn a_few_queries_take_the_filter_on_rows_packed_already() {
        let (n_rows, dimension, k) = (1_000, 33, 5);
        let mut random = SplitMix64::new(11);
        let mut values = |count: usize| -> Vec<f32> {
            (0..count)
                .map(|_| (random.next_f64() * 2.0 - 1.0) as f32)
                .collect()
        };
        let rows = values(n_rows * dimension);
        let packed = Packed::rows(&rows, dimension, 2);
        for n_queries in [1, 3, 8] {
            let queries = values(n_queries * dimension);
            for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
                let (lists, researched) =
                    filtered_with(&rows, Some(&packed), &queries, dimension, metric, k);
                assert_eq!(researched, 0, "{metric:?}");
                for (query_idx, query) in queries.chunks_exact(dimension).enumerate() {
                    let expected = exact_rows(&rows, query, dimension, metric, k);
                    assert_eq!(lists.rows(query_idx), expected);
                }
            }
        }
    }

    /// Rows that differ by far less than the bf16 products' error: the
    /// filter cannot tell them apart, proves nothing, and every query is
    /// searched again in f32, which finds the exact neighbours.
    #[test]
    fn queries_the_bf16_filter_cannot_prove_are_searched_again_in_f32() {
        let (n_rows, n_queries, dimension, k) = (400, 12, 16, 3);
        let mut random = SplitMix64::new(9);
        let rows: Vec<f32> = (0..n_rows * dimension)
            .map(|_| 100.0 + (random.next_f64() * 1e-3) as f32)
            .collect();
        let queries: Vec<f32> = (0..n_queries * dimension)
            .map(|_| (random.next_f64() * 2.0 - 1.0) as f32)
            .collect();
        let (lists, researched) = filtered(&rows, &queries, dimension, Metric::Dot, k);
        assert_eq!(researched, n_queries);
        for (query_idx, query) in queries.chunks_exact(dimension).enumerate() {
            assert_eq!(
                lists.rows(query_idx),
                exact_rows(&rows, query, dimension, Metric::Dot, k)
            );
        }
    }
}
