//! What a filter may cost, and filters prepared for many rows.
//!
//! One bound serves every route a filter reaches (fetch, count, delete,
//! kNN), checked where the wire syntax is read: at most
//! [`MAX_FILTER_VALUES`] values over all its conditions, and at most
//! [`MAX_FILTER_CONDITIONS`] conditions. A kNN filter on the fields a
//! loaded dataset holds is evaluated in memory on every row, as a
//! [`TextFilter`]: its `$in` and `$nin` lists become hash sets, so a row
//! costs at most one look-up per condition whatever the lists' lengths.

use std::cmp::Ordering;
use std::collections::HashSet;

use super::filter::{Condition, Field, Filter, FilterValue};
use crate::{Error, Result};

/// The most values one filter may compare with, over all its conditions
/// (a single `$in` may list as many). `ids` lists count here too.
pub const MAX_FILTER_VALUES: usize = 100_000;
/// The most conditions (field comparisons) one filter may hold.
pub const MAX_FILTER_CONDITIONS: usize = 256;

impl Filter {
    /// The values the filter compares with, and its conditions.
    fn cost(&self) -> (usize, usize) {
        match self {
            Filter::And(parts) | Filter::Or(parts) => parts
                .iter()
                .map(Filter::cost)
                .fold((0, 0), |total, part| (total.0 + part.0, total.1 + part.1)),
            Filter::Condition(_, Condition::In(values) | Condition::Nin(values)) => {
                (values.len(), 1)
            }
            Filter::Condition(..) => (1, 1),
        }
    }

    /// Refuses a filter over the cost bound (see the module's doc), with
    /// `invalid_filter`.
    ///
    /// ```
    /// use mutant_core::model::{Filter, MAX_FILTER_VALUES};
    /// assert!(Filter::ids((0..MAX_FILTER_VALUES).map(|n| n.to_string())).check_cost().is_ok());
    /// let wide = Filter::Or(vec![Filter::ids(vec!["a"; MAX_FILTER_VALUES]), Filter::ids(["b"])]);
    /// assert!(wide.check_cost().is_err());
    /// ```
    pub fn check_cost(&self) -> Result<()> {
        let (n_values, n_conditions) = self.cost();
        if n_values > MAX_FILTER_VALUES {
            return Err(Error::InvalidFilter {
                reason: format!(
                    "the filter compares with {n_values} values in all; the limit is {MAX_FILTER_VALUES}; split the request"
                ),
            });
        }
        if n_conditions > MAX_FILTER_CONDITIONS {
            return Err(Error::InvalidFilter {
                reason: format!(
                    "the filter holds {n_conditions} conditions; the limit is {MAX_FILTER_CONDITIONS}; list values with $in instead of one condition each"
                ),
            });
        }
        Ok(())
    }
}

/// A filter over the text fields a loaded dataset holds (`id`, `label`,
/// `prediction`), prepared to be evaluated on many rows: it reads borrowed
/// text, allocates nothing per row, and looks `$in` / `$nin` values up in
/// hash sets. It matches exactly what [`Filter::matches_fields`] matches.
#[derive(Debug)]
pub struct TextFilter<'f> {
    root: Node<'f>,
}

#[derive(Debug)]
enum Node<'f> {
    All(Vec<Node<'f>>),
    Any(Vec<Node<'f>>),
    Test(&'f Field, Test<'f>),
}

/// One condition on text that is present (`Some`) or absent (`None`).
#[derive(Debug)]
enum Test<'f> {
    /// Equal to one of the texts, or absent when `absent` is in the set.
    OneOf {
        texts: HashSet<&'f str>,
        absent: bool,
        negated: bool,
    },
    /// Present and ordered against `bound` as `accept` wants.
    Range {
        bound: &'f str,
        accept: fn(Ordering) -> bool,
    },
    /// Never holds (a range bound or an equality operand that no text equals).
    Never,
}

impl<'f> TextFilter<'f> {
    /// The filter prepared, or `None` when it reads other fields than
    /// `id`, `label` and `prediction`.
    ///
    /// ```
    /// use mutant_core::model::{Field, Filter, TextFilter};
    /// let filter = Filter::from_json(&serde_json::json!({"label": {"$in": ["cat", "dog"]}}))?;
    /// let prepared = TextFilter::new(&filter).expect("label only");
    /// assert!(prepared.matches(|field| (*field == Field::Label).then_some("dog")));
    /// assert!(!prepared.matches(|_| None));
    /// # Ok::<(), mutant_core::Error>(())
    /// ```
    pub fn new(filter: &'f Filter) -> Option<Self> {
        filter
            .reads_only_id_label_prediction()
            .then(|| TextFilter { root: node(filter) })
    }

    /// Whether the row whose text `value_of` reads (`None`: absent) matches.
    pub fn matches<'r>(&self, value_of: impl Fn(&Field) -> Option<&'r str>) -> bool {
        holds(&self.root, &value_of)
    }
}

fn node(filter: &Filter) -> Node<'_> {
    match filter {
        Filter::And(parts) => Node::All(parts.iter().map(node).collect()),
        Filter::Or(parts) => Node::Any(parts.iter().map(node).collect()),
        Filter::Condition(field, condition) => Node::Test(field, test(condition)),
    }
}

fn test(condition: &Condition) -> Test<'_> {
    match condition {
        Condition::Eq(value) => one_of(std::slice::from_ref(value), false),
        Condition::Ne(value) => one_of(std::slice::from_ref(value), true),
        Condition::In(values) => one_of(values, false),
        Condition::Nin(values) => one_of(values, true),
        Condition::Gt(bound) => range(bound, Ordering::is_gt),
        Condition::Gte(bound) => range(bound, Ordering::is_ge),
        Condition::Lt(bound) => range(bound, Ordering::is_lt),
        Condition::Lte(bound) => range(bound, Ordering::is_le),
    }
}

fn one_of(values: &[FilterValue], negated: bool) -> Test<'_> {
    let mut texts = HashSet::with_capacity(values.len());
    let mut absent = false;
    for value in values {
        match value {
            FilterValue::String(text) => {
                texts.insert(text.as_str());
            }
            FilterValue::Null => absent = true,
            // Text never equals a number or a boolean.
            FilterValue::Number(_) | FilterValue::Bool(_) => {}
        }
    }
    Test::OneOf {
        texts,
        absent,
        negated,
    }
}

fn range(bound: &FilterValue, accept: fn(Ordering) -> bool) -> Test<'_> {
    match bound {
        FilterValue::String(bound) => Test::Range {
            bound: bound.as_str(),
            accept,
        },
        FilterValue::Number(_) | FilterValue::Bool(_) | FilterValue::Null => Test::Never,
    }
}

fn holds<'r>(node: &Node<'_>, value_of: &impl Fn(&Field) -> Option<&'r str>) -> bool {
    match node {
        Node::All(parts) => parts.iter().all(|part| holds(part, value_of)),
        Node::Any(parts) => parts.iter().any(|part| holds(part, value_of)),
        Node::Test(field, test) => {
            let value = value_of(field);
            match test {
                Test::OneOf {
                    texts,
                    absent,
                    negated,
                } => {
                    let found = match value {
                        Some(text) => texts.contains(text),
                        None => *absent,
                    };
                    found != *negated
                }
                Test::Range { bound, accept } => {
                    value.is_some_and(|text| accept(text.as_bytes().cmp(bound.as_bytes())))
                }
                Test::Never => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_prepared_filter_matches_what_the_reference_semantics_match() {
        let filters: Vec<Value> = vec![
            json!({"label": "cat"}),
            json!({"label": null}),
            json!({"label": {"$ne": "cat"}}),
            json!({"label": {"$ne": null}}),
            json!({"prediction": {"$in": ["cat", "dog", null]}}),
            json!({"prediction": {"$nin": ["cat"]}}),
            json!({"id": {"$gte": "b"}, "label": {"$lt": "d"}}),
            json!({"id": {"$gt": "a", "$lte": "c"}}),
            json!({"$or": [{"label": "cat"}, {"prediction": {"$in": ["dog"]}}]}),
            json!({"$and": [{"$or": []}, {"label": "cat"}]}),
            json!({"$and": []}),
            json!({"$or": [{"id": "a"}, {"$and": [{"label": {"$nin": [null]}}, {"prediction": null}]}]}),
        ];
        let rows: Vec<(&str, Option<&str>, Option<&str>)> = vec![
            ("a", Some("cat"), Some("dog")),
            ("b", None, Some("cat")),
            ("c", Some("dog"), None),
            ("d", None, None),
            ("e", Some("bird"), Some("bird")),
        ];
        for wire in &filters {
            let filter = Filter::from_json(wire).unwrap();
            let prepared = TextFilter::new(&filter).unwrap();
            for &(id, label, prediction) in &rows {
                let text = |field: &Field| match field {
                    Field::Id => Some(id),
                    Field::Label => label,
                    Field::Prediction => prediction,
                    Field::Uri | Field::Metadata(_) => None,
                };
                let reference = filter.matches_fields(&|field| {
                    text(field).map(|text| FilterValue::String(text.into()))
                });
                assert_eq!(prepared.matches(text), reference, "{wire} on {id}");
            }
        }
        let metadata = Filter::from_json(&json!({"metadata.n": 1})).unwrap();
        assert!(TextFilter::new(&metadata).is_none());
    }

    #[test]
    fn the_cost_bound_counts_every_value_and_condition() {
        let many_conditions: Vec<Value> = (0..=MAX_FILTER_CONDITIONS)
            .map(|index| json!({"label": index.to_string()}))
            .collect();
        let refused = Filter::from_json(&json!({"$or": many_conditions}));
        assert!(
            matches!(refused, Err(Error::InvalidFilter { reason }) if reason.contains("conditions"))
        );
        let half: Vec<String> = (0..MAX_FILTER_VALUES / 2 + 1)
            .map(|n| n.to_string())
            .collect();
        let wide = json!({"$or": [{"id": {"$in": half}}, {"label": {"$in": half}}]});
        let refused = Filter::from_json(&wide);
        assert!(
            matches!(refused, Err(Error::InvalidFilter { reason }) if reason.contains("values"))
        );
        let fits = json!({"$or": [{"id": {"$in": half[1..]}}, {"label": {"$in": half[1..]}}]});
        assert!(Filter::from_json(&fits).is_ok());
    }
}
