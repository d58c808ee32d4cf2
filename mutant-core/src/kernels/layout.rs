//! `layout`: a neighbour-graph layout of a dataset in 2 or 3 dimensions
//! (UMAP-style), the map a person looks at, where PCA piles clusters on top
//! of each other.
//!
//! It works on the self-kNN graph every neighbour score shares (see
//! [`knn_graph`](super::knn_graph)), in three steps:
//!
//! 1. **Fuzzy simplicial set.** Each record's neighbour distances become
//!    membership weights `exp(-(d - rho) / sigma)`, `rho` being the distance
//!    to its nearest neighbour (the first one not at distance 0) and `sigma`
//!    found by bisection so that the weights sum to `log2(k)`; the directed
//!    weights are then united, `w = a + b - a * b`.
//! 2. **Initialisation** from the dataset's PCA coordinates
//!    ([`projection`](super::projection)), scaled to a box of side 20, plus a
//!    seeded jitter of 1e-4 so identical records do not coincide.
//! 3. **Stochastic gradient descent with negative sampling** on UMAP's
//!    low-dimensional similarity `1 / (1 + a d^(2b))` (`a` = 1.577, `b` =
//!    0.895: UMAP's curve for `min_dist` 0.1, `spread` 1): each edge pulls
//!    its two ends together in a share of the epochs proportional to its
//!    weight, and each pull pushes the record away from
//!    [`LayoutOptions::negative_samples`] records drawn at random. The
//!    learning rate falls linearly from 1 to 0.
//!
//! **Determinism.** UMAP's own SGD lets threads race on shared coordinates
//! ("Hogwild"), so its output changes with the thread count and from run to
//! run. Here every epoch reads the coordinates the previous epoch left and
//! each record's move is computed from them alone (a Jacobi step), with its
//! negative samples drawn from a generator seeded by `(seed, epoch, record)`:
//! the output is a function of the data, the graph and the seed, bit for bit,
//! whatever the thread count.

use super::progress::{Execution, parallel_map};
use super::projection::{projection, projection_peak_bytes};
use super::random::SplitMix64;
use super::{DatasetView, NeighbourLists};
use crate::{Error, Result};

/// The number of neighbours a layout's graph should have: UMAP's default,
/// enough to tie each record to its local structure, few enough that the
/// graph (and so the layout) stays cheap.
pub const LAYOUT_NEIGHBOURS: usize = 15;

/// UMAP's `a` for `min_dist` 0.1 and `spread` 1.
const CURVE_A: f32 = 1.576_943_5;
/// UMAP's `b` for `min_dist` 0.1 and `spread` 1.
const CURVE_B: f32 = 0.895_060_9;
/// Each component of one pull or push is clipped to this (as UMAP does).
const GRADIENT_CLIP: f32 = 4.0;
/// Half the side of the box the initial coordinates are scaled into.
const INITIAL_EXTENT: f32 = 10.0;
/// Records per piece of parallel work in an epoch.
const CHUNK_RECORDS: usize = 2048;
/// A layout may cost this many times the exact kNN graph it starts from.
const BUDGET_TIMES_GRAPH: f64 = 3.0;
/// What one pull or push costs, in multiply-adds of the graph's GEMM:
/// measured on 100,000 x 128 (the graph's 1.28e12 multiply-adds took 33 s,
/// one epoch of about 2.2 million pulls and pushes 120 ms).
const UPDATE_COST_IN_GRAPH_MULTIPLY_ADDS: f64 = 2_000.0;
/// Fewer epochs leave a layout unsettled: the budget never cuts below this.
const MIN_EPOCHS: usize = 100;

/// How a layout runs.
///
/// ```
/// use mutant_core::kernels::LayoutOptions;
/// let options = LayoutOptions { seed: 7, ..LayoutOptions::default() };
/// assert_eq!(options.n_components, 2);
/// assert_eq!(options.most_epochs_for(100_000), 200);
/// assert_eq!(options.most_epochs_for(1_000), 500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutOptions {
    /// 2 or 3.
    pub n_components: usize,
    /// Passes of gradient descent. `None` chooses: UMAP's count (500 up
    /// to 10,000 records, 200 above), lowered, but not below 100, so that
    /// the layout costs at most 3 times the exact kNN graph of the same
    /// data (n² x dimension multiply-adds); a cost model, not a clock, so
    /// the choice is deterministic.
    pub n_epochs: Option<usize>,
    /// Random records each pull pushes away from. Default 3: UMAP draws 5
    /// per edge sample for one end of the edge only, 2.5 per end; here each
    /// end of an edge pulls (and pushes) on its own.
    pub negative_samples: usize,
    /// Fixes the jitter and the negative samples; another seed gives
    /// another, equally valid, layout.
    pub seed: u64,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        LayoutOptions {
            n_components: 2,
            n_epochs: None,
            negative_samples: 3,
            seed: 0,
        }
    }
}

impl LayoutOptions {
    /// The most epochs a layout of `n_records` records runs: `n_epochs`
    /// when given, else UMAP's count, which the cost budget may lower.
    pub fn most_epochs_for(&self, n_records: usize) -> usize {
        self.n_epochs
            .unwrap_or(if n_records > 10_000 { 200 } else { 500 })
            .max(1)
    }

    /// The epochs a layout runs on `fuzzy`, the graph of `n_records` records
    /// of `dimension`: see [`LayoutOptions::n_epochs`].
    fn epochs_within_budget(
        &self,
        n_records: usize,
        dimension: usize,
        fuzzy: &FuzzyGraph,
    ) -> usize {
        let most = self.most_epochs_for(n_records);
        if self.n_epochs.is_some() {
            return most;
        }
        let graph_multiply_adds = (n_records as f64).powi(2) * dimension as f64;
        let pulls_per_epoch: f64 = fuzzy.weights.iter().map(|&weight| f64::from(weight)).sum();
        let updates_per_epoch = pulls_per_epoch * (1 + self.negative_samples) as f64;
        let affordable = BUDGET_TIMES_GRAPH * graph_multiply_adds
            / (UPDATE_COST_IN_GRAPH_MULTIPLY_ADDS * updates_per_epoch.max(1.0));
        (affordable.floor() as usize).clamp(MIN_EPOCHS.min(most), most)
    }
}

/// A layout: the coordinates, and how many epochs made them.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Row-major, `n_rows x n_components`.
    pub coordinates: Vec<f32>,
    /// The epochs of gradient descent run.
    pub n_epochs: usize,
}

/// The weighted, symmetric neighbour graph a layout optimises, as
/// compressed rows: record `i`'s edges are `offsets[i]..offsets[i + 1]`.
#[derive(Debug, Clone, PartialEq)]
struct FuzzyGraph {
    offsets: Vec<usize>,
    targets: Vec<u32>,
    weights: Vec<f32>,
}

/// The peak working memory of [`neighbour_layout`] in bytes, for `n_rows`
/// rows of `dimension` and a graph of `n_neighbours` per record (the graph
/// itself not counted): the PCA start, the directed, oriented (both
/// directions, grown by doubling) and united edges, the compressed graph,
/// and two copies of the coordinates.
pub fn layout_peak_bytes(
    n_rows: usize,
    dimension: usize,
    n_neighbours: usize,
    n_components: usize,
) -> u64 {
    let edges = n_rows as u64 * n_neighbours as u64;
    let edge_bytes = 12 * edges + 2 * 2 * 16 * edges + 2 * 12 * edges + 2 * 8 * edges;
    let records = 8 * n_rows as u64 + 2 * 4 * (n_rows * n_components) as u64;
    projection_peak_bytes(n_rows, dimension, n_components) + edge_bytes + records
}

/// Lays `dataset` out in `options.n_components` dimensions from its self-kNN
/// `graph` (built with [`knn_graph`](super::knn_graph), ideally with
/// [`LAYOUT_NEIGHBOURS`] neighbours). Returns the coordinates, row-major,
/// `n_rows x n_components` (records that are neighbours in the data sit
/// together, and clusters apart) and the epochs run.
///
/// ```
/// use mutant_core::kernels::{knn_graph, neighbour_layout, DatasetView, Execution, KnnOptions, LayoutOptions, Metric};
/// // Two tight groups of three records, far apart.
/// let vectors = [0.0f32, 0.1, 0.2, 10.0, 10.1, 10.2];
/// let dataset = DatasetView::new(&vectors, 1)?;
/// let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new())?;
/// let layout = neighbour_layout(&dataset, &graph, &LayoutOptions::default(), &Execution::new())?;
/// assert_eq!(layout.coordinates.len(), 12);
/// assert!(layout.coordinates.iter().all(|value| value.is_finite()));
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn neighbour_layout(
    dataset: &DatasetView<'_>,
    graph: &NeighbourLists,
    options: &LayoutOptions,
    execution: &Execution<'_>,
) -> Result<Layout> {
    let n_components = options.n_components;
    if !(2..=3).contains(&n_components) {
        return Err(Error::InvalidParameter {
            name: "components",
            reason: format!("asked for {n_components} components; use 2 or 3"),
        });
    }
    dataset.require_rows("the dataset to lay out")?;
    let n_rows = dataset.n_rows();
    graph.require_shape("the layout's neighbour graph", n_rows, n_rows)?;
    if !graph.excludes_self() {
        return Err(Error::InvalidParameter {
            name: "graph",
            reason: "a layout needs the dataset's self-kNN graph (knn_graph), not a search of another dataset".to_owned(),
        });
    }
    let initial = projection(dataset, n_components, &execution.part(0.0, 0.05))?;
    let mut coordinates = initial.coordinates;
    scale_and_jitter(&mut coordinates, options.seed);
    let fuzzy = fuzzy_graph(graph, options.most_epochs_for(n_rows), execution)?;
    let n_epochs = options.epochs_within_budget(n_rows, dataset.dimension(), &fuzzy);
    let descent = execution.part(0.1, 1.0);
    let stage = descent.stage(0.0, 1.0, n_epochs);
    let n_chunks = n_rows.div_ceil(CHUNK_RECORDS);
    for epoch in 0..n_epochs {
        let learning_rate = 1.0 - epoch as f32 / n_epochs as f32;
        let step = EpochStep {
            fuzzy: &fuzzy,
            coordinates: &coordinates,
            n_components,
            epoch,
            learning_rate,
            negative_samples: options.negative_samples,
            seed: options.seed,
        };
        let moved = parallel_map(
            execution.threads(),
            n_chunks,
            || (),
            |_, chunk_idx| {
                let start = chunk_idx * CHUNK_RECORDS;
                let end = (start + CHUNK_RECORDS).min(n_rows);
                Ok(step.run(start..end))
            },
        )?;
        for (chunk_idx, chunk) in moved.into_iter().enumerate() {
            let start = chunk_idx * CHUNK_RECORDS * n_components;
            coordinates[start..start + chunk.len()].copy_from_slice(&chunk);
        }
        stage.advance(1)?;
    }
    Ok(Layout {
        coordinates,
        n_epochs,
    })
}

/// Scales PCA coordinates into `[-INITIAL_EXTENT, INITIAL_EXTENT]` and adds
/// a small seeded jitter, so identical records can separate.
fn scale_and_jitter(coordinates: &mut [f32], seed: u64) {
    let largest = coordinates
        .iter()
        .fold(0.0f32, |largest, value| largest.max(value.abs()));
    let scale = if largest > 0.0 {
        INITIAL_EXTENT / largest
    } else {
        1.0
    };
    let mut generator = SplitMix64::new(seed ^ 0x6c61_796f_7574);
    for value in coordinates.iter_mut() {
        let jitter = (generator.next_f64() as f32 - 0.5) * 2e-4;
        *value = *value * scale + jitter;
    }
}

/// The fuzzy union of every record's neighbourhood weights, without the
/// edges too light to be sampled once in `n_epochs`.
fn fuzzy_graph(
    graph: &NeighbourLists,
    n_epochs: usize,
    execution: &Execution<'_>,
) -> Result<FuzzyGraph> {
    let n_rows = graph.n_queries();
    let n_chunks = n_rows.div_ceil(CHUNK_RECORDS);
    let directed = parallel_map(
        execution.threads(),
        n_chunks,
        Vec::new,
        |weights: &mut Vec<f32>, chunk_idx| {
            let start = chunk_idx * CHUNK_RECORDS;
            let end = (start + CHUNK_RECORDS).min(n_rows);
            let mut edges = Vec::new();
            for row in start..end {
                membership_weights(graph.distances(row), weights);
                for (&neighbour, &weight) in graph.rows(row).iter().zip(weights.iter()) {
                    if neighbour as usize != row {
                        edges.push((row as u32, neighbour, weight));
                    }
                }
            }
            Ok(edges)
        },
    )?;
    // Both orientations of every directed edge, sorted: a pair present in
    // both directions then sits in two adjacent entries.
    let mut oriented: Vec<(u32, u32, bool, f32)> = Vec::new();
    for (row, neighbour, weight) in directed.into_iter().flatten() {
        oriented.push((row, neighbour, false, weight));
        oriented.push((neighbour, row, true, weight));
    }
    oriented.sort_unstable_by_key(|edge| (edge.0, edge.1, edge.2));
    let mut united: Vec<(u32, u32, f32)> = Vec::with_capacity(oriented.len());
    for (row, neighbour, _, weight) in oriented {
        match united.last_mut() {
            Some(last) if last.0 == row && last.1 == neighbour => {
                last.2 = last.2 + weight - last.2 * weight;
            }
            _ => united.push((row, neighbour, weight)),
        }
    }
    let heaviest = united
        .iter()
        .fold(0.0f32, |heaviest, edge| heaviest.max(edge.2));
    let lightest_kept = heaviest / n_epochs as f32;
    let mut offsets = vec![0usize; n_rows + 1];
    let mut targets = Vec::with_capacity(united.len());
    let mut weights = Vec::with_capacity(united.len());
    for (row, neighbour, weight) in united {
        if weight <= 0.0 || weight < lightest_kept {
            continue;
        }
        offsets[row as usize + 1] += 1;
        targets.push(neighbour);
        // Weights relative to the heaviest edge: an edge of weight 1 is
        // sampled every epoch.
        weights.push(weight / heaviest);
    }
    for row in 0..n_rows {
        offsets[row + 1] += offsets[row];
    }
    Ok(FuzzyGraph {
        offsets,
        targets,
        weights,
    })
}

/// One record's membership weights for its neighbour `distances` (nearest
/// first), written into `weights`: 1 for the nearest, falling with distance
/// at the rate that makes them sum to `log2(k)`.
fn membership_weights(distances: &[f32], weights: &mut Vec<f32>) {
    weights.clear();
    let finite = || {
        distances
            .iter()
            .copied()
            .filter(|distance| distance.is_finite())
    };
    let Some(nearest) = finite().next() else {
        weights.resize(distances.len(), 0.0);
        return;
    };
    // The nearest distance that is not a duplicate's 0 (UMAP's local
    // connectivity of 1); the nearest one when all are 0, or negative (dot).
    let rho = finite().find(|&distance| distance > 0.0).unwrap_or(nearest);
    let target = (distances.len() as f32).log2().max(1e-3);
    let excess = |distance: f32| (distance - rho).max(0.0);
    let total = |sigma: f32| -> f32 {
        finite()
            .map(|distance| (-excess(distance) / sigma).exp())
            .sum()
    };
    let mean_excess = finite().map(excess).sum::<f32>() / distances.len() as f32;
    let (mut low, mut high) = (0.0f32, f32::INFINITY);
    let mut sigma = 1.0f32;
    for _ in 0..64 {
        let sum = total(sigma);
        if (sum - target).abs() < 1e-5 {
            break;
        }
        if sum > target {
            high = sigma;
            sigma = (low + high) / 2.0;
        } else {
            low = sigma;
            sigma = if high.is_finite() {
                (low + high) / 2.0
            } else {
                sigma * 2.0
            };
        }
    }
    // A floor on sigma keeps weights finite when the distances barely vary.
    let sigma = sigma.max(1e-3 * mean_excess).max(f32::MIN_POSITIVE);
    weights.extend(distances.iter().map(|&distance| {
        if distance.is_finite() {
            (-excess(distance) / sigma).exp()
        } else {
            0.0
        }
    }));
}

/// What one epoch reads: the graph, the coordinates the last epoch left, and
/// the schedule.
struct EpochStep<'a> {
    fuzzy: &'a FuzzyGraph,
    coordinates: &'a [f32],
    n_components: usize,
    epoch: usize,
    learning_rate: f32,
    negative_samples: usize,
    seed: u64,
}

impl EpochStep<'_> {
    /// The new coordinates of `records`, row-major.
    fn run(&self, records: std::ops::Range<usize>) -> Vec<f32> {
        let components = self.n_components;
        let n_rows = self.coordinates.len() / components;
        let mut moved =
            self.coordinates[records.start * components..records.end * components].to_vec();
        let mut gradient = [0.0f32; 3];
        for record in records.clone() {
            let here = &self.coordinates[record * components..(record + 1) * components];
            gradient.fill(0.0);
            let mut generator = SplitMix64::new(
                self.seed
                    ^ (self.epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (record as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
            );
            for edge in self.fuzzy.offsets[record]..self.fuzzy.offsets[record + 1] {
                if !is_sampled(self.epoch, self.fuzzy.weights[edge]) {
                    continue;
                }
                let neighbour = self.fuzzy.targets[edge] as usize;
                let there = &self.coordinates[neighbour * components..(neighbour + 1) * components];
                let squared = squared_distance(here, there);
                if squared > 0.0 {
                    let powered = squared.powf(CURVE_B);
                    let coefficient =
                        -2.0 * CURVE_A * CURVE_B * powered / squared / (1.0 + CURVE_A * powered);
                    accumulate(&mut gradient, coefficient, here, there);
                }
                for _ in 0..self.negative_samples {
                    let other = generator.below(n_rows);
                    if other == record {
                        continue;
                    }
                    let there = &self.coordinates[other * components..(other + 1) * components];
                    let squared = squared_distance(here, there);
                    if squared > 0.0 {
                        let coefficient = 2.0 * CURVE_B
                            / ((0.001 + squared) * (1.0 + CURVE_A * squared.powf(CURVE_B)));
                        accumulate(&mut gradient, coefficient, here, there);
                    } else {
                        gradient
                            .iter_mut()
                            .take(components)
                            .for_each(|value| *value += GRADIENT_CLIP);
                    }
                }
            }
            let offset = (record - records.start) * components;
            for component in 0..components {
                moved[offset + component] += self.learning_rate * gradient[component];
            }
        }
        moved
    }
}

/// Whether an edge of relative `weight` (in `(0, 1]`: sampled every
/// `1 / weight` epochs) is sampled in `epoch`: when the count of its samples
/// so far, `floor(epochs * weight)`, steps up.
fn is_sampled(epoch: usize, weight: f32) -> bool {
    let weight = f64::from(weight);
    ((epoch + 1) as f64 * weight).floor() > (epoch as f64 * weight).floor()
}

fn squared_distance(here: &[f32], there: &[f32]) -> f32 {
    here.iter().zip(there).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// Adds `coefficient * (here - there)`, clipped per component, to `gradient`.
fn accumulate(gradient: &mut [f32; 3], coefficient: f32, here: &[f32], there: &[f32]) {
    for ((value, a), b) in gradient.iter_mut().zip(here).zip(there) {
        *value += (coefficient * (a - b)).clamp(-GRADIENT_CLIP, GRADIENT_CLIP);
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
