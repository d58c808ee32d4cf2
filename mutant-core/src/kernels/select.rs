//! `select`: the next records to label, from quotas per score, deduplicated,
//! topped up at random, optionally spread out by greedy k-center.

use std::collections::HashMap;

use super::duplicates::DuplicatePair;
use super::random::SplitMix64;
use super::view::{DatasetView, Metric};
use crate::{Error, Result};

/// One score's claim on the selection.
#[derive(Debug, Clone, Copy)]
pub struct ScoreQuota<'a> {
    /// Rows in the order this score wants them (highest first), e.g. from
    /// [`RecordScores::ranking`](super::RecordScores::ranking).
    pub ranking: &'a [u32],
    /// Its share of the selection, relative to the other weights (>= 0).
    pub weight: f32,
}

/// Greedy k-center spreading: each quota picks from its score's top
/// `pool_factor x quota` candidates the one farthest from everything already
/// selected, instead of simply the next in rank.
#[derive(Debug, Clone, Copy)]
pub struct KCenter<'a> {
    /// The vectors of the rows being selected from.
    pub dataset: &'a DatasetView<'a>,
    /// How distances are measured.
    pub metric: Metric,
    /// How many candidates per selected record (at least 1; 1 disables spreading).
    pub pool_factor: usize,
}

/// Parameters of [`select`].
#[derive(Debug, Clone, Copy)]
pub struct SelectOptions<'a> {
    /// How many rows to select.
    pub n: usize,
    /// The scores and their weights.
    pub quotas: &'a [ScoreQuota<'a>],
    /// The weight of the random share (the founding prototype's sampler);
    /// whatever the quotas cannot fill is random as well.
    pub random_weight: f32,
    /// Rows that may be selected (`true`), e.g. the unlabeled ones; `None`: all.
    pub eligible: Option<&'a [bool]>,
    /// Near-duplicate pairs: a row is skipped when a duplicate of it is
    /// already selected.
    pub duplicates: &'a [DuplicatePair],
    /// Optional greedy k-center spreading within each quota.
    pub spread: Option<KCenter<'a>>,
    /// Seed of the random top-up.
    pub seed: u64,
}

/// Why a row was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionReason {
    /// By the quota at this index of [`SelectOptions::quotas`].
    Score(usize),
    /// By the random top-up.
    Random,
}

/// One selected row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    /// The row.
    pub row: u32,
    /// Why.
    pub reason: SelectionReason,
}

/// Selects up to `options.n` distinct eligible rows out of `n_rows`.
///
/// Each quota gets `n x weight / (sum of weights + random_weight)` rows
/// (largest remainders rounded up), filled in rank order, skipping rows that
/// are already selected, not eligible, or near duplicates of a selected row;
/// the rest is drawn uniformly at random (seeded) from what remains. Fewer
/// than `n` rows come back only when fewer are eligible.
///
/// ```
/// use mutant_core::kernels::{select, ScoreQuota, SelectOptions, SelectionReason};
/// let uncertainty = [4u32, 2, 0, 1, 3];
/// let novelty = [4u32, 3, 1, 0, 2];
/// let quotas = [ScoreQuota { ranking: &uncertainty, weight: 1.0 }, ScoreQuota { ranking: &novelty, weight: 1.0 }];
/// let options = SelectOptions { n: 3, quotas: &quotas, random_weight: 1.0, eligible: None, duplicates: &[], spread: None, seed: 1 };
/// let selected = select(5, &options)?;
/// assert_eq!(selected.len(), 3);
/// assert_eq!((selected[0].row, selected[1].row), (4, 3)); // novelty's 4 was taken: its next is 3
/// assert_eq!(selected[2].reason, SelectionReason::Random);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn select(n_rows: usize, options: &SelectOptions<'_>) -> Result<Vec<Selected>> {
    let weights: Vec<f32> = options
        .quotas
        .iter()
        .map(|quota| quota.weight)
        .chain([options.random_weight])
        .collect();
    if weights
        .iter()
        .any(|weight| !(weight.is_finite() && *weight >= 0.0))
    {
        return Err(Error::InvalidParameter {
            name: "weight",
            reason: "weights must be finite and >= 0".to_owned(),
        });
    }
    if let Some(mask) = options.eligible
        && mask.len() != n_rows
    {
        return Err(Error::InvalidParameter {
            name: "eligible",
            reason: format!("the mask has {} entries for {n_rows} rows", mask.len()),
        });
    }
    if let Some(quota) = options
        .quotas
        .iter()
        .find(|quota| quota.ranking.iter().any(|&row| row as usize >= n_rows))
    {
        return Err(Error::InvalidParameter {
            name: "ranking",
            reason: format!(
                "a ranking of {} rows refers to a row beyond the {n_rows} rows",
                quota.ranking.len()
            ),
        });
    }
    if let Some(spread) = &options.spread
        && spread.dataset.n_rows() != n_rows
    {
        return Err(Error::InvalidParameter {
            name: "spread",
            reason: format!(
                "the spread dataset has {} rows, expected {n_rows}",
                spread.dataset.n_rows()
            ),
        });
    }
    let sizes = quota_sizes(options.n, &weights);
    let mut partners: HashMap<u32, Vec<u32>> = HashMap::new();
    for pair in options.duplicates {
        partners.entry(pair.row).or_default().push(pair.other_row);
        partners.entry(pair.other_row).or_default().push(pair.row);
    }
    let mut taken = vec![false; n_rows];
    let mut selected: Vec<Selected> = Vec::with_capacity(options.n);
    let available = |row: u32, taken: &[bool]| {
        let row_idx = row as usize;
        !taken[row_idx]
            && options.eligible.is_none_or(|mask| mask[row_idx])
            && partners
                .get(&row)
                .is_none_or(|others| others.iter().all(|&other| !taken[other as usize]))
    };
    for (quota_idx, quota) in options.quotas.iter().enumerate() {
        let size = sizes[quota_idx];
        let pool_factor = options.spread.map_or(1, |spread| spread.pool_factor.max(1));
        let mut chosen = 0;
        while chosen < size {
            // The next candidates in rank order (one, or a pool to spread over).
            let pool: Vec<u32> = quota
                .ranking
                .iter()
                .copied()
                .filter(|&row| available(row, &taken))
                .take(pool_factor * (size - chosen))
                .collect();
            let Some(&first) = pool.first() else {
                break;
            };
            let row = match &options.spread {
                Some(spread) if pool_factor > 1 && !selected.is_empty() => {
                    farthest(spread, &pool, &selected)
                }
                _ => first,
            };
            taken[row as usize] = true;
            selected.push(Selected {
                row,
                reason: SelectionReason::Score(quota_idx),
            });
            chosen += 1;
        }
    }
    let mut generator = SplitMix64::new(options.seed);
    let mut remaining: Vec<u32> = (0..n_rows as u32)
        .filter(|&row| available(row, &taken))
        .collect();
    generator.shuffle(&mut remaining);
    for row in remaining {
        if selected.len() >= options.n {
            break;
        }
        if available(row, &taken) {
            taken[row as usize] = true;
            selected.push(Selected {
                row,
                reason: SelectionReason::Random,
            });
        }
    }
    Ok(selected)
}

/// The pool candidate whose nearest selected row is farthest (greedy
/// k-center); ties keep rank order.
fn farthest(spread: &KCenter<'_>, pool: &[u32], selected: &[Selected]) -> u32 {
    let mut best = (pool[0], f32::NEG_INFINITY);
    for &candidate in pool {
        let vector = spread.dataset.row(candidate as usize);
        let nearest = selected
            .iter()
            .map(|chosen| {
                spread
                    .metric
                    .distance(vector, spread.dataset.row(chosen.row as usize))
            })
            .fold(f32::INFINITY, f32::min);
        if nearest > best.1 {
            best = (candidate, nearest);
        }
    }
    best.0
}

/// Splits `n` by `weights` with largest remainders; all zero weights give
/// everything to the last (random) share.
fn quota_sizes(n: usize, weights: &[f32]) -> Vec<usize> {
    let total: f64 = weights.iter().map(|&weight| f64::from(weight)).sum();
    let mut sizes = vec![0; weights.len()];
    if total <= 0.0 {
        if let Some(last) = sizes.last_mut() {
            *last = n;
        }
        return sizes;
    }
    let exact: Vec<f64> = weights
        .iter()
        .map(|&weight| n as f64 * f64::from(weight) / total)
        .collect();
    for (size, &share) in sizes.iter_mut().zip(&exact) {
        *size = share.floor() as usize;
    }
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by(|&left, &right| {
        (exact[right] - exact[right].floor())
            .total_cmp(&(exact[left] - exact[left].floor()))
            .then(left.cmp(&right))
    });
    let assigned: usize = sizes.iter().sum();
    for &index in by_remainder.iter().take(n.saturating_sub(assigned)) {
        sizes[index] += 1;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options<'a>(n: usize, quotas: &'a [ScoreQuota<'a>]) -> SelectOptions<'a> {
        SelectOptions {
            n,
            quotas,
            random_weight: 0.0,
            eligible: None,
            duplicates: &[],
            spread: None,
            seed: 3,
        }
    }

    #[test]
    fn quota_sizes_add_up() {
        assert_eq!(quota_sizes(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(quota_sizes(5, &[0.0, 0.0]), vec![0, 5]);
        assert_eq!(quota_sizes(7, &[2.0, 1.0, 0.0]).iter().sum::<usize>(), 7);
    }

    #[test]
    fn selection_is_distinct_eligible_and_skips_duplicates() {
        let ranking = [0u32, 1, 2, 3, 4, 5];
        let quotas = [ScoreQuota {
            ranking: &ranking,
            weight: 1.0,
        }];
        let eligible = [true, true, false, true, true, true];
        let duplicates = [DuplicatePair {
            row: 0,
            other_row: 1,
            distance: 0.0,
            score: 1.0,
            exact: true,
        }];
        let selected = select(
            6,
            &SelectOptions {
                eligible: Some(&eligible),
                duplicates: &duplicates,
                ..options(3, &quotas)
            },
        )
        .unwrap();
        let rows: Vec<u32> = selected.iter().map(|chosen| chosen.row).collect();
        assert_eq!(rows, vec![0, 3, 4]);
        // More than is eligible: everything eligible, once.
        let all = select(
            6,
            &SelectOptions {
                eligible: Some(&eligible),
                random_weight: 1.0,
                ..options(10, &quotas)
            },
        )
        .unwrap();
        let mut rows: Vec<u32> = all.iter().map(|chosen| chosen.row).collect();
        rows.sort();
        assert_eq!(rows, vec![0, 1, 3, 4, 5]);
    }

    #[test]
    fn k_center_spreads_the_quota() {
        let values = [0.0f32, 0.01, 0.02, 10.0, 10.01, 20.0];
        let dataset = DatasetView::new(&values, 1).unwrap();
        let ranking = [0u32, 1, 2, 3, 4, 5];
        let quotas = [ScoreQuota {
            ranking: &ranking,
            weight: 1.0,
        }];
        let spread = KCenter {
            dataset: &dataset,
            metric: Metric::L2,
            pool_factor: 3,
        };
        let selected = select(
            6,
            &SelectOptions {
                spread: Some(spread),
                ..options(3, &quotas)
            },
        )
        .unwrap();
        let rows: Vec<u32> = selected.iter().map(|chosen| chosen.row).collect();
        assert_eq!(rows, vec![0, 5, 3]);
    }

    #[test]
    fn random_top_up_is_seeded() {
        let quotas: [ScoreQuota<'_>; 0] = [];
        let first = select(
            100,
            &SelectOptions {
                random_weight: 1.0,
                ..options(10, &quotas)
            },
        )
        .unwrap();
        let second = select(
            100,
            &SelectOptions {
                random_weight: 1.0,
                ..options(10, &quotas)
            },
        )
        .unwrap();
        assert_eq!(first, second);
        assert!(
            first
                .iter()
                .all(|chosen| chosen.reason == SelectionReason::Random)
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let ranking = [7u32];
        let quotas = [ScoreQuota {
            ranking: &ranking,
            weight: 1.0,
        }];
        assert!(select(3, &options(1, &quotas)).is_err());
        let ranking = [0u32];
        let quotas = [ScoreQuota {
            ranking: &ranking,
            weight: f32::NAN,
        }];
        assert!(select(3, &options(1, &quotas)).is_err());
    }
}
