//! The self-kNN graph from half the dot products. `x_i . x_j` is one number
//! for row `i`'s list and for row `j`'s, so each pair `i < j` is computed
//! once, by GEMMs over the blocks on and above the diagonal, and offered to
//! both lists in the same pass over the tile.
//!
//! A worker claims blocks of rows (largest first: a block pairs with every
//! row after it) and keeps candidate lists for every row of the dataset,
//! since the pairs of a block reach rows anywhere after it. The workers'
//! lists are merged at the end and the survivors measured exactly, as
//! `search` does for external queries. A row is never its own neighbour:
//! only pairs `i < j` are formed.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::bf16::{Bf16Products, ErrorBound, PANEL_ROWS, Packed};
use super::neighbours::NeighbourLists;
use super::progress::{Execution, Stage, on_threads};
use super::search::{
    SearchPlan, bounded_capacity, candidate_capacity, measured_lists, proven_lists,
};
use super::topk::CandidateLists;
use super::view::Metric;
use crate::Result;

/// Rows of a block (the `m` of each product).
const BLOCK_ROWS: usize = 10 * PANEL_ROWS;
/// Rows of a tile (the `n` of each product): the tile of dot products stays
/// in L2 while it is scanned. Both sizes are whole panels of the bf16
/// filter's packed rows, on which its tiles must start.
const TILE_ROWS: usize = 5 * PANEL_ROWS;
/// Lanes checked together against the thresholds before the slow path.
const SCAN_CHUNK: usize = 16;

/// The peak working memory of [`self_graph`] on `n_rows` rows, in bytes:
/// each worker's candidate lists for every row and its tile, the final
/// lists, the merge's output, the centred copy of l2 data and the bf16 copy.
pub(crate) fn peak_bytes(n_rows: usize, dimension: usize, k: usize, threads: usize) -> u64 {
    let (n_rows_u64, k_u64) = (n_rows as u64, k as u64);
    // Planned for the bf16 filter's lists, the longer ones, whichever runs.
    let capacity = bounded_capacity(k).max(candidate_capacity(k));
    let candidate_bytes = CandidateLists::bytes_per_list(capacity);
    let workers = threads.max(1) as u64
        * (n_rows_u64 * candidate_bytes + 4 * (BLOCK_ROWS * TILE_ROWS + TILE_ROWS) as u64);
    // The bf16 copy of the dataset, where the filter runs.
    let packed = Packed::bytes_for(n_rows, dimension);
    let lists = 2 * n_rows_u64 * (8 * k_u64 + 8);
    let copies = 4 * (n_rows * dimension) as u64 + 8 * n_rows_u64;
    workers + lists + copies + packed
}

/// Every row's `plan.k` nearest other rows (`plan.queries` is the dataset's
/// own rows).
pub(crate) fn self_graph(
    plan: &SearchPlan<'_>,
    execution: &Execution<'_>,
) -> Result<NeighbourLists> {
    let n_rows = plan.dataset.n_rows();
    let capacity = match plan.bf16 {
        Some(_) => bounded_capacity(plan.k),
        None => candidate_capacity(plan.k),
    };
    let n_blocks = n_rows.div_ceil(BLOCK_ROWS);
    let n_tiles: usize = (0..n_blocks)
        .map(|block_idx| (n_rows - block_idx * BLOCK_ROWS).div_ceil(TILE_ROWS))
        .sum();
    let stage = execution.stage(0.0, 1.0, n_tiles);
    let next_block = AtomicUsize::new(0);
    // The dataset in bf16 for the filter, once: blocks and tiles alike.
    let packed = plan.bf16.map(|_| {
        Packed::rows(
            plan.gemm_rows,
            plan.dataset.dimension(),
            execution.threads(),
        )
    });
    let work = || -> Result<CandidateLists> {
        let mut worker = Worker {
            plan,
            lists: CandidateLists::new(n_rows, capacity),
            dots: vec![0.0; BLOCK_ROWS * TILE_ROWS],
            tile_terms: vec![0.0; TILE_ROWS],
            thresholds: vec![0.0; TILE_ROWS],
            bf16: plan.bf16.zip(packed.as_ref()),
        };
        loop {
            let block_idx = next_block.fetch_add(1, Ordering::Relaxed);
            if block_idx >= n_blocks {
                return Ok(worker.lists);
            }
            let block = block_idx * BLOCK_ROWS..((block_idx + 1) * BLOCK_ROWS).min(n_rows);
            worker.scan_block(block, &stage)?;
        }
    };
    let n_workers = execution.threads().clamp(1, n_blocks.max(1));
    let per_worker = on_threads(n_workers, work)
        .into_iter()
        .collect::<Result<Vec<CandidateLists>>>()?;
    let gather = |row: usize, merged: &mut Vec<(f32, u32)>| {
        for candidates in &per_worker {
            merged.extend_from_slice(candidates.get(row));
        }
    };
    let mut lists = match plan.bf16 {
        Some(_) => proven_lists(plan, capacity, execution, gather)?.0,
        None => measured_lists(plan, capacity, execution, gather)?,
    };
    lists.mark_self_graph();
    Ok(lists)
}

/// One worker's lists and buffers.
struct Worker<'p, 'a> {
    plan: &'p SearchPlan<'a>,
    lists: CandidateLists,
    dots: Vec<f32>,
    /// Per row of the current tile: its term (see `SearchPlan::row_terms`).
    tile_terms: Vec<f32>,
    /// Per row of the current tile: the key its list's last entry holds.
    thresholds: Vec<f32>,
    /// With the bf16 filter: the products and the packed dataset.
    bf16: Option<(Bf16Products, &'p Packed)>,
}

impl Worker<'_, '_> {
    /// Every pair of a row of `block` with a later row.
    fn scan_block(&mut self, block: Range<usize>, stage: &Stage<'_>) -> Result<()> {
        let n_rows = self.plan.dataset.n_rows();
        let mut tile_start = block.start;
        while tile_start < n_rows {
            let tile = tile_start..(tile_start + TILE_ROWS).min(n_rows);
            tile_start = tile.end;
            match self.plan.metric {
                Metric::L2 => self.scan_tile(&block, &tile, |dot, term| term - 2.0 * dot),
                Metric::Cosine => self.scan_tile(&block, &tile, |dot, term| -dot * term),
                Metric::Dot => self.scan_tile(&block, &tile, |dot, _| -dot),
            }
            stage.advance(1)?;
        }
        Ok(())
    }

    /// One GEMM (block rows x tile rows), each pair `i < j` of it offered to
    /// both rows' lists: to `i`'s with `j`'s term, to `j`'s with `i`'s.
    #[inline(always)]
    fn scan_tile(
        &mut self,
        block: &Range<usize>,
        tile: &Range<usize>,
        key_of: impl Fn(f32, f32) -> f32,
    ) {
        let plan = self.plan;
        let dimension = plan.dataset.dimension();
        let (n_block, n_tile) = (block.len(), tile.len());
        let dots = &mut self.dots[..n_block * n_tile];
        let tile_rows = &plan.gemm_rows[tile.start * dimension..tile.end * dimension];
        if let Some((products, packed)) = self.bf16 {
            // Each product raised by its error bound for either row's key:
            // the keys below are lower bounds of the exact ones.
            let bound = ErrorBound::new(dimension, plan.metric == Metric::L2);
            products.bounded_dots(
                packed.range(block.clone()),
                packed.range(tile.clone()),
                bound,
                dots,
                n_tile,
            );
        } else {
            matmul(
                MatMut::from_row_major_slice_mut(dots, n_block, n_tile),
                Accum::Replace,
                MatRef::from_row_major_slice(
                    &plan.gemm_rows[block.start * dimension..block.end * dimension],
                    n_block,
                    dimension,
                ),
                MatRef::from_column_major_slice(tile_rows, dimension, n_tile),
                1.0f32,
                Par::Seq,
            );
        }
        // The scan compiled for the widest SIMD the CPU has (pulp's dispatch).
        pulp::Arch::new().dispatch(TileScan {
            worker: self,
            block: block.clone(),
            tile: tile.clone(),
            key_of,
        });
    }
}

/// The scan of one tile of dot products, as a pulp operation: its body is
/// inlined into code compiled for the CPU's SIMD (AVX2 and FMA where it has
/// them).
struct TileScan<'w, 'p, 'a, KeyOf> {
    worker: &'w mut Worker<'p, 'a>,
    block: Range<usize>,
    tile: Range<usize>,
    key_of: KeyOf,
}

impl<KeyOf: Fn(f32, f32) -> f32> pulp::WithSimd for TileScan<'_, '_, '_, KeyOf> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let n_tile = self.tile.len();
        let term = |row: usize| self.worker.plan.row_terms.get(row).copied().unwrap_or(0.0);
        let allowed = |row: usize| self.worker.plan.filter.is_none_or(|mask| mask[row]);
        let lists = &mut self.worker.lists;
        let tile_terms = &mut self.worker.tile_terms[..n_tile];
        let thresholds = &mut self.worker.thresholds[..n_tile];
        for (lane, (tile_term, threshold)) in
            tile_terms.iter_mut().zip(thresholds.iter_mut()).enumerate()
        {
            *tile_term = term(self.tile.start + lane);
            *threshold = lists.threshold(self.tile.start + lane);
        }
        for (local, row) in self.block.clone().enumerate() {
            // Only the pairs with a later row: in a tile that overlaps the
            // block, the lanes up to `row` are skipped.
            let first_lane = (row + 1).saturating_sub(self.tile.start);
            if first_lane >= n_tile {
                continue;
            }
            let row_dots = &self.worker.dots[local * n_tile..(local + 1) * n_tile];
            let (row_term, row_allowed) = (term(row), allowed(row));
            let mut row_threshold = lists.threshold(row);
            let mut lane_start = first_lane;
            while lane_start < n_tile {
                let lanes = lane_start..(lane_start + SCAN_CHUNK).min(n_tile);
                // Which lanes beat a threshold, as bit masks computed
                // without branches; only those lanes are visited.
                let (row_hits, column_hits) = if lanes.len() == SCAN_CHUNK {
                    let chunk = |values: &[f32]| -> [f32; SCAN_CHUNK] {
                        values[lanes.clone()]
                            .try_into()
                            .unwrap_or([f32::NAN; SCAN_CHUNK])
                    };
                    let (dots, terms) = (chunk(row_dots), chunk(tile_terms));
                    let lane_thresholds = chunk(thresholds);
                    let (mut row_hits, mut column_hits) = (0u32, 0u32);
                    for lane in 0..SCAN_CHUNK {
                        row_hits |=
                            u32::from((self.key_of)(dots[lane], terms[lane]) < row_threshold)
                                << lane;
                        column_hits |=
                            u32::from((self.key_of)(dots[lane], row_term) < lane_thresholds[lane])
                                << lane;
                    }
                    (row_hits, column_hits)
                } else {
                    let every_lane = (1u32 << lanes.len()) - 1;
                    (every_lane, every_lane)
                };
                // A row offer tightens the row's threshold: later lanes
                // are checked again against it.
                for lane in lane_indices(row_hits) {
                    let lane = lanes.start + lane;
                    let key = (self.key_of)(row_dots[lane], tile_terms[lane]);
                    let other = self.tile.start + lane;
                    if key < row_threshold && allowed(other) {
                        lists.offer(row, key, other as u32);
                        row_threshold = lists.threshold(row);
                    }
                }
                if row_allowed {
                    for lane in lane_indices(column_hits) {
                        let lane = lanes.start + lane;
                        let key = (self.key_of)(row_dots[lane], row_term);
                        if key < thresholds[lane] {
                            let other = self.tile.start + lane;
                            lists.offer(other, key, row as u32);
                            thresholds[lane] = lists.threshold(other);
                        }
                    }
                }
                lane_start = lanes.end;
            }
        }
    }
}

/// The indices of the set bits of `mask`, lowest first.
#[inline(always)]
fn lane_indices(mut mask: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let lane = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            lane
        })
    })
}
