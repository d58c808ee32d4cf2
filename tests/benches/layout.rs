//! Benchmark of the neighbour-graph layout against the kNN graph it reuses
//! (a program: `harness = false`).
//!
//! What it measures, on a seeded Gaussian mixture (seed 42: 20 clusters,
//! centres uniform in [-4, 4) per axis, unit-variance noise from the
//! splitmix64 of `mutant_tests::bench::knn`), 100,000 x 128 by default:
//!
//! 1. The self-kNN graph with k = 15 (`LAYOUT_NEIGHBOURS`), the baseline.
//! 2. The layout on that graph (PCA initialisation, fuzzy weights, 200
//!    epochs of SGD): its time and its ratio to the graph's (goal: <= 3).
//! 3. PCA of the same data, for scale.
//!
//! Command (release build): `cargo bench -p mutant-tests --bench layout`.
//! Options: `--rows N`, `--dimension D`, `--threads T` (default: all cores).

#![allow(clippy::print_stdout)]

use std::time::Instant;

use mutant_core::kernels::{
    DatasetView, Execution, KnnOptions, LAYOUT_NEIGHBOURS, LayoutOptions, Metric, knn_graph,
    neighbour_layout, projection,
};
use mutant_tests::bench::argument;
use mutant_tests::bench::knn::{SEED, generate};

const N_CLUSTERS: usize = 20;

fn main() -> Result<(), mutant_core::Error> {
    let number = |name: &str, default: usize| {
        argument(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let n_rows = number("--rows", 100_000);
    let dimension = number("--dimension", 128);
    let threads = number(
        "--threads",
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    println!(
        "# layout benchmark: {n_rows} x {dimension} f32, {N_CLUSTERS} Gaussian clusters, seed {SEED}, k = {LAYOUT_NEIGHBOURS}, {threads} threads"
    );
    let centres: Vec<f32> = generate(10, N_CLUSTERS * dimension)
        .iter()
        .map(|value| value * 8.0)
        .collect();
    // Sums of four uniforms: close enough to Gaussian noise, unit variance.
    let noise = generate(11, n_rows * dimension * 4);
    let vectors: Vec<f32> = (0..n_rows * dimension)
        .map(|index| {
            let row = index / dimension;
            let axis = index % dimension;
            let centre = centres[(row % N_CLUSTERS) * dimension + axis];
            let sum: f32 = noise[index * 4..index * 4 + 4].iter().sum();
            centre + sum * 3.0f32.sqrt()
        })
        .collect();
    drop(noise);
    let dataset = DatasetView::new(&vectors, dimension)?;
    let execution = Execution::new().with_threads(threads);

    let started = Instant::now();
    let graph = knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(LAYOUT_NEIGHBOURS),
        &execution,
    )?;
    let graph_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let coordinates = neighbour_layout(&dataset, &graph, &LayoutOptions::default(), &execution)?;
    let layout_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    projection(&dataset, 2, &execution)?;
    let pca_seconds = started.elapsed().as_secs_f64();

    let finite = coordinates.iter().all(|value| value.is_finite());
    let (same_cluster, stragglers) = layout_quality(&coordinates, n_rows);
    println!("| measurement | time | ratio to the graph |");
    println!("| --- | --- | --- |");
    println!(
        "| self-kNN graph, k = {LAYOUT_NEIGHBOURS} (baseline) | {graph_seconds:.2} s | 1.00x |"
    );
    println!(
        "| neighbour layout on that graph | {layout_seconds:.2} s | {:.2}x |",
        layout_seconds / graph_seconds
    );
    println!(
        "| PCA, 2 components | {pca_seconds:.2} s | {:.2}x |",
        pca_seconds / graph_seconds
    );
    println!(
        "layout quality: {:.1}% of 2,000 sampled records have a record of their own cluster as nearest in 2-D; {stragglers} records ({:.3}%) lie over twice as far from the centre as the 99th percentile",
        same_cluster * 100.0,
        stragglers as f64 * 100.0 / n_rows as f64
    );
    println!(
        "result layout_seconds={layout_seconds:.3} graph_seconds={graph_seconds:.3} ratio={:.3} finite={finite} same_cluster={same_cluster:.4} stragglers={stragglers}",
        layout_seconds / graph_seconds
    );
    Ok(())
}

/// The share of 2,000 sampled records whose nearest record in the layout is
/// of their own cluster (row % N_CLUSTERS), and the records farther from the
/// median point than twice the 99th percentile of that distance.
fn layout_quality(coordinates: &[f32], n_rows: usize) -> (f64, usize) {
    let point = |row: usize| (coordinates[2 * row], coordinates[2 * row + 1]);
    let squared = |a: (f32, f32), b: (f32, f32)| (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2);
    let step = (n_rows / 2_000).max(1);
    let sampled: Vec<usize> = (0..n_rows).step_by(step).take(2_000).collect();
    let same = sampled
        .iter()
        .filter(|&&row| {
            let nearest = (0..n_rows).filter(|&other| other != row).min_by(|&a, &b| {
                squared(point(row), point(a)).total_cmp(&squared(point(row), point(b)))
            });
            nearest.is_some_and(|nearest| nearest % N_CLUSTERS == row % N_CLUSTERS)
        })
        .count();
    let median = |component: usize| {
        let mut values: Vec<f32> = (0..n_rows)
            .map(|row| coordinates[2 * row + component])
            .collect();
        values.sort_by(f32::total_cmp);
        values[n_rows / 2]
    };
    let centre = (median(0), median(1));
    let mut distances: Vec<f32> = (0..n_rows)
        .map(|row| squared(point(row), centre).sqrt())
        .collect();
    distances.sort_by(f32::total_cmp);
    let p99 = distances[n_rows * 99 / 100];
    let stragglers = distances
        .iter()
        .filter(|&&distance| distance > 2.0 * p99)
        .count();
    (same as f64 / sampled.len() as f64, stragglers)
}
