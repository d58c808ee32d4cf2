//! The protocol between `mutant-client` and `mutant-server`, version
//! [`PROTOCOL_VERSION`]: JSON wire types ([`wire`]) and the compact binary
//! frame ([`frame`]) that carries record batches and kNN traffic, and the
//! points of a map ([`points`]) with the other answers the web page reads
//! ([`views`]). Wire types
//! are converted to and from the model here, at the edge; the model itself is
//! never serialised. See PROTOCOL.md for the routes and the frame byte by byte.

pub mod frame;
pub mod kinds;
pub mod points;
pub mod results;
pub mod views;
pub mod vocabulary;
pub mod wire;

/// The most rows one page of records or analysis results holds; stream
/// larger analysis results as NDJSON.
pub const MAX_PAGE: usize = 10_000;

/// Rows per page when a request names no limit.
pub const DEFAULT_PAGE: usize = 100;

/// The protocol version; bumped on any incompatible change of routes, JSON
/// shapes or frame layout.
pub const PROTOCOL_VERSION: u32 = 1;
