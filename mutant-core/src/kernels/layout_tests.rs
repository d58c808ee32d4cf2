//! Tests of the neighbour-graph layout: clusters stay apart, the output is
//! fixed by the seed whatever the thread count, degenerate input stays finite.

use super::*;
use crate::kernels::{KnnOptions, Metric, knn_graph};

/// `n_clusters` Gaussian-ish blobs of `per_cluster` records in `dimension`
/// dimensions; cluster `c` is centred at `spacing` along axis `c`. With
/// `loud_noise`, the last axis carries noise ten times the spacing, which
/// PCA takes for the main direction.
fn blobs(
    n_clusters: usize,
    per_cluster: usize,
    dimension: usize,
    spacing: f32,
    loud_noise: bool,
) -> (Vec<f32>, Vec<usize>) {
    let mut generator = SplitMix64::new(42);
    let mut vectors = Vec::new();
    let mut clusters = Vec::new();
    for cluster in 0..n_clusters {
        for _ in 0..per_cluster {
            for axis in 0..dimension {
                let centre = if axis == cluster { spacing } else { 0.0 };
                let spread = if loud_noise && axis == dimension - 1 {
                    10.0 * spacing
                } else {
                    1.0
                };
                vectors.push(centre + (generator.next_f64() as f32 - 0.5) * spread);
            }
            clusters.push(cluster);
        }
    }
    (vectors, clusters)
}

fn lay_out(vectors: &[f32], dimension: usize, options: &LayoutOptions, threads: usize) -> Vec<f32> {
    let dataset = DatasetView::new(vectors, dimension).unwrap();
    let execution = Execution::new().with_threads(threads);
    let graph = knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(LAYOUT_NEIGHBOURS),
        &execution,
    )
    .unwrap();
    neighbour_layout(&dataset, &graph, options, &execution).unwrap()
}

/// The share of records whose nearest record in `coordinates` is of the
/// same cluster.
fn neighbour_purity(coordinates: &[f32], n_components: usize, clusters: &[usize]) -> f32 {
    let n_rows = clusters.len();
    let point = |row: usize| &coordinates[row * n_components..(row + 1) * n_components];
    let mut same = 0;
    for row in 0..n_rows {
        let nearest = (0..n_rows)
            .filter(|&other| other != row)
            .min_by(|&left, &right| {
                squared_distance(point(row), point(left))
                    .total_cmp(&squared_distance(point(row), point(right)))
            })
            .unwrap();
        same += usize::from(clusters[nearest] == clusters[row]);
    }
    same as f32 / n_rows as f32
}

#[test]
fn clusters_stay_separated() {
    let (vectors, clusters) = blobs(3, 120, 8, 6.0, false);
    let coordinates = lay_out(&vectors, 8, &LayoutOptions::default(), 2);
    assert!(coordinates.iter().all(|value| value.is_finite()));
    assert!(neighbour_purity(&coordinates, 2, &clusters) > 0.98);
    // Each cluster's centre is farther from the others than its records are
    // from it, on average.
    let centre = |cluster: usize| {
        let rows: Vec<usize> = (0..clusters.len())
            .filter(|&row| clusters[row] == cluster)
            .collect();
        let mut sum = [0.0f32; 2];
        for &row in &rows {
            sum[0] += coordinates[2 * row];
            sum[1] += coordinates[2 * row + 1];
        }
        (rows, [sum[0] / 120.0, sum[1] / 120.0])
    };
    for cluster in 0..3 {
        let (rows, here) = centre(cluster);
        let spread: f32 = rows
            .iter()
            .map(|&row| squared_distance(&coordinates[2 * row..2 * row + 2], &here).sqrt())
            .sum::<f32>()
            / rows.len() as f32;
        for other in (0..3).filter(|&other| other != cluster) {
            let (_, there) = centre(other);
            assert!(squared_distance(&here, &there).sqrt() > 2.0 * spread);
        }
    }
}

#[test]
fn separates_clusters_that_pca_piles_up() {
    // The loudest direction is noise shared by every cluster: PCA's first
    // axis follows it and mixes the clusters; the graph layout does not.
    let (vectors, clusters) = blobs(4, 80, 6, 4.0, true);
    let dataset = DatasetView::new(&vectors, 6).unwrap();
    let pca = projection(&dataset, 2, &Execution::new()).unwrap();
    let layout = lay_out(&vectors, 6, &LayoutOptions::default(), 2);
    let pca_purity = neighbour_purity(&pca.coordinates, 2, &clusters);
    let layout_purity = neighbour_purity(&layout, 2, &clusters);
    assert!(layout_purity > 0.95, "layout purity {layout_purity}");
    assert!(
        layout_purity > pca_purity + 0.1,
        "layout {layout_purity} vs PCA {pca_purity}"
    );
}

#[test]
fn the_seed_fixes_the_output_whatever_the_thread_count() {
    let (vectors, _) = blobs(3, 1500, 5, 5.0, false);
    let options = LayoutOptions {
        n_epochs: Some(30),
        seed: 9,
        ..LayoutOptions::default()
    };
    let one_thread = lay_out(&vectors, 5, &options, 1);
    let three_threads = lay_out(&vectors, 5, &options, 3);
    assert_eq!(
        one_thread
            .iter()
            .map(|value| value.to_bits())
            .collect::<Vec<_>>(),
        three_threads
            .iter()
            .map(|value| value.to_bits())
            .collect::<Vec<_>>()
    );
    assert_eq!(one_thread, lay_out(&vectors, 5, &options, 2));
    let other_seed = lay_out(
        &vectors,
        5,
        &LayoutOptions {
            seed: 10,
            ..options
        },
        2,
    );
    assert_ne!(one_thread, other_seed);
}

#[test]
fn three_components_and_degenerate_input_stay_finite() {
    let (vectors, clusters) = blobs(2, 60, 4, 6.0, false);
    let options = LayoutOptions {
        n_components: 3,
        ..LayoutOptions::default()
    };
    let coordinates = lay_out(&vectors, 4, &options, 2);
    assert_eq!(coordinates.len(), 3 * 120);
    assert!(neighbour_purity(&coordinates, 3, &clusters) > 0.98);

    let identical = vec![1.5f32; 40 * 3];
    let coordinates = lay_out(&identical, 3, &LayoutOptions::default(), 2);
    assert!(coordinates.iter().all(|value| value.is_finite()));

    let single = [2.0f32, 3.0];
    let dataset = DatasetView::new(&single, 2).unwrap();
    let graph = knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(15),
        &Execution::new(),
    )
    .unwrap();
    let coordinates = neighbour_layout(
        &dataset,
        &graph,
        &LayoutOptions::default(),
        &Execution::new(),
    )
    .unwrap();
    assert_eq!(coordinates.len(), 2);
    assert!(coordinates.iter().all(|value| value.is_finite()));
}

#[test]
fn refuses_a_graph_of_another_shape_or_bad_components() {
    let (vectors, _) = blobs(2, 10, 3, 5.0, false);
    let dataset = DatasetView::new(&vectors, 3).unwrap();
    let queries = DatasetView::new(&vectors[..30], 3).unwrap();
    let cross = crate::kernels::knn(
        &dataset,
        &queries,
        Metric::L2,
        &KnnOptions::new(3),
        &Execution::new(),
    )
    .unwrap();
    assert!(
        neighbour_layout(
            &dataset,
            &cross,
            &LayoutOptions::default(),
            &Execution::new()
        )
        .is_err()
    );
    let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(3), &Execution::new()).unwrap();
    let four = LayoutOptions {
        n_components: 4,
        ..LayoutOptions::default()
    };
    assert!(neighbour_layout(&dataset, &graph, &four, &Execution::new()).is_err());
    let empty = DatasetView::new(&[], 3).unwrap();
    assert!(
        neighbour_layout(&empty, &graph, &LayoutOptions::default(), &Execution::new()).is_err()
    );
}

#[test]
fn membership_weights_sum_to_log2_k() {
    let mut weights = Vec::new();
    let distances = [0.0f32, 0.5, 0.7, 1.0, 1.2, 2.0, 2.5, 3.0];
    membership_weights(&distances, &mut weights);
    let sum: f32 = weights.iter().sum();
    assert!((sum - 3.0).abs() < 1e-3, "{sum}");
    // The duplicate and the nearest non-duplicate both weigh 1.
    assert_eq!(weights[0], 1.0);
    assert_eq!(weights[1], 1.0);
    assert!(weights.windows(2).all(|pair| pair[0] >= pair[1]));
    membership_weights(&[f32::INFINITY, f32::INFINITY], &mut weights);
    assert_eq!(weights, vec![0.0, 0.0]);
    membership_weights(&[-3.0, -2.0, -1.0], &mut weights);
    assert!(
        weights
            .iter()
            .all(|weight| weight.is_finite() && *weight > 0.0)
    );
}

#[test]
fn cancelling_stops_the_layout() {
    let (vectors, _) = blobs(2, 100, 3, 5.0, false);
    let dataset = DatasetView::new(&vectors, 3).unwrap();
    let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(5), &Execution::new()).unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(true);
    let execution = Execution::new().with_cancel_flag(&cancel);
    assert!(matches!(
        neighbour_layout(&dataset, &graph, &LayoutOptions::default(), &execution),
        Err(Error::Cancelled)
    ));
}

#[test]
fn an_edge_is_sampled_in_proportion_to_its_weight() {
    for (weight, expected) in [(1.0f32, 200), (0.5, 100), (0.25, 50), (0.1, 20), (0.004, 0)] {
        let samples = (0..200).filter(|&epoch| is_sampled(epoch, weight)).count();
        assert_eq!(samples, expected, "weight {weight}");
    }
}
