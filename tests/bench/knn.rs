//! Warm exact kNN on seeded data, against two same-run references: the
//! GFLOP/s of one plain faer matmul of the batch's shape (the ceiling a
//! GEMM-based search can reach) and the time to read the matrix once from
//! memory (the floor of any exact single-query search).
//!
//! Data: splitmix64 of a counter (seed 42, values in [-0.5, 0.5)), which
//! `scripts/faiss_bench.py` reproduces bit for bit.

use std::time::Duration;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use mutant_core::kernels::{DatasetView, ExactIndex, Execution, KnnOptions};

use super::{best_of, median_of};

/// The seed of every stream.
pub const SEED: u64 = 42;

/// `n_values` values of stream `stream`: splitmix64 of a counter, so numpy
/// can reproduce them without running a sequential generator.
pub fn generate(stream: u64, n_values: usize) -> Vec<f32> {
    let base = SEED.wrapping_add(stream.wrapping_mul(0x1000_0000_0000));
    (0..n_values as u64)
        .map(|index| {
            let mut mixed =
                base.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            mixed ^= mixed >> 31;
            (mixed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// faer's parallelism for `threads`.
pub fn parallelism(threads: usize) -> Par {
    if threads == 1 {
        Par::Seq
    } else {
        Par::rayon(threads)
    }
}

/// Reads `values` once: a sum over it, split across `threads`.
pub fn read_once(values: &[f32], threads: usize) -> f32 {
    let chunk = values.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = values
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut lanes = [0.0f32; 16];
                    for block in part.chunks_exact(16) {
                        for (lane, &value) in lanes.iter_mut().zip(block) {
                            *lane += value;
                        }
                    }
                    lanes.iter().sum::<f32>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(0.0))
            .sum()
    })
}

/// Best of `runs` plain matmuls `queries x dataset^T` into `product`
/// (`queries.n_rows() x dataset.n_rows()`, row-major): the GEMM ceiling.
pub fn gemm_time(
    queries: &DatasetView<'_>,
    dataset: &DatasetView<'_>,
    product: &mut [f32],
    threads: usize,
    runs: usize,
) -> Duration {
    let dimension = dataset.dimension();
    best_of(runs, || {
        matmul(
            MatMut::from_row_major_slice_mut(product, queries.n_rows(), dataset.n_rows()),
            Accum::Replace,
            MatRef::from_row_major_slice(queries.vectors(), queries.n_rows(), dimension),
            MatRef::from_column_major_slice(dataset.vectors(), dimension, dataset.n_rows()),
            1.0f32,
            parallelism(threads),
        )
    })
}

/// Best of `runs` searches of the whole `queries` batch, `k` nearest each.
pub fn batch_time(
    index: &ExactIndex<'_>,
    queries: &DatasetView<'_>,
    k: usize,
    execution: &Execution<'_>,
    runs: usize,
) -> Result<Duration, mutant_core::Error> {
    let mut search_error = None;
    let elapsed = best_of(runs, || {
        if let Err(error) = index.search(queries, &KnnOptions::new(k), execution) {
            search_error = Some(error);
        }
    });
    search_error.map_or(Ok(elapsed), Err)
}

/// Single queries (and reads) whose median [`single_and_read_times`] takes:
/// enough that one slow run, or a lucky one, does not move the ratio (from
/// 21 it moved between 0.79x and 1.39x from run to run on one machine).
pub const SINGLE_QUERY_RUNS: usize = 201;

/// Medians of `runs` single-query searches (query `run` of `queries`) and of
/// `runs` reads of the indexed matrix `dataset` with `threads` threads.
pub fn single_and_read_times(
    index: &ExactIndex<'_>,
    dataset: &DatasetView<'_>,
    queries: &DatasetView<'_>,
    k: usize,
    execution: &Execution<'_>,
    runs: usize,
) -> Result<(Duration, Duration), mutant_core::Error> {
    let threads = execution.threads();
    let mut checksum = 0.0f32;
    let read = median_of(runs, |_| checksum += read_once(dataset.vectors(), threads));
    let mut search_error = None;
    let single = median_of(runs, |run| {
        let query = DatasetView::new(queries.row(run % queries.n_rows()), queries.dimension())
            .expect("a row of the query matrix has the dimension");
        match index.search(&query, &KnnOptions::new(k), execution) {
            Ok(lists) => checksum += lists.distances(0).first().copied().unwrap_or(0.0),
            Err(error) => search_error = Some(error),
        }
    });
    // Keeps the sums observable, so that the reads are not optimised away.
    std::hint::black_box(checksum);
    search_error.map_or(Ok((single, read)), Err)
}
