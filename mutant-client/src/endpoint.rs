//! Where requests go: the server's base URL and the paths of protocol v1.
//! Everything a user supplies (dataset names, the metadata pattern) is
//! percent-encoded here, so no name can reach another route.

use hyper::Uri;
use mutant_core::api::results::ResultsQuery;
use serde_json::Value;
use uuid::Uuid;

use crate::{Error, Result};

/// The server's base URL, `http://host:port` with an optional path prefix
/// (for a server behind a reverse proxy), without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl(String);

impl BaseUrl {
    /// Checks `text`: an absolute `http://` URL without query or fragment.
    pub(crate) fn parse(text: &str) -> Result<BaseUrl> {
        let invalid = |reason: &str| Error::InvalidBaseUrl {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim().trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|_| invalid("it is not a URL; write it like http://127.0.0.1:7311"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "this client speaks plain HTTP only; use the server's http:// address (terminate TLS in front of the client's network, not between client and server)",
                ));
            }
            Some(_) | None => {
                return Err(invalid(
                    "it needs the http:// scheme, e.g. http://127.0.0.1:7311",
                ));
            }
        }
        if uri
            .authority()
            .is_none_or(|authority| authority.host().is_empty())
        {
            return Err(invalid(
                "it has no host; write it like http://127.0.0.1:7311",
            ));
        }
        if uri.query().is_some() || trimmed.contains('#') {
            return Err(invalid(
                "it has a query or fragment; give only scheme, host, port and path prefix",
            ));
        }
        Ok(BaseUrl(trimmed.to_owned()))
    }

    /// The base URL as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute URL of `path_and_query`, which starts with `/`.
    pub(crate) fn join(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.0)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, which is
/// safe both in a path segment and in a query value.
pub(crate) fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
    encoded
}

/// `/v1/datasets`, or `/v1/datasets?metadata=<pattern>` to find by metadata.
pub(crate) fn datasets_path(metadata_pattern: Option<&Value>) -> String {
    match metadata_pattern {
        Some(pattern) => format!(
            "/v1/datasets?metadata={}",
            percent_encode(&pattern.to_string())
        ),
        None => "/v1/datasets".to_owned(),
    }
}

/// `/v1/datasets/{dataset}{suffix}`; `dataset` is a name or a UUID, `suffix`
/// empty or a fixed route tail such as `/records/get`.
pub(crate) fn dataset_path(dataset: &str, suffix: &str) -> Result<String> {
    if dataset.is_empty() {
        return Err(Error::InvalidInput {
            code: "invalid_dataset_name".to_owned(),
            message: "the dataset name is empty; pass a dataset's name or UUID".to_owned(),
        });
    }
    Ok(format!("/v1/datasets/{}{suffix}", percent_encode(dataset)))
}

/// `/v1/analyses/{id}{suffix}`.
pub(crate) fn analysis_path(id: Uuid, suffix: &str) -> String {
    format!("/v1/analyses/{}{suffix}", id.as_hyphenated())
}

/// `/v1/analyses/{id}/results?...`, with the query's options encoded.
pub(crate) fn analysis_results_path(id: Uuid, query: &ResultsQuery) -> String {
    let options: Vec<String> = query
        .to_pairs()
        .iter()
        .map(|(name, value)| format!("{name}={}", percent_encode(value)))
        .collect();
    if options.is_empty() {
        analysis_path(id, "/results")
    } else {
        analysis_path(id, &format!("/results?{}", options.join("&")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let base = BaseUrl::parse(" http://127.0.0.1:7311/ ").unwrap();
        assert_eq!(base.as_str(), "http://127.0.0.1:7311");
        assert_eq!(
            base.join("/v1/heartbeat"),
            "http://127.0.0.1:7311/v1/heartbeat"
        );
        let prefixed = BaseUrl::parse("http://proxy.local/mutant/").unwrap();
        assert_eq!(
            prefixed.join("/v1/version"),
            "http://proxy.local/mutant/v1/version"
        );
        for bad in [
            "127.0.0.1:7311",
            "https://mutant.example",
            "ftp://host",
            "http://",
            "http://host/?a=1",
            "http://host/#frag",
            "not a url",
            "",
        ] {
            assert!(
                matches!(BaseUrl::parse(bad), Err(Error::InvalidBaseUrl { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn names_are_percent_encoded_into_one_path_segment() {
        assert_eq!(
            dataset_path("train-2026_v1", "/records").unwrap(),
            "/v1/datasets/train-2026_v1/records"
        );
        assert_eq!(
            dataset_path("../analyses/x y?", "").unwrap(),
            "/v1/datasets/..%2Fanalyses%2Fx%20y%3F"
        );
        assert_eq!(dataset_path("é", "").unwrap(), "/v1/datasets/%C3%A9");
        assert!(matches!(
            dataset_path("", ""),
            Err(Error::InvalidInput { .. })
        ));
        let id = Uuid::nil();
        assert_eq!(
            dataset_path(&id.to_string(), "/count").unwrap(),
            "/v1/datasets/00000000-0000-0000-0000-000000000000/count"
        );
    }

    #[test]
    fn the_metadata_pattern_is_one_encoded_query_value() {
        let pattern = serde_json::json!({"team": "vision & audio", "split": {"kind": "train"}});
        let path = datasets_path(Some(&pattern));
        let encoded = path.strip_prefix("/v1/datasets?metadata=").unwrap();
        assert!(
            encoded
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte))
        );
        assert!(encoded.starts_with("%7B%22"));
        assert!(encoded.contains("vision%20%26%20audio"));
        assert!(path.parse::<Uri>().is_ok());
        assert_eq!(datasets_path(None), "/v1/datasets");
    }

    #[test]
    fn analysis_paths_carry_the_page() {
        let id = Uuid::from_u128(1);
        let query = ResultsQuery {
            limit: Some(50),
            offset: 100,
            include: mutant_core::api::results::JoinedFields {
                label: true,
                uri: true,
                ..Default::default()
            },
            flagged: Some(true),
            ..ResultsQuery::default()
        };
        assert_eq!(
            analysis_results_path(id, &query),
            "/v1/analyses/00000000-0000-0000-0000-000000000001/results?limit=50&offset=100&include=label%2Curi&flagged=true"
        );
        assert_eq!(
            analysis_results_path(id, &ResultsQuery::default()),
            "/v1/analyses/00000000-0000-0000-0000-000000000001/results"
        );
        assert_eq!(
            analysis_path(id, ""),
            "/v1/analyses/00000000-0000-0000-0000-000000000001"
        );
    }
}
