//! What `GET /v1/analyses/{id}/results` takes in its query string: a page,
//! the record fields to join onto each row, filters on the verdict and the
//! score, and the answer's format. The server parses it and the SDK writes
//! it with the same type, so the two cannot disagree on a name.

use super::{DEFAULT_PAGE, MAX_PAGE};
use crate::{Error, Result};

/// The record fields a result row can carry, as they were when the analysis
/// ran (`include=label,prediction,uri,metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JoinedFields {
    /// The record's label.
    pub label: bool,
    /// The record's prediction.
    pub prediction: bool,
    /// The record's uri.
    pub uri: bool,
    /// The record's metadata.
    pub metadata: bool,
}

impl JoinedFields {
    /// Every field.
    pub fn all() -> Self {
        JoinedFields {
            label: true,
            prediction: true,
            uri: true,
            metadata: true,
        }
    }

    /// Whether no field is asked for.
    pub fn is_empty(&self) -> bool {
        *self == JoinedFields::default()
    }

    fn names(&self) -> Vec<&'static str> {
        [
            (self.label, "label"),
            (self.prediction, "prediction"),
            (self.uri, "uri"),
            (self.metadata, "metadata"),
        ]
        .into_iter()
        .filter_map(|(wanted, name)| wanted.then_some(name))
        .collect()
    }
}

/// How the rows come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultsFormat {
    /// One JSON object: a page of rows, the total and the summary.
    #[default]
    Json,
    /// Every matching row from `offset` on, one JSON object a line
    /// (`application/x-ndjson`), without paging.
    Ndjson,
}

/// The options of a results request.
///
/// ```
/// use mutant_core::api::results::{JoinedFields, ResultsQuery};
/// let query = ResultsQuery {
///     limit: Some(20),
///     flagged: Some(true),
///     include: JoinedFields { label: true, ..JoinedFields::default() },
///     ..ResultsQuery::default()
/// };
/// let pairs = query.to_pairs();
/// assert_eq!(ResultsQuery::from_pairs(&pairs)?, query);
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultsQuery {
    /// At most this many rows (JSON: the page size, default
    /// [`DEFAULT_PAGE`], at most [`MAX_PAGE`]; NDJSON: every row when
    /// absent).
    pub limit: Option<usize>,
    /// Skip this many matching rows first.
    pub offset: usize,
    /// Record fields to join onto each row.
    pub include: JoinedFields,
    /// Only rows whose verdict is this.
    pub flagged: Option<bool>,
    /// Only rows scoring at least this.
    pub min_score: Option<f64>,
    /// JSON page or NDJSON stream.
    pub format: ResultsFormat,
}

const PARAMETERS: [&str; 6] = [
    "limit",
    "offset",
    "include",
    "flagged",
    "min_score",
    "format",
];

fn invalid(reason: String) -> Error {
    Error::InvalidParameter {
        name: "query",
        reason,
    }
}

impl ResultsQuery {
    /// Reads the decoded `(name, value)` pairs of a query string. Unknown
    /// names and malformed values are refused, never ignored.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self> {
        let mut query = ResultsQuery::default();
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => query.limit = Some(whole_number(name, value)?),
                "offset" => query.offset = whole_number(name, value)?,
                "include" => query.include = joined_fields(value)?,
                "flagged" => {
                    query.flagged = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(invalid(format!(
                                "flagged must be true or false, got {value:?}"
                            )));
                        }
                    })
                }
                "min_score" => {
                    query.min_score = Some(
                        value
                            .parse::<f64>()
                            .ok()
                            .filter(|score| score.is_finite())
                            .ok_or_else(|| {
                                invalid(format!("min_score must be a number, got {value:?}"))
                            })?,
                    )
                }
                "format" => {
                    query.format = match value.as_str() {
                        "json" => ResultsFormat::Json,
                        "ndjson" => ResultsFormat::Ndjson,
                        _ => {
                            return Err(invalid(format!(
                                "format must be json or ndjson, got {value:?}"
                            )));
                        }
                    }
                }
                _ => {
                    return Err(invalid(format!(
                        "results take no parameter {name:?}; they take {}",
                        PARAMETERS.join(", ")
                    )));
                }
            }
        }
        if query.format == ResultsFormat::Json && query.limit.is_some_and(|limit| limit > MAX_PAGE)
        {
            return Err(invalid(format!(
                "limit {} is over the page limit of {MAX_PAGE}; page with offset, or ask for format=ndjson",
                query.limit.unwrap_or_default()
            )));
        }
        Ok(query)
    }

    /// The `(name, value)` pairs of the query string, not yet percent-encoded;
    /// defaults are left out.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let Some(limit) = self.limit {
            pairs.push(("limit".to_owned(), limit.to_string()));
        }
        if self.offset != 0 {
            pairs.push(("offset".to_owned(), self.offset.to_string()));
        }
        if !self.include.is_empty() {
            pairs.push(("include".to_owned(), self.include.names().join(",")));
        }
        if let Some(flagged) = self.flagged {
            pairs.push(("flagged".to_owned(), flagged.to_string()));
        }
        if let Some(min_score) = self.min_score {
            pairs.push(("min_score".to_owned(), min_score.to_string()));
        }
        if self.format == ResultsFormat::Ndjson {
            pairs.push(("format".to_owned(), "ndjson".to_owned()));
        }
        pairs
    }

    /// The page size a JSON answer uses.
    pub fn page_size(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE)
    }

    /// Whether rows are filtered (so the total must be counted).
    pub fn is_filtered(&self) -> bool {
        self.flagged.is_some() || self.min_score.is_some()
    }
}

fn whole_number(name: &str, value: &str) -> Result<usize> {
    value
        .parse()
        .map_err(|_| invalid(format!("{name} must be a whole number, got {value:?}")))
}

fn joined_fields(list: &str) -> Result<JoinedFields> {
    let mut fields = JoinedFields::default();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match name {
            "label" => fields.label = true,
            "prediction" => fields.prediction = true,
            "uri" => fields.uri = true,
            "metadata" => fields.metadata = true,
            _ => {
                return Err(invalid(format!(
                    "results can include label, prediction, uri and metadata, not {name:?}"
                )));
            }
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &[(&str, &str)]) -> Vec<(String, String)> {
        text.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn every_option_round_trips() {
        let query = ResultsQuery {
            limit: Some(7),
            offset: 3,
            include: JoinedFields::all(),
            flagged: Some(false),
            min_score: Some(0.25),
            format: ResultsFormat::Ndjson,
        };
        assert_eq!(ResultsQuery::from_pairs(&query.to_pairs()).unwrap(), query);
        assert_eq!(
            ResultsQuery::from_pairs(&[]).unwrap(),
            ResultsQuery::default()
        );
    }

    #[test]
    fn bad_options_are_refused_with_what_to_change() {
        for (bad, expected) in [
            (pairs(&[("flagged", "yes")]), "true or false"),
            (pairs(&[("include", "label,vector")]), "\"vector\""),
            (pairs(&[("min_score", "NaN")]), "min_score must be a number"),
            (pairs(&[("min_score", "x")]), "min_score must be a number"),
            (pairs(&[("limit", "-1")]), "whole number"),
            (pairs(&[("limit", "10001")]), "format=ndjson"),
            (pairs(&[("format", "csv")]), "json or ndjson"),
            (pairs(&[("sort", "score")]), "no parameter \"sort\""),
        ] {
            let message = ResultsQuery::from_pairs(&bad).unwrap_err().to_string();
            assert!(message.contains(expected), "{bad:?}: {message}");
        }
        let streamed = pairs(&[("limit", "50000"), ("format", "ndjson")]);
        assert_eq!(
            ResultsQuery::from_pairs(&streamed).unwrap().limit,
            Some(50_000)
        );
    }
}
