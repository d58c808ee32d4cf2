//! `select`: the next records to label, from quotas per score, deduplicated,
//! topped up at random, optionally spread out by greedy k-center on the
//! self-kNN graph.
//!
//! Every step is bounded by `n log n` in the rows it looks at: each quota
//! walks its ranking once (a row passed over is never available again:
//! rows only get taken), the random top-up shuffles once, and spreading
//! keeps its candidates in a heap whose keys only fall, each fall caused by
//! one edge of the neighbour graph. The cancel flag is read at every pick.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::duplicates::DuplicatePair;
use super::neighbours::NeighbourLists;
use super::progress::{Execution, Stage};
use super::random::SplitMix64;
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

/// Greedy k-center spreading on the self-kNN graph: each quota picks from
/// its score's top `pool_factor x quota` candidates the one farthest from
/// everything already selected, instead of simply the next in rank.
///
/// A candidate's distance to the selection is read off the graph: the
/// distance to the nearest selected record among its own neighbours or
/// among the records that list it as a neighbour. A candidate with no
/// selected record in that neighbourhood is farther than any that has one,
/// and such candidates go in rank order. Measuring exact distances to every
/// selected record would cost `n` per candidate and pick (cubic in `n`);
/// the graph costs `k` per pick.
#[derive(Debug, Clone, Copy)]
pub struct KCenter<'a> {
    /// The self-kNN graph of the rows being selected from (self excluded).
    pub graph: &'a NeighbourLists,
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
/// than `n` rows come back only when fewer are eligible. Stops with
/// [`Error::Cancelled`] at the pick after `execution`'s cancel flag is set.
///
/// ```
/// use mutant_core::kernels::{select, Execution, ScoreQuota, SelectOptions, SelectionReason};
/// let uncertainty = [4u32, 2, 0, 1, 3];
/// let novelty = [4u32, 3, 1, 0, 2];
/// let quotas = [ScoreQuota { ranking: &uncertainty, weight: 1.0 }, ScoreQuota { ranking: &novelty, weight: 1.0 }];
/// let options = SelectOptions { n: 3, quotas: &quotas, random_weight: 1.0, eligible: None, duplicates: &[], spread: None, seed: 1 };
/// let selected = select(5, &options, &Execution::new())?;
/// assert_eq!(selected.len(), 3);
/// assert_eq!((selected[0].row, selected[1].row), (4, 3)); // novelty's 4 was taken: its next is 3
/// assert_eq!(selected[2].reason, SelectionReason::Random);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn select(
    n_rows: usize,
    options: &SelectOptions<'_>,
    execution: &Execution<'_>,
) -> Result<Vec<Selected>> {
    let weights = checked_weights(n_rows, options)?;
    let sizes = quota_sizes(options.n, &weights);
    let mut picking = Picking::new(n_rows, options);
    let spread = options
        .spread
        .filter(|spread| spread.pool_factor > 1)
        .map(|spread| (spread, ReverseGraph::new(spread.graph)));
    let stage = execution.stage(0.0, 1.0, options.n);
    for (quota_idx, quota) in options.quotas.iter().enumerate() {
        let reason = SelectionReason::Score(quota_idx);
        match &spread {
            Some((kcenter, reverse)) => picking.fill_spread(
                quota.ranking,
                sizes[quota_idx],
                (kcenter, reverse),
                reason,
                &stage,
            )?,
            None => picking.fill_in_rank(quota.ranking, sizes[quota_idx], reason, &stage)?,
        }
    }
    execution.check_cancelled()?;
    let mut generator = SplitMix64::new(options.seed);
    let mut remaining: Vec<u32> = (0..n_rows as u32)
        .filter(|&row| picking.available(row))
        .collect();
    generator.shuffle(&mut remaining);
    let n_random = options.n.saturating_sub(picking.selected.len());
    picking.fill_in_rank(&remaining, n_random, SelectionReason::Random, &stage)?;
    Ok(picking.selected)
}

/// The weights of the quotas and of the random share, once the options are
/// known to fit `n_rows`.
fn checked_weights(n_rows: usize, options: &SelectOptions<'_>) -> Result<Vec<f32>> {
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
        && spread.graph.n_queries() != n_rows
    {
        return Err(Error::InvalidParameter {
            name: "spread",
            reason: format!(
                "the spread graph has {} rows, expected {n_rows}",
                spread.graph.n_queries()
            ),
        });
    }
    Ok(weights)
}

/// The selection so far and what decides whether a row is still available.
struct Picking<'a> {
    taken: Vec<bool>,
    selected: Vec<Selected>,
    eligible: Option<&'a [bool]>,
    partners: HashMap<u32, Vec<u32>>,
}

impl<'a> Picking<'a> {
    fn new(n_rows: usize, options: &SelectOptions<'a>) -> Self {
        let mut partners: HashMap<u32, Vec<u32>> = HashMap::new();
        for pair in options.duplicates {
            partners.entry(pair.row).or_default().push(pair.other_row);
            partners.entry(pair.other_row).or_default().push(pair.row);
        }
        Picking {
            taken: vec![false; n_rows],
            selected: Vec::with_capacity(options.n.min(n_rows)),
            eligible: options.eligible,
            partners,
        }
    }

    /// Not taken, eligible, and no near duplicate of it taken. Once false,
    /// false for good: rows are only ever taken.
    fn available(&self, row: u32) -> bool {
        let row_idx = row as usize;
        !self.taken[row_idx]
            && self.eligible.is_none_or(|mask| mask[row_idx])
            && self
                .partners
                .get(&row)
                .is_none_or(|others| others.iter().all(|&other| !self.taken[other as usize]))
    }

    fn take(&mut self, row: u32, reason: SelectionReason, stage: &Stage<'_>) -> Result<()> {
        self.taken[row as usize] = true;
        self.selected.push(Selected { row, reason });
        stage.advance(1)
    }

    /// Takes up to `size` available rows of `order`, in order, in one walk.
    fn fill_in_rank(
        &mut self,
        order: &[u32],
        size: usize,
        reason: SelectionReason,
        stage: &Stage<'_>,
    ) -> Result<()> {
        let mut chosen = 0;
        for &row in order {
            if chosen >= size {
                break;
            }
            if self.available(row) {
                self.take(row, reason, stage)?;
                chosen += 1;
            }
        }
        Ok(())
    }

    /// Takes up to `size` rows from the top `pool_factor x size` available
    /// rows of `ranking`, each time the one farthest from the selection (see
    /// [`KCenter`]), ties in rank order.
    fn fill_spread(
        &mut self,
        ranking: &[u32],
        size: usize,
        (kcenter, reverse): (&KCenter<'_>, &ReverseGraph),
        reason: SelectionReason,
        stage: &Stage<'_>,
    ) -> Result<()> {
        let pool: Vec<u32> = ranking
            .iter()
            .copied()
            .filter(|&row| self.available(row))
            .take(kcenter.pool_factor.saturating_mul(size))
            .collect();
        // Position in the pool by row, and each candidate's distance to the
        // nearest selected row the graph knows of.
        let position: HashMap<u32, usize> = pool
            .iter()
            .enumerate()
            .map(|(pool_idx, &row)| (row, pool_idx))
            .collect();
        let mut reach = vec![f32::INFINITY; pool.len()];
        for chosen in &self.selected {
            for (neighbour, distance) in neighbourhood(kcenter.graph, reverse, chosen.row) {
                if let Some(&pool_idx) = position.get(&neighbour) {
                    reach[pool_idx] = reach[pool_idx].min(distance);
                }
            }
        }
        let mut heap: BinaryHeap<Candidate> = reach
            .iter()
            .enumerate()
            .map(|(pool_idx, &distance)| Candidate { distance, pool_idx })
            .collect();
        let mut chosen = 0;
        while chosen < size {
            let Some(top) = heap.pop() else { break };
            let row = pool[top.pool_idx];
            // A stale entry (its candidate got nearer since), or a row a
            // pick made unavailable.
            if top.distance.total_cmp(&reach[top.pool_idx]).is_ne() || !self.available(row) {
                continue;
            }
            self.take(row, reason, stage)?;
            chosen += 1;
            for (neighbour, distance) in neighbourhood(kcenter.graph, reverse, row) {
                if let Some(&pool_idx) = position.get(&neighbour)
                    && distance < reach[pool_idx]
                {
                    reach[pool_idx] = distance;
                    heap.push(Candidate { distance, pool_idx });
                }
            }
        }
        Ok(())
    }
}

/// A row's graph neighbourhood with distances: its own neighbours, then the
/// rows that list it.
fn neighbourhood<'g>(
    graph: &'g NeighbourLists,
    reverse: &'g ReverseGraph,
    row: u32,
) -> impl Iterator<Item = (u32, f32)> + 'g {
    let row_idx = row as usize;
    graph
        .rows(row_idx)
        .iter()
        .copied()
        .zip(graph.distances(row_idx).iter().copied())
        .chain(reverse.of(row_idx).iter().copied())
}

/// For every row, the rows whose neighbour lists hold it, with the distance.
struct ReverseGraph {
    starts: Vec<usize>,
    entries: Vec<(u32, f32)>,
}

impl ReverseGraph {
    fn new(graph: &NeighbourLists) -> Self {
        let n_rows = graph.n_queries();
        let mut counts = vec![0usize; n_rows + 1];
        for row_idx in 0..n_rows {
            for &neighbour in graph.rows(row_idx) {
                counts[neighbour as usize + 1] += 1;
            }
        }
        for row_idx in 0..n_rows {
            counts[row_idx + 1] += counts[row_idx];
        }
        let mut next = counts.clone();
        let mut entries = vec![(0u32, 0.0f32); counts[n_rows]];
        for row_idx in 0..n_rows {
            for (&neighbour, &distance) in graph.rows(row_idx).iter().zip(graph.distances(row_idx))
            {
                let slot = &mut next[neighbour as usize];
                entries[*slot] = (row_idx as u32, distance);
                *slot += 1;
            }
        }
        ReverseGraph {
            starts: counts,
            entries,
        }
    }

    fn of(&self, row_idx: usize) -> &[(u32, f32)] {
        &self.entries[self.starts[row_idx]..self.starts[row_idx + 1]]
    }
}

/// A pool candidate and its distance to the selection when pushed; the
/// heap's top is the farthest, the best ranked among equals.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    distance: f32,
    pool_idx: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(other.pool_idx.cmp(&self.pool_idx))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
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
    use std::sync::atomic::AtomicBool;

    use super::super::{DatasetView, KnnOptions, Metric, knn_graph};
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

    fn run(n_rows: usize, options: &SelectOptions<'_>) -> Result<Vec<Selected>> {
        select(n_rows, options, &Execution::new())
    }

    fn rows_of(selected: &[Selected]) -> Vec<u32> {
        selected.iter().map(|chosen| chosen.row).collect()
    }

    /// The selection as first written: every pick rescans its ranking from
    /// the top for the first available row.
    fn rescanning_model(n_rows: usize, options: &SelectOptions<'_>) -> Vec<u32> {
        let weights: Vec<f32> = options
            .quotas
            .iter()
            .map(|quota| quota.weight)
            .chain([options.random_weight])
            .collect();
        let sizes = quota_sizes(options.n, &weights);
        let mut taken = vec![false; n_rows];
        let available = |row: u32, taken: &[bool]| {
            !taken[row as usize]
                && options.eligible.is_none_or(|mask| mask[row as usize])
                && options.duplicates.iter().all(|pair| {
                    !((pair.row == row && taken[pair.other_row as usize])
                        || (pair.other_row == row && taken[pair.row as usize]))
                })
        };
        let mut picked = Vec::new();
        for (quota, &size) in options.quotas.iter().zip(&sizes) {
            for _ in 0..size {
                let Some(&row) = quota.ranking.iter().find(|&&row| available(row, &taken)) else {
                    break;
                };
                taken[row as usize] = true;
                picked.push(row);
            }
        }
        picked
    }

    #[test]
    fn quota_sizes_add_up() {
        assert_eq!(quota_sizes(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(quota_sizes(5, &[0.0, 0.0]), vec![0, 5]);
        assert_eq!(quota_sizes(7, &[2.0, 1.0, 0.0]).iter().sum::<usize>(), 7);
    }

    #[test]
    fn one_walk_per_ranking_picks_what_rescanning_picks() {
        let mut generator = SplitMix64::new(17);
        for round in 0..40 {
            let n_rows = 30 + round * 7;
            let mut first: Vec<u32> = (0..n_rows as u32).collect();
            let mut second = first.clone();
            generator.shuffle(&mut first);
            generator.shuffle(&mut second);
            let eligible: Vec<bool> = (0..n_rows).map(|row| (row * 7 + round) % 5 != 0).collect();
            let duplicates: Vec<DuplicatePair> = (0..n_rows as u32 / 3)
                .map(|index| DuplicatePair {
                    row: first[index as usize],
                    other_row: second[index as usize],
                    distance: 0.0,
                    score: 1.0,
                    exact: true,
                })
                .filter(|pair| pair.row != pair.other_row)
                .collect();
            let quotas = [
                ScoreQuota {
                    ranking: &first,
                    weight: 2.0,
                },
                ScoreQuota {
                    ranking: &second,
                    weight: 1.0,
                },
            ];
            let options = SelectOptions {
                eligible: Some(&eligible),
                duplicates: &duplicates,
                ..options(n_rows / 3, &quotas)
            };
            let picked = rows_of(&run(n_rows, &options).unwrap());
            assert_eq!(picked, rescanning_model(n_rows, &options), "round {round}");
        }
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
        let selected = run(
            6,
            &SelectOptions {
                eligible: Some(&eligible),
                duplicates: &duplicates,
                ..options(3, &quotas)
            },
        )
        .unwrap();
        assert_eq!(rows_of(&selected), vec![0, 3, 4]);
        // More than is eligible: everything eligible, once.
        let all = run(
            6,
            &SelectOptions {
                eligible: Some(&eligible),
                random_weight: 1.0,
                ..options(10, &quotas)
            },
        )
        .unwrap();
        let mut rows = rows_of(&all);
        rows.sort();
        assert_eq!(rows, vec![0, 1, 3, 4, 5]);
    }

    #[test]
    fn k_center_spreads_the_quota() {
        let values = [0.0f32, 0.01, 0.02, 10.0, 10.01, 20.0];
        let dataset = DatasetView::new(&values, 1).unwrap();
        let graph =
            knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new()).unwrap();
        let ranking = [0u32, 1, 2, 3, 4, 5];
        let quotas = [ScoreQuota {
            ranking: &ranking,
            weight: 1.0,
        }];
        let spread = KCenter {
            graph: &graph,
            pool_factor: 3,
        };
        let selected = run(
            6,
            &SelectOptions {
                spread: Some(spread),
                ..options(3, &quotas)
            },
        )
        .unwrap();
        // One from each group, where rank order alone takes 0, 1 and 2.
        assert_eq!(rows_of(&selected), vec![0, 3, 5]);
    }

    #[test]
    fn a_set_cancel_flag_stops_the_picking() {
        let ranking: Vec<u32> = (0..1_000).collect();
        let quotas = [ScoreQuota {
            ranking: &ranking,
            weight: 1.0,
        }];
        let cancel = AtomicBool::new(true);
        let cancelled = select(
            1_000,
            &options(500, &quotas),
            &Execution::new().with_cancel_flag(&cancel),
        );
        assert!(matches!(cancelled, Err(Error::Cancelled)));
    }

    #[test]
    fn random_top_up_is_seeded() {
        let quotas: [ScoreQuota<'_>; 0] = [];
        let random = SelectOptions {
            random_weight: 1.0,
            ..options(10, &quotas)
        };
        let first = run(100, &random).unwrap();
        assert_eq!(first, run(100, &random).unwrap());
        assert_eq!(first.len(), 10);
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
        assert!(run(3, &options(1, &quotas)).is_err());
        let ranking = [0u32];
        let quotas = [ScoreQuota {
            ranking: &ranking,
            weight: f32::NAN,
        }];
        assert!(run(3, &options(1, &quotas)).is_err());
    }
}
