//! Tests of `drift.rs`.

use super::*;
use crate::kernels::mmd::median;

fn uniform(seed: u64, n_values: usize, offset: f32) -> Vec<f32> {
    let mut generator = SplitMix64::new(seed);
    (0..n_values)
        .map(|_| generator.next_f64() as f32 + offset)
        .collect()
}

#[test]
fn same_distribution_is_not_drift_and_a_shift_is() {
    let reference_values = uniform(1, 400, 0.0);
    let same_values = uniform(2, 400, 0.0);
    let shifted_values = uniform(3, 400, 0.5);
    let reference = DatasetView::new(&reference_values, 2).unwrap();
    let same = DatasetView::new(&same_values, 2).unwrap();
    let shifted = DatasetView::new(&shifted_values, 2).unwrap();
    let options = DriftOptions {
        sample_size: 200,
        n_permutations: 100,
        seed: 7,
    };
    let quiet = drift(&reference, &same, Metric::L2, &options, &Execution::new()).unwrap();
    let moved = drift(
        &reference,
        &shifted,
        Metric::L2,
        &options,
        &Execution::new(),
    )
    .unwrap();
    assert!(quiet.p_value > 0.05, "{quiet:?}");
    assert!(moved.p_value < 0.02, "{moved:?}");
    assert!(moved.mmd_squared > quiet.mmd_squared);
    assert!((0.0..=2.0).contains(&moved.mmd_squared));
    // Fixed seed: the same answer twice.
    assert_eq!(
        moved,
        drift(
            &reference,
            &shifted,
            Metric::L2,
            &options,
            &Execution::new()
        )
        .unwrap()
    );
}

#[test]
fn identical_vectors_give_no_drift_and_class_shares_add_up() {
    let labels = [Some(0), Some(0), Some(1), Some(1)];
    let predictions = [Some(1), Some(1), Some(1), None];
    let reference = DatasetView::new(&[1.0f32; 8], 2)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let target = DatasetView::new(&[1.0f32; 8], 2)
        .unwrap()
        .with_predictions(&predictions)
        .unwrap();
    let report = drift(
        &reference,
        &target,
        Metric::L2,
        &DriftOptions::default(),
        &Execution::new(),
    )
    .unwrap();
    assert_eq!((report.mmd_squared, report.p_value), (0.0, 1.0));
    assert_eq!(report.class_shares.len(), 2);
    assert_eq!(report.class_shares[0].class, 0);
    assert_eq!(report.class_shares[0].change, -0.5);
    assert_eq!(report.class_shares[1].change, 0.25);
}

/// The definition, unblocked: the whole pooled kernel matrix, every
/// pair's distance for the median, and each assignment's MMD summed
/// entry by entry, with the kernel's draws in the kernel's order.
fn drift_by_definition(
    reference: &DatasetView<'_>,
    target: &DatasetView<'_>,
    options: &DriftOptions,
) -> (f64, f64, f64) {
    let mut generator = SplitMix64::new(options.seed);
    let reference_rows = generator.sample_indices(reference.n_rows(), options.sample_size);
    let target_rows = generator.sample_indices(target.n_rows(), options.sample_size);
    let points: Vec<Vec<f64>> = reference_rows
        .iter()
        .map(|&row| reference.row(row))
        .chain(target_rows.iter().map(|&row| target.row(row)))
        .map(|row| row.iter().map(|&value| f64::from(value)).collect())
        .collect();
    let n_pooled = points.len();
    let n_reference = reference_rows.len();
    let distance = |left: &[f64], right: &[f64]| {
        left.iter()
            .zip(right)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut pairwise = Vec::new();
    for row in 0..n_pooled {
        for column in row + 1..n_pooled {
            pairwise.push(distance(&points[row], &points[column]));
        }
    }
    let bandwidth = median(&mut pairwise).unwrap();
    let kernel: Vec<Vec<f64>> = points
        .iter()
        .map(|left| {
            points
                .iter()
                .map(|right| (-distance(left, right).powi(2) / (2.0 * bandwidth.powi(2))).exp())
                .collect()
        })
        .collect();
    let mmd = |is_reference: &[bool]| {
        let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
        for row in 0..n_pooled {
            for column in 0..n_pooled {
                match (is_reference[row], is_reference[column]) {
                    (true, true) => xx += kernel[row][column],
                    (false, false) => yy += kernel[row][column],
                    _ => xy += kernel[row][column],
                }
            }
        }
        let n_x = n_reference as f64;
        let n_y = (n_pooled - n_reference) as f64;
        xx / (n_x * n_x) + yy / (n_y * n_y) - xy / (n_x * n_y)
    };
    let mut order: Vec<usize> = (0..n_pooled).collect();
    let mut observed = 0.0;
    let mut at_least_as_large = 0;
    for assignment in 0..=options.n_permutations {
        if assignment > 0 {
            generator.shuffle(&mut order);
        }
        let mut is_reference = vec![false; n_pooled];
        for &index in &order[..n_reference] {
            is_reference[index] = true;
        }
        let statistic = mmd(&is_reference);
        if assignment == 0 {
            observed = statistic;
        } else if statistic >= observed - 1e-12 {
            at_least_as_large += 1;
        }
    }
    let p_value = (1 + at_least_as_large) as f64 / (options.n_permutations + 1) as f64;
    (observed, p_value, bandwidth)
}

#[test]
fn the_blocked_sums_agree_with_the_definition_across_several_tiles() {
    // 700 points a side: the pooled 1,400 span three tiles, so the
    // mirrored off-diagonal tiles and the ragged last one are used.
    let reference_values = uniform(11, 700 * 3, 0.0);
    let target_values = uniform(12, 650 * 3, 0.1);
    let reference = DatasetView::new(&reference_values, 3).unwrap();
    let target = DatasetView::new(&target_values, 3).unwrap();
    for options in [
        DriftOptions {
            sample_size: 700,
            n_permutations: 20,
            seed: 5,
        },
        DriftOptions {
            sample_size: 300,
            n_permutations: 20,
            seed: 6,
        },
    ] {
        let blocked = drift(
            &reference,
            &target,
            Metric::L2,
            &options,
            &Execution::new().with_threads(2),
        )
        .unwrap();
        let (mmd_squared, p_value, bandwidth) = drift_by_definition(&reference, &target, &options);
        assert!(
            (f64::from(blocked.mmd_squared) - mmd_squared).abs() < 1e-6,
            "{blocked:?} vs {mmd_squared}"
        );
        assert!((f64::from(blocked.bandwidth) - bandwidth).abs() < 1e-5 * bandwidth);
        assert_eq!(f64::from(blocked.p_value), p_value as f32 as f64);
    }
}

#[test]
fn memory_grows_with_the_sample_not_its_square() {
    let options = |sample_size| DriftOptions {
        sample_size,
        n_permutations: 200,
        seed: 0,
    };
    // The issue-13 case: 40,000 a side of 1-d data took 51 GB pooled.
    let large = drift_peak_bytes(40_000, 40_000, 1, &options(40_000));
    assert!(large < 64 << 20, "{large}");
    let double = drift_peak_bytes(80_000, 80_000, 1, &options(80_000));
    assert!(double < 2 * large, "{double} vs {large}");
    // The dimension counts once per sampled point.
    let wide = drift_peak_bytes(1_000, 1_000, 4_096, &options(1_000));
    assert!(wide > 2_000 * 4_096 * 8 && wide < 2 * 2_000 * 4_096 * 8 + (64 << 20));
}

#[test]
fn empty_sides_are_errors() {
    let reference = DatasetView::new(&[1.0f32], 1).unwrap();
    let empty = DatasetView::new(&[], 1).unwrap();
    assert!(matches!(
        drift(
            &reference,
            &empty,
            Metric::L2,
            &DriftOptions::default(),
            &Execution::new()
        ),
        Err(Error::EmptyDataset { .. })
    ));
}
