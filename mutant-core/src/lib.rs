//! Mutant's core: the data model, ingest validation, the `Store` trait with its
//! ClickHouse and in-memory implementations, and the in-memory analysis kernels.
//!
//! Modules follow the data: [`model`] (datasets, records, filters) →
//! [`ingest`] (validation of what clients send) → `store` (persistence) →
//! `kernels` (pure, in-memory algorithms). The model and ingest compile without
//! ClickHouse or faer; the store sits behind the `store` / `clickhouse`
//! features and the kernels behind `kernels`.
//!
//! ```
//! use mutant_core::model::{Filter, Record};
//!
//! let filter = Filter::from_json(&serde_json::json!({"label": {"$in": ["cat", "dog"]}}))?;
//! let record = Record::new("r1", vec![0.5, 0.25]).with_label("cat");
//! assert!(filter.matches(&record));
//! # Ok::<(), mutant_core::Error>(())
//! ```

pub mod api;
pub mod error;
pub mod ingest;
pub mod model;

#[cfg(feature = "store")]
pub mod store;

#[cfg(feature = "store")]
pub mod cache;

#[cfg(feature = "kernels")]
pub mod kernels;

#[cfg(feature = "store")]
pub mod service;

pub use error::{Error, Result};
