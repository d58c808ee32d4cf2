//! INSERTs in flight, published: a write's version is stamped when its
//! INSERT starts, and its rows become visible when the INSERT ends. A cache
//! refresh re-reads a two-second overlap before its previous check to catch
//! rows that became visible late; an INSERT that runs longer than that
//! would be missed for good by a copy in constant use. So each server
//! tracks its running INSERTs and, while one has run longer than
//! [`PUBLISH_AFTER`], publishes the oldest one's version in the
//! `inserts_in_flight` table; the change feed reads the oldest version any
//! live server publishes in the same statement as the changes, and the cache
//! reads from before it until the INSERT lands.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::StoreFailure;
use crate::store::now_ms;

/// An INSERT running longer than this is published: well inside the
/// cache's two-second overlap, so that it is published before the overlap
/// could pass it by.
pub(super) const PUBLISH_AFTER: Duration = Duration::from_millis(500);

/// How often the publisher looks at the running INSERTs.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// A publication stays in force this long; a live server renews it while
/// the INSERT runs, so one from a server that died is ignored after it.
pub(super) const PUBLICATION_LEASE: Duration = Duration::from_secs(10);

/// The INSERTs this server has running: each one's oldest write version and
/// when it started.
#[derive(Debug, Default)]
pub(super) struct InFlight(Mutex<BTreeMap<u64, Instant>>);

impl InFlight {
    fn inserts(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Instant>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes an INSERT starting with rows of version `version` and up.
    pub(super) fn started(&self, version: u64) {
        self.inserts().insert(version, Instant::now());
    }

    /// Notes that the INSERT that started at `version` is over.
    pub(super) fn ended(&self, version: u64) {
        self.inserts().remove(&version);
    }

    /// The version of the oldest INSERT that has run longer than `age`.
    fn oldest_running_for(&self, age: Duration) -> Option<u64> {
        self.inserts()
            .iter()
            .find(|(_, started)| started.elapsed() >= age)
            .map(|(version, _)| *version)
    }
}

/// One publication of a server.
#[derive(Debug, clickhouse::Row, Serialize)]
struct Publication {
    server: String,
    version: u64,
    oldest: u64,
    published_at_ms: u64,
}

/// Publishes this server's long-running INSERTs for as long as `in_flight`
/// has other owners: a row when the oldest changes, renewed well within the
/// lease while it runs, and a row with `oldest = 0` once none is left.
pub(super) async fn publish(
    client: clickhouse::Client,
    insert_settings: Vec<(String, String)>,
    in_flight: Arc<InFlight>,
    clock: Arc<crate::store::VersionClock>,
    server: String,
) {
    let mut published: Option<(u64, Instant)> = None;
    let mut ticks = tokio::time::interval(PUBLISH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Arc::strong_count(&in_flight) > 1 {
        ticks.tick().await;
        let oldest = in_flight.oldest_running_for(PUBLISH_AFTER);
        let due = match (oldest, published) {
            (None, None) => false,
            (Some(version), Some((previous, at))) => {
                version != previous || at.elapsed() >= PUBLICATION_LEASE / 4
            }
            (Some(_), None) | (None, Some(_)) => true,
        };
        if !due {
            continue;
        }
        let row = Publication {
            server: server.clone(),
            version: clock.next(),
            oldest: oldest.unwrap_or(0),
            published_at_ms: now_ms(),
        };
        match write(&client, &insert_settings, &row).await {
            Ok(()) => published = oldest.map(|version| (version, Instant::now())),
            Err(failure) => {
                tracing::warn!(?failure, "publishing a long INSERT failed; trying again")
            }
        }
    }
}

async fn write(
    client: &clickhouse::Client,
    insert_settings: &[(String, String)],
    row: &Publication,
) -> Result<(), StoreFailure> {
    let mut insert = client.insert::<Publication>("inserts_in_flight").await?;
    for (name, value) in insert_settings {
        insert = insert.with_setting(name, value);
    }
    insert.write(row).await?;
    insert.end().await?;
    Ok(())
}
