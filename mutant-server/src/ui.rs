//! The web page: a single-page app under `/ui/`, its files compiled into the
//! binary (no network, no CDN). `/ui/`, `/ui/datasets/{name}`,
//! `/ui/analyses` and `/ui/analyses/{id}` all serve the same page, which
//! routes on its own.
//! The page loads without a token; the API calls it makes need one when the
//! server has one (the page asks for it).

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};

use crate::error::ServerError;
use crate::http::Answer;

/// Who may load what: everything from this server, images from anywhere
/// (record previews), workers from blobs (the scatter library's spatial
/// index), no inline script. `unsafe-eval` because regl, under the scatter
/// library, compiles its draw commands with `new Function`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src * data: blob:; \
     worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-eval'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    path: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../ui/index.html"),
};

const ASSETS: [Asset; 5] = [
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/app.js"),
    },
    Asset {
        path: "points.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/points.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../ui/style.css"),
    },
    Asset {
        path: "regl-scatterplot.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/vendor/regl-scatterplot.js"),
    },
    Asset {
        path: "LICENSES.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../ui/vendor/LICENSES.txt"),
    },
];

/// The page's answer when `segments` (the path split on `/`) is under
/// `ui`; `None` for any other path.
pub(crate) fn route(
    method: &Method,
    segments: &[&str],
) -> Option<(&'static str, Result<Answer, ServerError>)> {
    let asset = match segments {
        ["ui"] | ["ui", "datasets" | "analyses"] | ["ui", "datasets" | "analyses", _] => {
            Some(&INDEX)
        }
        ["ui", "assets", name] => ASSETS.iter().find(|asset| asset.path == *name),
        ["ui", ..] => None,
        _ => return None,
    };
    let path = segments.join("/");
    let outcome = match (asset, method) {
        (None, _) => Err(ServerError::NotFound { path }),
        (Some(asset), &Method::GET | &Method::HEAD) => Ok(answer(asset, method == Method::HEAD)),
        (Some(_), _) => Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path,
        }),
    };
    Some(("/ui", outcome))
}

fn answer(asset: &Asset, head_only: bool) -> Answer {
    let body = if head_only {
        Bytes::new()
    } else {
        Bytes::from_static(asset.body)
    };
    let mut answer = Response::new(Either::Left(Full::new(body)));
    *answer.status_mut() = StatusCode::OK;
    let headers = answer.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The files change only with the binary; revalidating is cheap locally.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_links_serve_the_page_and_assets_their_files() {
        let (_, index) = route(&Method::GET, &["ui"]).unwrap();
        let index = index.unwrap();
        assert_eq!(index.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        for deep_link in [
            &["ui", "datasets", "train"][..],
            &["ui", "analyses", "x"],
            &["ui", "analyses"],
        ] {
            let (_, page) = route(&Method::GET, deep_link).unwrap();
            assert_eq!(
                page.unwrap().headers()[CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
        }
        let (_, script) = route(&Method::GET, &["ui", "assets", "app.js"]).unwrap();
        assert!(
            script.unwrap().headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        assert!(
            route(&Method::GET, &["ui", "assets", "nope.js"])
                .unwrap()
                .1
                .is_err()
        );
        assert!(route(&Method::POST, &["ui"]).unwrap().1.is_err());
        assert!(route(&Method::GET, &["v1", "datasets"]).is_none());
    }

    #[test]
    fn the_page_references_only_embedded_assets() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        for reference in page.split("/ui/assets/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(ASSETS.iter().any(|asset| asset.path == name), "{name}");
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
