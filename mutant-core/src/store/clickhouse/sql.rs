//! SQL text for record queries. User values never enter the text: the text
//! holds `?` placeholders and the values travel beside it, bound by the
//! driver's `bind()`, which escapes them as literals.

use clickhouse::Client;
use clickhouse::query::Query;

use super::schema::{META_KIND_BOOL, META_KIND_NUMBER, META_KIND_STRING};
use crate::model::{Condition, Field, Filter, FilterValue};

/// ClickHouse 18.16's default `max_query_size`, in bytes.
pub(super) const MAX_QUERY_SIZE: usize = 262_144;
/// Room left for binding escapes and the rest of a statement.
const QUERY_SIZE_MARGIN: usize = 16_384;

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SqlArg {
    Text(String),
    Float(f64),
    Unsigned(u64),
}

impl SqlArg {
    /// The bytes the driver's `bind()` prints for the value: a string
    /// quoted, with a backslash before each backslash, quote, backtick, tab
    /// and newline; a number
    /// as Rust's `Display` writes it, which never uses an exponent (`1e-300`
    /// prints as 302 characters).
    fn printed_len(&self) -> usize {
        match self {
            SqlArg::Text(text) => {
                let escaped = text
                    .bytes()
                    .filter(|byte| matches!(byte, b'\\' | b'\'' | b'`' | b'\t' | b'\n'))
                    .count();
                text.len() + escaped + 2
            }
            SqlArg::Float(value) => displayed_len(value),
            SqlArg::Unsigned(value) => displayed_len(value),
        }
    }
}

/// The length of `value`'s `Display` text, without keeping the text.
fn displayed_len(value: &impl std::fmt::Display) -> usize {
    struct Counter(usize);
    impl std::fmt::Write for Counter {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            self.0 += text.len();
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing into a counter cannot fail.
    let _ = std::fmt::write(&mut counter, format_args!("{value}"));
    counter.0
}

/// SQL text with placeholders and the values to bind, in order.
#[derive(Debug, Default, Clone)]
pub(super) struct Sql {
    pub(super) text: String,
    pub(super) args: Vec<SqlArg>,
}

impl Sql {
    pub(super) fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(super) fn text_arg(&mut self, value: &str) -> &mut Self {
        self.text.push('?');
        self.args.push(SqlArg::Text(value.to_owned()));
        self
    }

    /// Bound text arguments, comma-separated; each wrapped in `function(...)`
    /// when one is given (`toUUID`, say).
    pub(super) fn text_list(&mut self, values: &[&str], function: Option<&str>) -> &mut Self {
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                self.push(", ");
            }
            match function {
                Some(function) => self.push(function).push("(").text_arg(value).push(")"),
                None => self.text_arg(value),
            };
        }
        self
    }

    pub(super) fn float_arg(&mut self, value: f64) -> &mut Self {
        self.text.push('?');
        self.args.push(SqlArg::Float(value));
        self
    }

    pub(super) fn unsigned_arg(&mut self, value: u64) -> &mut Self {
        self.text.push('?');
        self.args.push(SqlArg::Unsigned(value));
        self
    }

    pub(super) fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.args.extend(other.args);
        self
    }

    /// The final statement's size once values are bound (each `?` counted
    /// as well, so a little over).
    pub(super) fn approximate_len(&self) -> usize {
        self.text.len() + self.args.iter().map(SqlArg::printed_len).sum::<usize>()
    }

    /// True when the bound statement may exceed 18.16's query size limit.
    pub(super) fn too_large(&self) -> bool {
        self.approximate_len() + QUERY_SIZE_MARGIN > MAX_QUERY_SIZE
    }

    /// Binds the values into a driver query.
    pub(super) fn bind_into(self, client: &Client) -> Query {
        let mut query = client.query(&self.text);
        for arg in self.args {
            query = match arg {
                SqlArg::Text(text) => query.bind(text),
                SqlArg::Float(value) => query.bind(value),
                SqlArg::Unsigned(value) => query.bind(value),
            };
        }
        query
    }
}

/// The resolved-record columns that filters look at (see `resolved_records`).
fn column(field: &Field) -> &'static str {
    match field {
        Field::Id => "id",
        Field::Label => "r_label",
        Field::Prediction => "r_prediction",
        Field::Uri => "r_uri",
        Field::Metadata(_) => "r_meta_keys",
    }
}

/// Renders a filter as a predicate that is always 0 or 1, never NULL, with
/// the semantics of [`Filter::matches`].
pub(super) fn render_filter(filter: &Filter) -> Sql {
    let mut sql = Sql::default();
    write_filter(&mut sql, filter);
    sql
}

fn write_filter(sql: &mut Sql, filter: &Filter) {
    match filter {
        Filter::And(parts) => write_junction(sql, parts, " AND ", "1"),
        Filter::Or(parts) => write_junction(sql, parts, " OR ", "0"),
        Filter::Condition(field, condition) => write_condition(sql, field, condition),
    }
}

fn write_junction(sql: &mut Sql, parts: &[Filter], separator: &str, empty: &str) {
    if parts.is_empty() {
        sql.push(empty);
        return;
    }
    sql.push("(");
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            sql.push(separator);
        }
        write_filter(sql, part);
    }
    sql.push(")");
}

fn write_condition(sql: &mut Sql, field: &Field, condition: &Condition) {
    match condition {
        Condition::Eq(value) => write_equals(sql, field, value),
        Condition::Ne(value) => {
            sql.push("NOT ");
            write_equals(sql, field, value);
        }
        Condition::In(values) => write_in(sql, field, values),
        Condition::Nin(values) => {
            sql.push("NOT ");
            write_in(sql, field, values);
        }
        Condition::Gt(bound) => write_range(sql, field, ">", bound),
        Condition::Gte(bound) => write_range(sql, field, ">=", bound),
        Condition::Lt(bound) => write_range(sql, field, "<", bound),
        Condition::Lte(bound) => write_range(sql, field, "<=", bound),
    }
}

/// `r_meta_<array>[indexOf(r_meta_keys, 'key')]`: the key's entry in one of
/// the typed metadata arrays; index 0 (an absent key) yields the array's
/// default, and a kind of 0 means "absent".
fn write_meta_element(sql: &mut Sql, array: &str, key: &str) {
    sql.push("r_meta_")
        .push(array)
        .push("[indexOf(r_meta_keys, ")
        .text_arg(key)
        .push(")]");
}

/// `kind of key = expected AND <value column> <operator> <value>`.
fn write_meta_comparison(sql: &mut Sql, key: &str, kind: u8, operator: &str, value: &FilterValue) {
    sql.push("(");
    write_meta_element(sql, "kinds", key);
    sql.push(" = ").push(&kind.to_string()).push(" AND ");
    match value {
        FilterValue::String(text) => {
            write_meta_element(sql, "strings", key);
            sql.push(" ").push(operator).push(" ").text_arg(text);
        }
        FilterValue::Number(number) => {
            write_meta_element(sql, "numbers", key);
            sql.push(" ").push(operator).push(" ").float_arg(*number);
        }
        FilterValue::Bool(flag) => {
            write_meta_element(sql, "numbers", key);
            sql.push(" ")
                .push(operator)
                .push(if *flag { " 1" } else { " 0" });
        }
        FilterValue::Null => {
            sql.push("0");
        }
    }
    sql.push(")");
}

fn meta_kind(value: &FilterValue) -> u8 {
    match value {
        FilterValue::String(_) => META_KIND_STRING,
        FilterValue::Number(_) => META_KIND_NUMBER,
        FilterValue::Bool(_) => META_KIND_BOOL,
        FilterValue::Null => 0,
    }
}

fn write_equals(sql: &mut Sql, field: &Field, value: &FilterValue) {
    match (field, value) {
        (Field::Metadata(key), FilterValue::Null) => {
            sql.push("(indexOf(r_meta_keys, ")
                .text_arg(key)
                .push(") = 0)");
        }
        (Field::Metadata(key), value) => {
            write_meta_comparison(sql, key, meta_kind(value), "=", value)
        }
        (_, FilterValue::String(text)) => {
            sql.push("ifNull(")
                .push(column(field))
                .push(" = ")
                .text_arg(text)
                .push(", 0)");
        }
        (_, FilterValue::Null) => {
            sql.push("isNull(").push(column(field)).push(")");
        }
        // The filter parser only lets strings and null reach string fields.
        (_, FilterValue::Number(_) | FilterValue::Bool(_)) => {
            sql.push("0");
        }
    }
}

fn write_in(sql: &mut Sql, field: &Field, values: &[FilterValue]) {
    let all_strings = values
        .iter()
        .all(|value| matches!(value, FilterValue::String(_)));
    if values.is_empty() {
        sql.push("0");
    } else if !matches!(field, Field::Metadata(_)) && all_strings {
        sql.push("ifNull(").push(column(field)).push(" IN (");
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            if let FilterValue::String(text) = value {
                sql.text_arg(text);
            }
        }
        sql.push("), 0)");
    } else {
        sql.push("(");
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                sql.push(" OR ");
            }
            write_equals(sql, field, value);
        }
        sql.push(")");
    }
}

fn write_range(sql: &mut Sql, field: &Field, operator: &str, bound: &FilterValue) {
    match (field, bound) {
        (Field::Metadata(key), FilterValue::String(_) | FilterValue::Number(_)) => {
            write_meta_comparison(sql, key, meta_kind(bound), operator, bound);
        }
        (_, FilterValue::String(text)) => {
            sql.push("ifNull(")
                .push(column(field))
                .push(" ")
                .push(operator)
                .push(" ")
                .text_arg(text)
                .push(", 0)");
        }
        // The filter parser refuses booleans and null in ranges, and numbers on string fields.
        (_, FilterValue::Number(_) | FilterValue::Bool(_) | FilterValue::Null) => {
            sql.push("0");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn user_values_stay_out_of_the_text() {
        let filter = Filter::from_json(&json!({
            "$or": [{"label": "x'; DROP TABLE records; --"}, {"metadata.k": {"$gte": "a\\'b"}}]
        }))
        .unwrap();
        let sql = render_filter(&filter);
        assert!(!sql.text.contains("DROP"));
        assert!(!sql.text.contains("a\\'b"));
        assert_eq!(sql.args.len(), 4);
    }

    #[test]
    fn the_size_estimate_counts_what_the_driver_prints() {
        let client = Client::default();
        let mut sql = Sql::new("SELECT ");
        sql.float_arg(1e-300)
            .push(", ")
            .float_arg(-123.5)
            .push(", ")
            .unsigned_arg(u64::MAX)
            .push(", ")
            .text_arg("it's a\\ `tab`\there\n");
        let estimated = sql.approximate_len();
        let printed = sql
            .clone()
            .bind_into(&client)
            .sql_display()
            .to_string()
            .len();
        // The estimate counts each `?` too.
        assert_eq!(estimated, printed + sql.args.len());
        assert!(printed > 300, "1e-300 prints long: {printed}");
    }

    #[test]
    fn tiny_numbers_make_a_filter_too_large_not_a_broken_query() {
        let values: Vec<f64> = vec![1e-300; 1_000];
        let filter = Filter::from_json(&json!({"metadata.x": {"$in": values}})).unwrap();
        let sql = render_filter(&filter);
        assert!(sql.approximate_len() > 300_000);
        assert!(sql.too_large());
    }
}
