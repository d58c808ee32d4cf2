//! Filters over records, in the document-store syntax users know from Chroma
//! and MongoDB: `{"label": "cat"}`, `{"prediction": {"$in": ["cat", "dog"]}}`,
//! `{"$and": [...]}`, `{"$or": [...]}`. The same filter serves fetch, count,
//! delete and kNN. Unknown operators or fields are errors, never ignored.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::record::{MetadataValue, Record, validate_metadata_key};
use crate::{Error, Result};

/// The deepest nesting of `$and` / `$or` accepted.
const MAX_DEPTH: usize = 32;
/// The most values one `$in` / `$nin` may list.
const MAX_SET_LEN: usize = 100_000;

/// A predicate over records.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every sub-filter holds (true when empty).
    And(Vec<Filter>),
    /// At least one sub-filter holds (false when empty).
    Or(Vec<Filter>),
    /// One field compared with a value.
    Condition(Field, Condition),
}

/// A field a filter can look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The record id (a string, always present).
    Id,
    /// The label (a string, optional).
    Label,
    /// The prediction (a string, optional).
    Prediction,
    /// The uri (a string, optional).
    Uri,
    /// A key of the record's metadata.
    Metadata(String),
}

impl Field {
    /// The wire name: `id`, `label`, `prediction`, `uri`, `metadata.<key>`.
    pub fn wire_name(&self) -> String {
        match self {
            Field::Id => "id".into(),
            Field::Label => "label".into(),
            Field::Prediction => "prediction".into(),
            Field::Uri => "uri".into(),
            Field::Metadata(key) => format!("metadata.{key}"),
        }
    }

    fn parse(name: &str) -> Result<Field> {
        match name {
            "id" => Ok(Field::Id),
            "label" => Ok(Field::Label),
            "prediction" => Ok(Field::Prediction),
            "uri" => Ok(Field::Uri),
            other => match other.strip_prefix("metadata.") {
                Some(key) => {
                    validate_metadata_key(key)
                        .map_err(|_| invalid(format!("{other:?} names an invalid metadata key")))?;
                    Ok(Field::Metadata(key.to_owned()))
                }
                None => Err(invalid(format!(
                    "unknown field {other:?}; use id, label, prediction, uri or metadata.<key>"
                ))),
            },
        }
    }

    fn is_string_field(&self) -> bool {
        !matches!(self, Field::Metadata(_))
    }
}

/// A scalar a field is compared with. `Null` stands for "absent".
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// A string.
    String(String),
    /// A number, compared as f64.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// The field is absent.
    Null,
}

/// A comparison. Equality is type-strict (`"1"` is not `1`); `$ne` and `$nin`
/// also match records where the field is absent, as in MongoDB; range
/// comparisons match only values of the same type (numbers numerically,
/// strings byte-wise).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `$eq`
    Eq(FilterValue),
    /// `$ne`
    Ne(FilterValue),
    /// `$in`
    In(Vec<FilterValue>),
    /// `$nin`
    Nin(Vec<FilterValue>),
    /// `$gt`
    Gt(FilterValue),
    /// `$gte`
    Gte(FilterValue),
    /// `$lt`
    Lt(FilterValue),
    /// `$lte`
    Lte(FilterValue),
}

fn invalid(reason: String) -> Error {
    Error::InvalidFilter { reason }
}

impl Filter {
    /// A filter matching every record.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }

    /// Records whose id is one of `ids`.
    pub fn ids<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Filter {
        let values = ids
            .into_iter()
            .map(|id| FilterValue::String(id.into()))
            .collect();
        Filter::Condition(Field::Id, Condition::In(values))
    }

    /// Records whose `field` equals `value`.
    pub fn eq(field: Field, value: FilterValue) -> Filter {
        Filter::Condition(field, Condition::Eq(value))
    }

    /// Reads the wire syntax. A top-level object with several keys is an
    /// implicit `$and`; an object value holds operators, anything else is `$eq`.
    ///
    /// ```
    /// use mutant_core::model::Filter;
    /// use serde_json::json;
    /// let filter = Filter::from_json(&json!({"$or": [{"label": "cat"}, {"metadata.score": {"$gte": 0.5}}]}))?;
    /// assert!(Filter::from_json(&json!({"label": {"$like": "c%"}})).is_err());
    /// assert!(Filter::from_json(&json!({"colour": "red"})).is_err());
    /// # drop(filter);
    /// # Ok::<(), mutant_core::Error>(())
    /// ```
    /// A filter over the cost bound ([`MAX_FILTER_VALUES`](super::MAX_FILTER_VALUES),
    /// [`MAX_FILTER_CONDITIONS`](super::MAX_FILTER_CONDITIONS)) is refused.
    pub fn from_json(value: &Value) -> Result<Filter> {
        let filter = parse_document(value, 0)?;
        filter.check_cost()?;
        Ok(filter)
    }

    /// True when `record` satisfies the filter.
    pub fn matches(&self, record: &Record) -> bool {
        self.matches_fields(&|field| field_value(record, field))
    }

    /// True when the record whose fields `value_of` reads satisfies the
    /// filter: for records held in another form than [`Record`], such as a
    /// loaded dataset's rows. `value_of` answers `None` for an absent field.
    ///
    /// ```
    /// use mutant_core::model::{Field, Filter, FilterValue};
    /// let filter = Filter::eq(Field::Label, FilterValue::String("cat".into()));
    /// let label_cat = |field: &Field| match field {
    ///     Field::Label => Some(FilterValue::String("cat".into())),
    ///     _ => None,
    /// };
    /// assert!(filter.matches_fields(&label_cat));
    /// assert!(!filter.matches_fields(&|_: &Field| None));
    /// ```
    pub fn matches_fields(&self, value_of: &dyn Fn(&Field) -> Option<FilterValue>) -> bool {
        match self {
            Filter::And(parts) => parts.iter().all(|part| part.matches_fields(value_of)),
            Filter::Or(parts) => parts.iter().any(|part| part.matches_fields(value_of)),
            Filter::Condition(field, condition) => condition.holds(value_of(field).as_ref()),
        }
    }

    /// Whether the filter reads only `id`, `label` and `prediction`: the
    /// fields a loaded dataset holds, so that it can be applied in memory.
    pub fn reads_only_id_label_prediction(&self) -> bool {
        match self {
            Filter::And(parts) | Filter::Or(parts) => {
                parts.iter().all(Filter::reads_only_id_label_prediction)
            }
            Filter::Condition(field, _) => {
                matches!(field, Field::Id | Field::Label | Field::Prediction)
            }
        }
    }

    /// Every id this filter is restricted to, when it is a plain id set
    /// (`id $in [...]` or `id $eq x`), so stores can chunk long id lists.
    pub fn as_id_set(&self) -> Option<Vec<&str>> {
        match self {
            Filter::Condition(Field::Id, Condition::In(values)) => values
                .iter()
                .map(|value| match value {
                    FilterValue::String(id) => Some(id.as_str()),
                    FilterValue::Number(_) | FilterValue::Bool(_) | FilterValue::Null => None,
                })
                .collect(),
            Filter::Condition(Field::Id, Condition::Eq(FilterValue::String(id))) => {
                Some(vec![id.as_str()])
            }
            Filter::And(_) | Filter::Or(_) | Filter::Condition(..) => None,
        }
    }
}

/// A record's field as a filter value; `None` when absent.
fn field_value(record: &Record, field: &Field) -> Option<FilterValue> {
    match field {
        Field::Id => Some(FilterValue::String(record.id.clone())),
        Field::Label => record.label.clone().map(FilterValue::String),
        Field::Prediction => record.prediction.clone().map(FilterValue::String),
        Field::Uri => record.uri.clone().map(FilterValue::String),
        Field::Metadata(key) => record.metadata.get(key).map(|value| match value {
            MetadataValue::String(text) => FilterValue::String(text.clone()),
            MetadataValue::Number(number) => {
                FilterValue::Number(number.as_f64().unwrap_or(f64::NAN))
            }
            MetadataValue::Bool(flag) => FilterValue::Bool(*flag),
        }),
    }
}

impl Condition {
    fn holds(&self, value: Option<&FilterValue>) -> bool {
        match self {
            Condition::Eq(wanted) => equals(value, wanted),
            Condition::Ne(wanted) => !equals(value, wanted),
            Condition::In(set) => set.iter().any(|wanted| equals(value, wanted)),
            Condition::Nin(set) => !set.iter().any(|wanted| equals(value, wanted)),
            Condition::Gt(bound) => compare(value, bound).is_some_and(Ordering::is_gt),
            Condition::Gte(bound) => compare(value, bound).is_some_and(Ordering::is_ge),
            Condition::Lt(bound) => compare(value, bound).is_some_and(Ordering::is_lt),
            Condition::Lte(bound) => compare(value, bound).is_some_and(Ordering::is_le),
        }
    }
}

fn equals(value: Option<&FilterValue>, wanted: &FilterValue) -> bool {
    match (value, wanted) {
        (None, FilterValue::Null) => true,
        (Some(FilterValue::String(a)), FilterValue::String(b)) => a == b,
        (Some(FilterValue::Number(a)), FilterValue::Number(b)) => a == b,
        (Some(FilterValue::Bool(a)), FilterValue::Bool(b)) => a == b,
        _ => false,
    }
}

fn compare(value: Option<&FilterValue>, bound: &FilterValue) -> Option<Ordering> {
    match (value?, bound) {
        (FilterValue::String(a), FilterValue::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (FilterValue::Number(a), FilterValue::Number(b)) => a.partial_cmp(b),
        _ => None,
    }
}

fn parse_document(value: &Value, depth: usize) -> Result<Filter> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "filters nest at most {MAX_DEPTH} levels deep"
        )));
    }
    let Value::Object(object) = value else {
        return Err(invalid(format!(
            "expected a JSON object, got {}",
            kind_of(value)
        )));
    };
    let mut parts = Vec::with_capacity(object.len());
    for (key, inner) in object {
        parts.push(match key.as_str() {
            "$and" => Filter::And(parse_list(key, inner, depth)?),
            "$or" => Filter::Or(parse_list(key, inner, depth)?),
            operator if operator.starts_with('$') => {
                return Err(invalid(format!(
                    "unknown operator {operator:?} at the top level; use $and or $or"
                )));
            }
            field_name => {
                let field = Field::parse(field_name)?;
                parse_field_conditions(field, inner)?
            }
        });
    }
    Ok(if parts.len() == 1 {
        parts.pop().unwrap_or_else(Filter::all)
    } else {
        Filter::And(parts)
    })
}

fn parse_list(operator: &str, value: &Value, depth: usize) -> Result<Vec<Filter>> {
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "{operator} takes an array of filters, got {}",
            kind_of(value)
        )));
    };
    items
        .iter()
        .map(|item| parse_document(item, depth + 1))
        .collect()
}

fn parse_field_conditions(field: Field, value: &Value) -> Result<Filter> {
    let Value::Object(operators) = value else {
        return Ok(Filter::Condition(
            field.clone(),
            Condition::Eq(parse_value(&field, "$eq", value)?),
        ));
    };
    if operators.is_empty() {
        return Err(invalid(format!(
            "{} has an empty operator object",
            field.wire_name()
        )));
    }
    let mut conditions = operators
        .iter()
        .map(|(operator, operand)| {
            Ok(Filter::Condition(
                field.clone(),
                parse_condition(&field, operator, operand)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        Filter::And(conditions)
    })
}

fn parse_condition(field: &Field, operator: &str, operand: &Value) -> Result<Condition> {
    let range_value = || {
        let value = parse_value(field, operator, operand)?;
        match value {
            FilterValue::String(_) | FilterValue::Number(_) => Ok(value),
            FilterValue::Bool(_) | FilterValue::Null => Err(invalid(format!(
                "{operator} on {} needs a string or a number",
                field.wire_name()
            ))),
        }
    };
    Ok(match operator {
        "$eq" => Condition::Eq(parse_value(field, operator, operand)?),
        "$ne" => Condition::Ne(parse_value(field, operator, operand)?),
        "$in" => Condition::In(parse_set(field, operator, operand)?),
        "$nin" => Condition::Nin(parse_set(field, operator, operand)?),
        "$gt" => Condition::Gt(range_value()?),
        "$gte" => Condition::Gte(range_value()?),
        "$lt" => Condition::Lt(range_value()?),
        "$lte" => Condition::Lte(range_value()?),
        other => {
            return Err(invalid(format!(
                "unknown operator {other:?} on {}; use $eq, $ne, $in, $nin, $gt, $gte, $lt or $lte",
                field.wire_name()
            )));
        }
    })
}

fn parse_set(field: &Field, operator: &str, operand: &Value) -> Result<Vec<FilterValue>> {
    let Value::Array(items) = operand else {
        return Err(invalid(format!(
            "{operator} on {} takes an array, got {}",
            field.wire_name(),
            kind_of(operand)
        )));
    };
    if items.len() > MAX_SET_LEN {
        return Err(invalid(format!(
            "{operator} lists {} values; the limit is {MAX_SET_LEN}",
            items.len()
        )));
    }
    items
        .iter()
        .map(|item| parse_value(field, operator, item))
        .collect()
}

fn parse_value(field: &Field, operator: &str, value: &Value) -> Result<FilterValue> {
    let parsed = match value {
        Value::String(text) => FilterValue::String(text.clone()),
        Value::Number(number) => match number.as_f64() {
            Some(float) if float.is_finite() => FilterValue::Number(float),
            _ => return Err(invalid(format!("{number} is not a finite number"))),
        },
        Value::Bool(flag) => FilterValue::Bool(*flag),
        Value::Null => FilterValue::Null,
        Value::Array(_) | Value::Object(_) => {
            return Err(invalid(format!(
                "{operator} on {} takes a string, number, boolean or null, got {}",
                field.wire_name(),
                kind_of(value)
            )));
        }
    };
    let type_fits = match (&parsed, field) {
        (FilterValue::String(_), _) => true,
        (FilterValue::Null, Field::Id) => false,
        (FilterValue::Null, _) => true,
        (FilterValue::Number(_) | FilterValue::Bool(_), field) => !field.is_string_field(),
    };
    if !type_fits {
        return Err(invalid(format!(
            "{} is a string field; compare it with a string",
            field.wire_name()
        )));
    }
    Ok(parsed)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The JSON object form of a filter, as it is written on the wire.
impl Filter {
    /// Writes the wire syntax back out; `from_json(to_json(f))` equals `f`
    /// up to the flattening of single-element `$and`.
    pub fn to_json(&self) -> Value {
        match self {
            Filter::And(parts) => Value::Object(Map::from_iter([(
                "$and".to_owned(),
                Value::Array(parts.iter().map(Filter::to_json).collect()),
            )])),
            Filter::Or(parts) => Value::Object(Map::from_iter([(
                "$or".to_owned(),
                Value::Array(parts.iter().map(Filter::to_json).collect()),
            )])),
            Filter::Condition(field, condition) => {
                let (operator, operand) = match condition {
                    Condition::Eq(value) => ("$eq", value_to_json(value)),
                    Condition::Ne(value) => ("$ne", value_to_json(value)),
                    Condition::In(values) => (
                        "$in",
                        Value::Array(values.iter().map(value_to_json).collect()),
                    ),
                    Condition::Nin(values) => (
                        "$nin",
                        Value::Array(values.iter().map(value_to_json).collect()),
                    ),
                    Condition::Gt(value) => ("$gt", value_to_json(value)),
                    Condition::Gte(value) => ("$gte", value_to_json(value)),
                    Condition::Lt(value) => ("$lt", value_to_json(value)),
                    Condition::Lte(value) => ("$lte", value_to_json(value)),
                };
                let operators = Map::from_iter([(operator.to_owned(), operand)]);
                Value::Object(Map::from_iter([(
                    field.wire_name(),
                    Value::Object(operators),
                )]))
            }
        }
    }
}

fn value_to_json(value: &FilterValue) -> Value {
    match value {
        FilterValue::String(text) => Value::String(text.clone()),
        FilterValue::Number(number) => {
            serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
        }
        FilterValue::Bool(flag) => Value::Bool(*flag),
        FilterValue::Null => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record() -> Record {
        Record::new("r1", vec![0.0])
            .with_label("cat")
            .with_metadata("score", 0.75f64.to_string().as_str())
            .with_metadata("n", 3)
            .with_metadata("ok", true)
    }

    fn check(filter: Value, expected: bool) {
        let parsed = Filter::from_json(&filter).unwrap();
        assert_eq!(parsed.matches(&record()), expected, "{filter}");
    }

    #[test]
    fn equality_and_absence() {
        check(json!({"label": "cat"}), true);
        check(json!({"label": "dog"}), false);
        check(json!({"prediction": null}), true);
        check(json!({"prediction": {"$ne": "cat"}}), true);
        check(json!({"label": {"$ne": null}}), true);
        check(json!({"metadata.missing": {"$nin": [1, 2]}}), true);
    }

    #[test]
    fn equality_is_type_strict() {
        check(json!({"metadata.n": 3}), true);
        check(json!({"metadata.n": 3.0}), true);
        check(json!({"metadata.n": "3"}), false);
        check(json!({"metadata.ok": true}), true);
        check(json!({"metadata.score": 0.75}), false);
    }

    #[test]
    fn ranges_compare_within_one_type() {
        check(json!({"metadata.n": {"$gt": 2, "$lte": 3}}), true);
        check(json!({"metadata.n": {"$gt": "2"}}), false);
        check(json!({"id": {"$gte": "r0"}}), true);
        check(json!({"id": {"$lt": "r1"}}), false);
    }

    #[test]
    fn and_or_combine() {
        check(
            json!({"$or": [{"label": "dog"}, {"metadata.n": {"$in": [1, 3]}}]}),
            true,
        );
        check(
            json!({"$and": [{"label": "cat"}, {"metadata.ok": false}]}),
            false,
        );
        check(json!({"$and": []}), true);
        check(json!({"$or": []}), false);
        check(json!({"label": "cat", "id": "r2"}), false);
    }

    #[test]
    fn bad_filters_are_errors_never_ignored() {
        for bad in [
            json!({"label": {"$regex": "c.*"}}),
            json!({"colour": "red"}),
            json!({"$not": {"label": "cat"}}),
            json!({"label": 3}),
            json!({"id": null}),
            json!({"metadata.n": {"$gt": true}}),
            json!({"metadata.": 1}),
            json!({"metadata.a\"b": 1}),
            json!({"label": {"$in": "cat"}}),
            json!({"label": {}}),
            json!(["label"]),
            json!({"$and": {"label": "cat"}}),
        ] {
            assert!(
                matches!(Filter::from_json(&bad), Err(Error::InvalidFilter { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut filter = json!({"label": "cat"});
        for _ in 0..(MAX_DEPTH + 2) {
            filter = json!({"$and": [filter]});
        }
        assert!(Filter::from_json(&filter).is_err());
    }

    #[test]
    fn json_round_trip() {
        let original =
            json!({"$or": [{"label": {"$in": ["cat", "dog"]}}, {"metadata.n": {"$lt": 2.5}}]});
        let parsed = Filter::from_json(&original).unwrap();
        assert_eq!(Filter::from_json(&parsed.to_json()).unwrap(), parsed);
    }
}
