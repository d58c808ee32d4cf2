//! Tests of the kNN engine against a brute-force model, plus hand cases and
//! degenerate inputs.

use std::sync::atomic::AtomicBool;

use proptest::prelude::*;

use super::*;
use crate::kernels::bf16::Bf16Products;

/// The simple model: every distance computed directly, sorted by
/// `(distance, row)`; the whole list, so that the comparison can see ties
/// beyond the k-th neighbour (it keeps the first `k`).
fn brute_force(
    dataset: &[f32],
    dimension: usize,
    queries: &[f32],
    metric: Metric,
    filter: Option<&[bool]>,
    self_rows: bool,
) -> Vec<Vec<(u32, f32)>> {
    let n_rows = dataset.len() / dimension;
    queries
        .chunks_exact(dimension)
        .enumerate()
        .map(|(query_idx, query)| {
            let mut all: Vec<(u32, f32)> = (0..n_rows)
                .filter(|&row| {
                    filter.is_none_or(|mask| mask[row]) && !(self_rows && row == query_idx)
                })
                .map(|row| {
                    (
                        row as u32,
                        metric.distance(query, &dataset[row * dimension..(row + 1) * dimension]),
                    )
                })
                .collect();
            all.sort_by(|left, right| left.1.total_cmp(&right.1).then(left.0.cmp(&right.0)));
            all
        })
        .collect()
}

/// Checks the first k entries of each full model list; rows must agree
/// unless the model has a near-tie (anywhere in its list) at that distance.
fn assert_matches_model(lists: &NeighbourLists, expected: &[Vec<(u32, f32)>]) {
    assert_eq!(lists.n_queries(), expected.len());
    for (query_idx, expected_list) in expected.iter().enumerate() {
        let rows = lists.rows(query_idx);
        let distances = lists.distances(query_idx);
        let n_expected = lists.k().min(expected_list.len());
        assert_eq!(rows.len(), n_expected, "query {query_idx}");
        for (position, &(expected_row, expected_distance)) in
            expected_list.iter().enumerate().take(n_expected)
        {
            let tolerance = 1e-4 * expected_distance.abs().max(1.0);
            assert!(
                (distances[position] - expected_distance).abs() <= tolerance,
                "query {query_idx} position {position}: {} vs {expected_distance}",
                distances[position]
            );
            // Rows must agree unless the model itself has a near-tie here.
            let near_tie = expected_list
                .iter()
                .enumerate()
                .any(|(other, &(_, distance))| {
                    other != position && (distance - expected_distance).abs() <= tolerance
                });
            if !near_tie {
                assert_eq!(
                    rows[position], expected_row,
                    "query {query_idx} position {position}"
                );
            }
        }
    }
}

/// The routes a search's products can take: f32, the bf16 filter in plain
/// Rust (any CPU), and the CPU's bf16 filter where it has one.
fn products_routes() -> Vec<Option<Bf16Products>> {
    let mut routes = vec![None, Some(Bf16Products::emulated())];
    routes.extend(Bf16Products::detect().map(Some));
    routes
}

fn metric_strategy() -> impl Strategy<Value = Metric> {
    prop_oneof![Just(Metric::L2), Just(Metric::Cosine), Just(Metric::Dot)]
}

/// Rows of small integers (many exact ties and duplicates) or of floats.
fn matrix_strategy(max_rows: usize) -> impl Strategy<Value = (usize, Vec<f32>, usize)> {
    (1usize..12, 1usize..max_rows, any::<bool>()).prop_flat_map(|(dimension, n_rows, integers)| {
        let value = if integers {
            (-2i32..3).prop_map(|value| value as f32).boxed()
        } else {
            (-10.0f32..10.0).boxed()
        };
        (
            Just(dimension),
            proptest::collection::vec(value, n_rows * dimension),
            Just(n_rows),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every route of the products: f32, the bf16 filter emulated (on any
    /// CPU) and the CPU's own where it has one; a few queries and enough for
    /// a GEMM block, every metric, filters, ties and the matrices' duplicates.
    #[test]
    fn knn_equals_brute_force(
        (dimension, dataset, n_rows) in matrix_strategy(700),
        n_queries in 1usize..24,
        query_seed in any::<u64>(),
        k in 1usize..15,
        metric in metric_strategy(),
        threads in 1usize..4,
        filter_seed in proptest::option::of(any::<u64>()),
    ) {
        let mut generator = super::super::SplitMix64::new(query_seed);
        let queries: Vec<f32> = (0..n_queries * dimension).map(|_| (generator.next_f64() * 20.0 - 10.0) as f32).collect();
        let mask: Option<Vec<bool>> = filter_seed.map(|seed| {
            let mut generator = super::super::SplitMix64::new(seed);
            (0..n_rows).map(|_| generator.below(3) != 0).collect()
        });
        let view = DatasetView::new(&dataset, dimension).unwrap();
        let query_view = DatasetView::new(&queries, dimension).unwrap();
        let mut options = KnnOptions::new(k);
        if let Some(mask) = &mask { options = options.with_filter(mask); }
        let execution = Execution::new().with_threads(threads);
        let index = ExactIndex::new(view, metric, &execution).unwrap();
        let expected = brute_force(&dataset, dimension, &queries, metric, mask.as_deref(), false);
        for route in products_routes() {
            let lists = index.search_with(&query_view, &options, &execution, route).unwrap();
            assert_matches_model(&lists, &expected);
        }
    }

    /// Up to three blocks of the symmetric self-graph (480 rows each), so
    /// that pairs within a block, across blocks and across tiles all count;
    /// every route of the products, as above.
    #[test]
    fn self_graph_equals_brute_force(
        (dimension, dataset, n_rows) in matrix_strategy(1_300),
        k in 1usize..12,
        metric in metric_strategy(),
        threads in 1usize..4,
        filter_seed in proptest::option::of(any::<u64>()),
    ) {
        let mask: Option<Vec<bool>> = filter_seed.map(|seed| {
            let mut generator = super::super::SplitMix64::new(seed);
            (0..n_rows).map(|_| generator.below(3) != 0).collect()
        });
        let view = DatasetView::new(&dataset, dimension).unwrap();
        let mut options = KnnOptions::new(k);
        if let Some(mask) = &mask { options = options.with_filter(mask); }
        let execution = Execution::new().with_threads(threads);
        let index = ExactIndex::new(view, metric, &execution).unwrap();
        let expected = brute_force(&dataset, dimension, &dataset, metric, mask.as_deref(), true);
        for route in products_routes() {
            let graph = index.self_graph_with(&options, &execution, route).unwrap();
            prop_assert!(graph.excludes_self());
            assert_matches_model(&graph, &expected);
        }
    }

    #[test]
    fn result_does_not_depend_on_thread_count((dimension, dataset, _n_rows) in matrix_strategy(900), k in 1usize..8) {
        let view = DatasetView::new(&dataset, dimension).unwrap();
        let single = knn_graph(&view, Metric::L2, &KnnOptions::new(k), &Execution::single_threaded()).unwrap();
        let parallel = knn_graph(&view, Metric::L2, &KnnOptions::new(k), &Execution::new().with_threads(3)).unwrap();
        prop_assert_eq!(single, parallel);
    }
}

#[test]
fn hand_case_l2_cosine_and_dot() {
    let dataset = [0.0f32, 0.0, 3.0, 4.0, 1.0, 0.0, -2.0, 0.0];
    let view = DatasetView::new(&dataset, 2).unwrap();
    let query = DatasetView::new(&[1.0f32, 0.0], 2).unwrap();
    let execution = Execution::single_threaded();

    let l2 = knn(&view, &query, Metric::L2, &KnnOptions::new(4), &execution).unwrap();
    assert_eq!(l2.rows(0), &[2, 0, 3, 1]);
    assert_eq!(l2.distances(0), &[0.0, 1.0, 3.0, (4.0f32 + 16.0).sqrt()]);

    // cos to (3,4) is 0.6; the zero vector counts as similarity 0.
    let cosine = knn(
        &view,
        &query,
        Metric::Cosine,
        &KnnOptions::new(4),
        &execution,
    )
    .unwrap();
    assert_eq!(cosine.rows(0), &[2, 1, 0, 3]);
    assert!((cosine.distances(0)[1] - 0.4).abs() < 1e-6);
    assert_eq!(cosine.distances(0)[2], 1.0);
    assert!((cosine.distances(0)[3] - 2.0).abs() < 1e-6);

    let dot = knn(&view, &query, Metric::Dot, &KnnOptions::new(4), &execution).unwrap();
    assert_eq!(dot.rows(0), &[1, 2, 0, 3]);
    assert_eq!(dot.distances(0), &[-3.0, -1.0, 0.0, 2.0]);
}

#[test]
fn ties_are_broken_by_row_order() {
    let dataset = [1.0f32, -1.0, 1.0, -1.0, 1.0];
    let view = DatasetView::new(&dataset, 1).unwrap();
    let query = DatasetView::new(&[0.0f32], 1).unwrap();
    let lists = knn(
        &view,
        &query,
        Metric::L2,
        &KnnOptions::new(5),
        &Execution::new(),
    )
    .unwrap();
    assert_eq!(lists.rows(0), &[0, 1, 2, 3, 4]);
}

#[test]
fn self_graph_keeps_identical_copies_but_not_self() {
    let dataset = [2.0f32, 2.0, 2.0];
    let view = DatasetView::new(&dataset, 1).unwrap();
    let graph = knn_graph(&view, Metric::L2, &KnnOptions::new(5), &Execution::new()).unwrap();
    assert_eq!(graph.rows(0), &[1, 2]);
    assert_eq!(graph.rows(1), &[0, 2]);
    assert_eq!(graph.distances(2), &[0.0, 0.0]);
}

#[test]
fn k_larger_than_dataset_returns_every_row() {
    let view = DatasetView::new(&[0.0f32, 1.0], 1).unwrap();
    let query = DatasetView::new(&[0.2f32], 1).unwrap();
    let lists = knn(
        &view,
        &query,
        Metric::L2,
        &KnnOptions::new(10),
        &Execution::new(),
    )
    .unwrap();
    assert_eq!(lists.rows(0), &[0, 1]);
    let single = DatasetView::new(&[0.0f32], 1).unwrap();
    let graph = knn_graph(&single, Metric::L2, &KnnOptions::new(3), &Execution::new()).unwrap();
    assert!(graph.rows(0).is_empty());
}

#[test]
fn filter_that_allows_nothing_gives_empty_lists() {
    let view = DatasetView::new(&[0.0f32, 1.0], 1).unwrap();
    let query = DatasetView::new(&[0.2f32], 1).unwrap();
    let mask = [false, false];
    let lists = knn(
        &view,
        &query,
        Metric::L2,
        &KnnOptions::new(1).with_filter(&mask),
        &Execution::new(),
    )
    .unwrap();
    assert!(lists.rows(0).is_empty());
}

#[test]
fn degenerate_inputs_are_errors() {
    let empty = DatasetView::new(&[], 2).unwrap();
    let query = DatasetView::new(&[0.0f32, 0.0], 2).unwrap();
    let execution = Execution::new();
    assert!(matches!(
        knn(&empty, &query, Metric::L2, &KnnOptions::new(1), &execution),
        Err(Error::EmptyDataset { .. })
    ));

    let dataset = DatasetView::new(&[0.0f32, 0.0, 1.0, 1.0], 2).unwrap();
    let wrong_dimension = DatasetView::new(&[0.0f32, 0.0, 0.0], 3).unwrap();
    assert!(matches!(
        knn(
            &dataset,
            &wrong_dimension,
            Metric::L2,
            &KnnOptions::new(1),
            &execution
        ),
        Err(Error::KernelDimensionMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        knn(
            &dataset,
            &query,
            Metric::L2,
            &KnnOptions::new(0),
            &execution
        ),
        Err(Error::InvalidParameter { name: "k", .. })
    ));
    let short_mask = [true];
    assert!(matches!(
        knn(
            &dataset,
            &query,
            Metric::L2,
            &KnnOptions::new(1).with_filter(&short_mask),
            &execution
        ),
        Err(Error::InvalidParameter { name: "filter", .. })
    ));
}

#[test]
fn no_queries_gives_no_lists() {
    let dataset = DatasetView::new(&[0.0f32, 1.0], 1).unwrap();
    let queries = DatasetView::new(&[], 1).unwrap();
    let lists = knn(
        &dataset,
        &queries,
        Metric::L2,
        &KnnOptions::new(1),
        &Execution::new(),
    )
    .unwrap();
    assert_eq!(lists.n_queries(), 0);
}

#[test]
fn cancelled_search_returns_cancelled() {
    let dataset = DatasetView::new(&[0.0f32; 64], 1).unwrap();
    let cancel = AtomicBool::new(true);
    let execution = Execution::new().with_cancel_flag(&cancel);
    assert!(matches!(
        knn_graph(&dataset, Metric::L2, &KnnOptions::new(1), &execution),
        Err(Error::Cancelled)
    ));
}

#[test]
fn large_offset_near_duplicates_keep_exact_distances() {
    // Far from the origin the GEMM expansion loses digits; the exact
    // re-measure must still give the true (tiny) distances.
    let dimension = 8;
    let mut dataset = Vec::new();
    for row in 0..300 {
        for column in 0..dimension {
            dataset.push(1000.0 + (row * dimension + column) as f32 * 1e-3);
        }
    }
    let view = DatasetView::new(&dataset, dimension).unwrap();
    let graph = knn_graph(&view, Metric::L2, &KnnOptions::new(2), &Execution::new()).unwrap();
    let expected = brute_force(&dataset, dimension, &dataset, Metric::L2, None, true);
    assert_matches_model(&graph, &expected);
}

#[test]
fn progress_reaches_one_and_never_decreases() {
    let values: Vec<f32> = (0..3000).map(|index| (index % 97) as f32).collect();
    let dataset = DatasetView::new(&values, 3).unwrap();
    let reports = std::sync::Mutex::new(Vec::new());
    let report = |fraction: f32| reports.lock().unwrap().push(fraction);
    let execution = Execution::new().with_threads(2).with_progress(&report);
    knn_graph(&dataset, Metric::L2, &KnnOptions::new(3), &execution).unwrap();
    let reports = reports.into_inner().unwrap();
    assert!(!reports.is_empty());
    assert!(reports.windows(2).all(|pair| pair[0] <= pair[1]));
    assert_eq!(reports.last().copied(), Some(1.0));
}

#[test]
fn phases_given_parts_climb_once_from_zero_to_one() {
    let values: Vec<f32> = (0..3000).map(|index| (index % 97) as f32).collect();
    let dataset = DatasetView::new(&values, 3).unwrap();
    let reports = std::sync::Mutex::new(Vec::new());
    let report = |fraction: f32| reports.lock().unwrap().push(fraction);
    let execution = Execution::new().with_threads(2).with_progress(&report);
    knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(3),
        &execution.part(0.0, 0.25),
    )
    .unwrap();
    let first_phase = reports.lock().unwrap().len();
    let second = execution.part(0.25, 1.0);
    knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(3),
        &second.part(0.0, 0.5),
    )
    .unwrap();
    knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(3),
        &second.part(0.5, 1.0),
    )
    .unwrap();
    let reports = reports.into_inner().unwrap();
    assert!(
        reports[..first_phase]
            .iter()
            .all(|&fraction| fraction <= 0.25)
    );
    assert!(
        reports.windows(2).all(|pair| pair[0] <= pair[1]),
        "{reports:?}"
    );
    assert_eq!(reports.last().copied(), Some(1.0));
}

/// A dataset of `n_rows` rows from `values`, as the cache holds it.
fn loaded_dataset(values: &[f32], dimension: usize) -> crate::model::LoadedDataset {
    let mut loaded = crate::model::LoadedDataset::empty(crate::model::Dataset {
        id: uuid::Uuid::nil(),
        name: "d".into(),
        dimension,
        metric: crate::model::Metric::L2,
        metadata: Default::default(),
        created_at_ms: 0,
        updated_at_ms: 0,
    });
    for (row, vector) in values.chunks_exact(dimension).enumerate() {
        loaded.push(&crate::model::Record::new(
            format!("r{row}"),
            vector.to_vec(),
        ));
    }
    loaded
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Search terms updated row by row, as the cache does after a refresh,
    /// search exactly like a fresh index; away from centring they are the
    /// very terms a fresh pass computes.
    #[test]
    fn updated_search_terms_search_like_fresh_ones(
        (dimension, dataset, n_rows) in matrix_strategy(300),
        offset in prop_oneof![Just(0.0f32), Just(1000.0f32)],
        metric in metric_strategy(),
        change_seed in any::<u64>(),
        n_upserts in 0usize..40,
        n_deletes in 0usize..40,
    ) {
        let dataset: Vec<f32> = dataset.iter().map(|value| value + offset).collect();
        let mut loaded = loaded_dataset(&dataset, dimension);
        let execution = Execution::new().with_threads(2);
        let mut terms = SearchTerms::new(&DatasetView::new(&loaded.vectors, dimension).unwrap(), metric, &execution).unwrap();
        let mut generator = super::super::SplitMix64::new(change_seed);
        let id_space = n_rows + n_upserts;
        let mut upserted = std::collections::HashSet::new();
        let mut upserts = Vec::new();
        for _ in 0..n_upserts {
            let id = format!("r{}", generator.below(id_space));
            let vector = (0..dimension).map(|_| (generator.next_f64() * 20.0 - 10.0) as f32 + offset).collect();
            if upserted.insert(id.clone()) {
                upserts.push(crate::model::Record::new(id, vector));
            }
        }
        let changes = crate::model::DatasetChanges {
            upserts,
            deleted_ids: (0..n_deletes).map(|_| format!("r{}", generator.below(id_space))).collect(),
            watermark: 1,
        };
        let mut index = crate::model::RowIndex::build(&loaded.ids);
        let rewritten = loaded.apply_changes_indexed(&changes, &mut index);
        prop_assume!(loaded.n_records() > 0);
        let view = DatasetView::new(&loaded.vectors, dimension).unwrap();
        terms.update_rows(&view, &rewritten).unwrap();
        let fresh = SearchTerms::new(&view, metric, &execution).unwrap();
        if terms.centring.is_none() && fresh.centring.is_none() {
            prop_assert_eq!(&terms, &fresh);
        }
        let queries: Vec<f32> = (0..3 * dimension).map(|_| (generator.next_f64() * 20.0 - 10.0) as f32 + offset).collect();
        let query_view = DatasetView::new(&queries, dimension).unwrap();
        let lists = ExactIndex::with_terms(view, &terms).unwrap().search(&query_view, &KnnOptions::new(5), &execution).unwrap();
        assert_matches_model(&lists, &brute_force(&loaded.vectors, dimension, &queries, metric, None, false));
    }
}

#[test]
fn terms_of_another_shape_are_refused() {
    let rows = [0.0f32, 0.0, 1.0, 1.0];
    let view = DatasetView::new(&rows, 2).unwrap();
    let terms = SearchTerms::new(&view, Metric::L2, &Execution::new()).unwrap();
    let longer = [0.0f32, 0.0, 1.0, 1.0, 2.0, 2.0];
    let longer_view = DatasetView::new(&longer, 2).unwrap();
    assert!(matches!(
        ExactIndex::with_terms(longer_view, &terms),
        Err(Error::InvalidParameter { name: "terms", .. })
    ));
}

/// The lists of chosen rows are those of the whole self graph; every other
/// row's list is empty, and a row past the dataset is refused.
#[test]
fn a_graph_of_some_rows_matches_the_whole_graph_there() {
    let values: Vec<f32> = (0..40u16)
        .flat_map(|row| [f32::from(row).powf(1.5), f32::from(row % 7)])
        .collect();
    let dataset = DatasetView::new(&values, 2).unwrap();
    let options = KnnOptions::new(4);
    let execution = Execution::new();
    let whole = knn_graph(&dataset, Metric::L2, &options, &execution).unwrap();
    let chosen = [0u32, 7, 39];
    let some = knn_graph_of_rows(&dataset, &chosen, Metric::L2, &options, &execution).unwrap();
    assert!(some.excludes_self());
    for row in 0..40 {
        if chosen.contains(&(row as u32)) {
            assert_eq!(some.rows(row), whole.rows(row), "row {row}");
            for (some, whole) in some.distances(row).iter().zip(whole.distances(row)) {
                assert!((some - whole).abs() <= 1e-3 * whole.max(1.0), "row {row}");
            }
        } else {
            assert!(some.rows(row).is_empty(), "row {row}");
        }
    }
    assert!(knn_graph_of_rows(&dataset, &[40], Metric::L2, &options, &execution).is_err());
}

/// A few queries take the row-by-row dot products instead of GEMM; wide
/// rows with a remainder past the lanes, every metric, one and several
/// threads, against the model.
#[test]
fn few_queries_on_wide_rows_equal_brute_force() {
    let (n_rows, dimension) = (900, 70);
    let mut generator = super::super::SplitMix64::new(17);
    let mut values = |count: usize| -> Vec<f32> {
        (0..count)
            .map(|_| (generator.next_f64() * 2.0 - 1.0) as f32)
            .collect()
    };
    let dataset = values(n_rows * dimension);
    let view = DatasetView::new(&dataset, dimension).unwrap();
    for n_queries in [1, 3, 8, 9] {
        let queries = values(n_queries * dimension);
        let query_view = DatasetView::new(&queries, dimension).unwrap();
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            for threads in [1, 2] {
                let execution = Execution::new().with_threads(threads);
                let lists =
                    knn(&view, &query_view, metric, &KnnOptions::new(6), &execution).unwrap();
                assert_matches_model(
                    &lists,
                    &brute_force(&dataset, dimension, &queries, metric, None, false),
                );
            }
        }
    }
}
