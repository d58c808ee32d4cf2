//! Exact k-nearest-neighbour search: the public entry points ([`knn`],
//! [`knn_graph`], [`ExactIndex`]), whose result is a [`NeighbourLists`].
//!
//! The engine lives in `search`; this module validates inputs and owns the
//! shapes. A self-kNN graph ("each record's neighbours in its own dataset,
//! excluding itself") is a first-class query: every score reuses one graph.

use std::borrow::Cow;

use super::bf16::{Bf16Products, Packed};
use super::neighbours::NeighbourLists;
use super::progress::Execution;
use super::search::{self, QuerySource, SearchPlan};
use super::view::{DatasetView, Metric, check_dimension};
use crate::{Error, Result};

/// Parameters of a kNN search.
///
/// ```
/// use mutant_core::kernels::KnnOptions;
/// let allowed = [true, false, true];
/// let options = KnnOptions::new(2).with_filter(&allowed);
/// assert_eq!(options.k, 2);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KnnOptions<'a> {
    /// How many neighbours per query (at least 1). Lists are shorter when the
    /// dataset (or the filter) leaves fewer candidates.
    pub k: usize,
    /// Rows that may be returned (`true`), one per dataset row; `None` allows all.
    pub filter: Option<&'a [bool]>,
}

impl<'a> KnnOptions<'a> {
    /// `k` neighbours, no filter.
    pub fn new(k: usize) -> Self {
        KnnOptions { k, filter: None }
    }

    /// The same, returning only rows whose `allowed` entry is `true`.
    pub fn with_filter(self, allowed: &'a [bool]) -> Self {
        KnnOptions {
            filter: Some(allowed),
            ..self
        }
    }
}

/// What exact searches precompute from a dataset, in one pass over it: each
/// row's term (squared norm for l2, inverse norm for cosine, nothing for dot)
/// and, for l2 data far from the origin, a centre and the centred copy the
/// GEMM reads. A cache keeps it beside its dataset and updates only the rows
/// that change ([`SearchTerms::update_rows`]), so a warm query does not pay
/// for a pass over the whole matrix.
///
/// ```
/// use mutant_core::kernels::{DatasetView, Execution, ExactIndex, KnnOptions, Metric, SearchTerms};
/// let mut rows = vec![0.0f32, 0.0, 1.0, 1.0];
/// let execution = Execution::new();
/// let mut terms = SearchTerms::new(&DatasetView::new(&rows, 2)?, Metric::L2, &execution)?;
/// rows.extend([4.0, 4.0]); // a third row arrives
/// let dataset = DatasetView::new(&rows, 2)?;
/// terms.update_rows(&dataset, &[2])?;
/// let index = ExactIndex::with_terms(dataset, &terms)?;
/// let lists = index.search(&DatasetView::new(&[3.9f32, 3.9], 2)?, &KnnOptions::new(1), &execution)?;
/// assert_eq!(lists.rows(0), &[2]);
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchTerms {
    metric: Metric,
    dimension: usize,
    n_rows: usize,
    /// One per row, except for dot, which has none.
    row_terms: Vec<f32>,
    centring: Option<Centring>,
    /// The rows the products read, in bf16 for the filter, where the CPU
    /// has it: kept with the terms, a search need not pack them again, and
    /// a single query reads half the bytes.
    packed: Option<Packed>,
}

/// The centre l2 searches subtract, and the dataset minus it.
#[derive(Debug, Clone, PartialEq)]
struct Centring {
    centre: Vec<f32>,
    rows: Vec<f32>,
}

impl SearchTerms {
    /// The terms of `dataset` under `metric`.
    pub fn new(
        dataset: &DatasetView<'_>,
        metric: Metric,
        execution: &Execution<'_>,
    ) -> Result<Self> {
        let centring = match metric {
            Metric::L2 if dataset.n_rows() > 0 => {
                search::l2_centre(dataset, execution)?.map(|centre| {
                    let rows = search::centred(dataset.vectors(), &centre);
                    Centring { centre, rows }
                })
            }
            Metric::L2 | Metric::Cosine | Metric::Dot => None,
        };
        let gemm_rows = centring
            .as_ref()
            .map_or(dataset.vectors(), |centring| centring.rows.as_slice());
        let row_terms = search::row_terms(gemm_rows, dataset.dimension(), metric, execution)?;
        let packed = Bf16Products::detect()
            .map(|_| Packed::rows(gemm_rows, dataset.dimension(), execution.threads()));
        Ok(SearchTerms {
            metric,
            dimension: dataset.dimension(),
            n_rows: dataset.n_rows(),
            row_terms,
            centring,
            packed,
        })
    }

    /// Brings the terms up to date with `dataset`, the same dataset after
    /// some rows changed: `rows` lists the rows whose vectors were rewritten;
    /// rows past the old end are always recomputed, rows past the new end
    /// dropped. The centre stays where it was: any centre gives exact
    /// distances, it only guards their precision.
    pub fn update_rows(&mut self, dataset: &DatasetView<'_>, rows: &[usize]) -> Result<()> {
        check_dimension("the updated dataset", self.dimension, dataset.dimension())?;
        let dimension = self.dimension;
        let old_n_rows = self.n_rows;
        let n_rows = dataset.n_rows();
        let vectors = dataset.vectors();
        let rewritten = || {
            rows.iter()
                .copied()
                .filter(|&row| row < old_n_rows.min(n_rows))
        };
        let changed = rewritten().chain(old_n_rows..n_rows);
        if let Some(centring) = &mut self.centring {
            centring.rows.resize(n_rows * dimension, 0.0);
        }
        if self.metric != Metric::Dot {
            self.row_terms.resize(n_rows, 0.0);
        }
        for row in changed {
            let source = &vectors[row * dimension..(row + 1) * dimension];
            let gemm_row = match &mut self.centring {
                Some(centring) => {
                    let target = &mut centring.rows[row * dimension..(row + 1) * dimension];
                    for ((value, &original), &offset) in
                        target.iter_mut().zip(source).zip(&centring.centre)
                    {
                        *value = original - offset;
                    }
                    &*target
                }
                None => source,
            };
            if self.metric != Metric::Dot {
                self.row_terms[row] = search::row_term(gemm_row, self.metric);
            }
        }
        if let Some(packed) = &mut self.packed {
            let gemm_rows = self
                .centring
                .as_ref()
                .map_or(vectors, |centring| centring.rows.as_slice());
            packed.update_rows(gemm_rows, dimension, rewritten());
        }
        self.n_rows = n_rows;
        Ok(())
    }

    /// The metric these terms serve.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The rows they cover.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Bytes held, for a cache's accounting.
    pub fn size_bytes(&self) -> usize {
        let centring = self.centring.as_ref().map_or(0, |centring| {
            (centring.centre.capacity() + centring.rows.capacity()) * size_of::<f32>()
        });
        let packed = self.packed.as_ref().map_or(0, Packed::size_bytes);
        size_of::<Self>() + self.row_terms.capacity() * size_of::<f32>() + centring + packed
    }
}

/// A dataset prepared for repeated exact kNN searches: its [`SearchTerms`]
/// are computed once, or borrowed from a cache that keeps them.
///
/// ```
/// use mutant_core::kernels::{DatasetView, Execution, ExactIndex, KnnOptions, Metric};
/// let rows = [0.0f32, 0.0, 1.0, 1.0, 4.0, 4.0];
/// let dataset = DatasetView::new(&rows, 2)?;
/// let index = ExactIndex::new(dataset, Metric::L2, &Execution::new())?;
/// let queries = DatasetView::new(&[0.9f32, 0.9], 2)?;
/// let lists = index.search(&queries, &KnnOptions::new(2), &Execution::new())?;
/// assert_eq!(lists.rows(0), &[1, 0]);
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ExactIndex<'a> {
    dataset: DatasetView<'a>,
    terms: Cow<'a, SearchTerms>,
}

impl<'a> ExactIndex<'a> {
    /// Prepares `dataset` for searches under `metric` (one pass over the
    /// matrix); an empty dataset is an error.
    pub fn new(
        dataset: DatasetView<'a>,
        metric: Metric,
        execution: &Execution<'_>,
    ) -> Result<Self> {
        check_searchable(&dataset)?;
        let terms = SearchTerms::new(&dataset, metric, execution)?;
        Ok(ExactIndex {
            dataset,
            terms: Cow::Owned(terms),
        })
    }

    /// Searches `dataset` with terms computed earlier for exactly this data
    /// (kept up to date with [`SearchTerms::update_rows`]); no pass over the
    /// matrix. Terms of another shape are an error.
    pub fn with_terms(dataset: DatasetView<'a>, terms: &'a SearchTerms) -> Result<Self> {
        check_searchable(&dataset)?;
        if terms.n_rows != dataset.n_rows() || terms.dimension != dataset.dimension() {
            return Err(Error::InvalidParameter {
                name: "terms",
                reason: format!(
                    "the search terms cover {} rows of dimension {}, the dataset has {} of dimension {}; \
                     update them with the dataset",
                    terms.n_rows,
                    terms.dimension,
                    dataset.n_rows(),
                    dataset.dimension()
                ),
            });
        }
        Ok(ExactIndex {
            dataset,
            terms: Cow::Borrowed(terms),
        })
    }

    /// The dataset searched.
    pub fn dataset(&self) -> &DatasetView<'a> {
        &self.dataset
    }

    /// The metric of every search.
    pub fn metric(&self) -> Metric {
        self.terms.metric
    }

    /// The `options.k` nearest dataset rows of every query, nearest first, ties
    /// by row order. `queries` must have the dataset's dimension.
    pub fn search(
        &self,
        queries: &DatasetView<'_>,
        options: &KnnOptions<'_>,
        execution: &Execution<'_>,
    ) -> Result<NeighbourLists> {
        self.search_with(queries, options, execution, Bf16Products::detect())
    }

    /// [`ExactIndex::search`] with the bf16 filter given: the CPU's, none, or
    /// (in tests) the emulated one.
    pub(super) fn search_with(
        &self,
        queries: &DatasetView<'_>,
        options: &KnnOptions<'_>,
        execution: &Execution<'_>,
        bf16: Option<Bf16Products>,
    ) -> Result<NeighbourLists> {
        check_dimension("the queries", self.dataset.dimension(), queries.dimension())?;
        let centred_queries = self
            .terms
            .centring
            .as_ref()
            .map(|centring| search::centred(queries.vectors(), &centring.centre));
        self.run(
            QuerySource::External(queries.vectors()),
            centred_queries.as_deref().unwrap_or(queries.vectors()),
            queries.n_rows(),
            options,
            execution,
            bf16,
        )
    }

    /// Every dataset row's `options.k` nearest other rows: the self-kNN graph.
    /// A row is never its own neighbour, though an identical copy of it is.
    pub fn self_graph(
        &self,
        options: &KnnOptions<'_>,
        execution: &Execution<'_>,
    ) -> Result<NeighbourLists> {
        self.self_graph_with(options, execution, Bf16Products::detect())
    }

    /// [`ExactIndex::self_graph`] with the bf16 filter given: the CPU's,
    /// none, or (in tests) the emulated one.
    pub(super) fn self_graph_with(
        &self,
        options: &KnnOptions<'_>,
        execution: &Execution<'_>,
        bf16: Option<Bf16Products>,
    ) -> Result<NeighbourLists> {
        let mut lists = self.run(
            QuerySource::DatasetRows,
            self.gemm_rows(),
            self.dataset.n_rows(),
            options,
            execution,
            bf16,
        )?;
        lists.mark_self_graph();
        Ok(lists)
    }

    fn gemm_rows(&self) -> &[f32] {
        self.terms
            .centring
            .as_ref()
            .map_or(self.dataset.vectors(), |centring| centring.rows.as_slice())
    }

    fn run(
        &self,
        queries: QuerySource<'_>,
        gemm_queries: &[f32],
        n_queries: usize,
        options: &KnnOptions<'_>,
        execution: &Execution<'_>,
        bf16: Option<Bf16Products>,
    ) -> Result<NeighbourLists> {
        if options.k == 0 {
            return Err(Error::InvalidParameter {
                name: "k",
                reason: "k must be at least 1".to_owned(),
            });
        }
        if let Some(mask) = options.filter
            && mask.len() != self.dataset.n_rows()
        {
            return Err(Error::InvalidParameter {
                name: "filter",
                reason: format!(
                    "the mask has {} entries for {} rows; give one per row",
                    mask.len(),
                    self.dataset.n_rows()
                ),
            });
        }
        execution.check_cancelled()?;
        let plan = SearchPlan {
            dataset: self.dataset,
            gemm_rows: self.gemm_rows(),
            gemm_queries,
            metric: self.terms.metric,
            row_terms: &self.terms.row_terms,
            queries,
            n_queries,
            k: options.k.min(self.dataset.n_rows()),
            filter: options.filter,
            packed_rows: bf16.and(self.terms.packed.as_ref()),
            bf16,
        };
        search::run(&plan, execution)
    }
}

/// A kNN search needs rows to search, and row numbers that fit a `u32`.
fn check_searchable(dataset: &DatasetView<'_>) -> Result<()> {
    dataset.require_rows("the dataset to search")?;
    if u32::try_from(dataset.n_rows()).is_err() {
        return Err(Error::InvalidParameter {
            name: "dataset",
            reason: format!(
                "{} rows is more than a kNN search indexes (2^32 - 1); split the dataset",
                dataset.n_rows()
            ),
        });
    }
    Ok(())
}

/// The peak working memory of [`knn`] (`graph_of_self` false: `n_queries`
/// external queries) or [`knn_graph`] (`graph_of_self` true, `n_queries` =
/// `n_rows`) in bytes, including the [`NeighbourLists`] it returns: about
/// `n_queries x k x 8` for the lists, the same again per parallel split of
/// the candidates, tiles per thread, and the centred copy of l2 data.
pub fn knn_peak_bytes(
    n_queries: usize,
    n_rows: usize,
    dimension: usize,
    k: usize,
    threads: usize,
    graph_of_self: bool,
) -> u64 {
    search::search_peak_bytes(n_queries, n_rows, dimension, k, threads, !graph_of_self)
}

/// The `options.k` nearest rows of `dataset` to each query, nearest first.
///
/// ```
/// use mutant_core::kernels::{knn, DatasetView, Execution, KnnOptions, Metric};
/// let dataset = DatasetView::new(&[0.0f32, 0.0, 1.0, 1.0], 2)?; // two rows of dimension 2
/// let queries = DatasetView::new(&[0.9f32, 0.9], 2)?;
/// let lists = knn(&dataset, &queries, Metric::L2, &KnnOptions::new(1), &Execution::new())?;
/// assert_eq!(lists.rows(0), &[1]);
/// assert!((lists.distances(0)[0] - 0.1414).abs() < 1e-3);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn knn(
    dataset: &DatasetView<'_>,
    queries: &DatasetView<'_>,
    metric: Metric,
    options: &KnnOptions<'_>,
    execution: &Execution<'_>,
) -> Result<NeighbourLists> {
    ExactIndex::new(*dataset, metric, execution)?.search(queries, options, execution)
}

/// Every row's `options.k` nearest other rows in its own dataset (the
/// self-kNN graph that the scores share), nearest first.
///
/// ```
/// use mutant_core::kernels::{knn_graph, DatasetView, Execution, KnnOptions, Metric};
/// let dataset = DatasetView::new(&[0.0f32, 1.0, 5.0], 1)?;
/// let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(1), &Execution::new())?;
/// assert_eq!(graph.rows(0), &[1]);
/// assert_eq!(graph.rows(2), &[1]);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn knn_graph(
    dataset: &DatasetView<'_>,
    metric: Metric,
    options: &KnnOptions<'_>,
    execution: &Execution<'_>,
) -> Result<NeighbourLists> {
    ExactIndex::new(*dataset, metric, execution)?.self_graph(options, execution)
}

/// The lists of [`knn_graph`] for `rows` only, and an empty list for every
/// other row: what a score that reads the neighbourhoods of a few rows
/// needs, at `rows.len() / n` of a search's cost instead of half of it.
///
/// ```
/// use mutant_core::kernels::{knn_graph, knn_graph_of_rows, DatasetView, Execution, KnnOptions, Metric};
/// let dataset = DatasetView::new(&[0.0f32, 1.0, 3.0, 7.0], 1)?;
/// let options = KnnOptions::new(2);
/// let some = knn_graph_of_rows(&dataset, &[2], Metric::L2, &options, &Execution::new())?;
/// let whole = knn_graph(&dataset, Metric::L2, &options, &Execution::new())?;
/// assert_eq!(some.rows(2), whole.rows(2));
/// assert!(some.rows(0).is_empty());
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn knn_graph_of_rows(
    dataset: &DatasetView<'_>,
    rows: &[u32],
    metric: Metric,
    options: &KnnOptions<'_>,
    execution: &Execution<'_>,
) -> Result<NeighbourLists> {
    let n_rows = dataset.n_rows();
    let mut list_of = vec![None; n_rows];
    for (position, &row) in rows.iter().enumerate() {
        let slot = list_of
            .get_mut(row as usize)
            .ok_or_else(|| Error::InvalidParameter {
                name: "rows",
                reason: format!("row {row} is past the dataset's {n_rows} rows"),
            })?;
        *slot = Some(position);
    }
    let mut graph = NeighbourLists::with_capacity(n_rows, options.k, metric, n_rows);
    let found = if rows.is_empty() {
        None
    } else {
        let dimension = dataset.dimension();
        let mut values = Vec::with_capacity(rows.len() * dimension);
        for &row in rows {
            values.extend_from_slice(dataset.row(row as usize));
        }
        let queries = DatasetView::new(&values, dimension)?;
        // One more, since each row finds itself.
        let wider = KnnOptions {
            k: options.k + 1,
            filter: options.filter,
        };
        Some(knn(dataset, &queries, metric, &wider, execution)?)
    };
    for (row, position) in list_of.into_iter().enumerate() {
        match (position, &found) {
            (Some(position), Some(found)) => graph.push_list(
                found
                    .rows(position)
                    .iter()
                    .copied()
                    .zip(found.distances(position).iter().copied())
                    .filter(|&(other, _)| other as usize != row),
            ),
            _ => graph.push_list(std::iter::empty()),
        }
    }
    graph.mark_self_graph();
    Ok(graph)
}

#[cfg(test)]
#[path = "knn_tests.rs"]
mod tests;
