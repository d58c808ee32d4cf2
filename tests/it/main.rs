//! Integration tests of `mutant-core` against a real ClickHouse (started by
//! `scripts/clickhouse.sh`, reached through `MUTANT_CLICKHOUSE_URL`) and
//! against `MemoryStore`: one conformance suite, a model-based proptest, and
//! the ClickHouse-only properties (streaming, compaction, large id lists).

#![allow(clippy::unwrap_used)]

mod analysis_jobs;
mod by_ref;
mod clickhouse_store;
mod cluster_faults;
mod cluster_store;
mod conformance;
mod e2e_budget;
mod e2e_http;
mod e2e_results;
mod e2e_sdk;
mod e2e_support;
mod e2e_views;
mod faults;
mod hardening;
mod hostile;
mod load;
mod model_based;
mod quality;
mod two_servers;
mod verdicts;
