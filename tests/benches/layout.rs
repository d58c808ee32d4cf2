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
        "result layout_seconds={layout_seconds:.3} graph_seconds={graph_seconds:.3} ratio={:.3} finite={finite}",
        layout_seconds / graph_seconds
    );
    Ok(())
}
