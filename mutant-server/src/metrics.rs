//! Prometheus figures for `/metrics`, in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mutant_core::service::Service;

/// A route and the status it answered.
type RouteStatus = (&'static str, u16);

/// How many requests, and how many seconds they took.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    count: u64,
    seconds: f64,
}

/// Request counts and latencies by route and status.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<RouteStatus, Tally>>,
}

impl Metrics {
    /// Records one answered request.
    pub(crate) fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = requests.entry((route, status)).or_default();
        entry.count += 1;
        entry.seconds += elapsed.as_secs_f64();
    }

    /// The exposition text.
    pub(crate) fn render(&self, service: &Service) -> String {
        let mut text = String::new();
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        text.push_str("# HELP mutant_requests_total Requests answered, by route and status.\n# TYPE mutant_requests_total counter\n");
        for ((route, status), Tally { count, .. }) in requests.iter() {
            let _ = writeln!(
                text,
                "mutant_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        text.push_str("# HELP mutant_request_seconds_total Time spent answering, by route and status.\n# TYPE mutant_request_seconds_total counter\n");
        for ((route, status), Tally { seconds, .. }) in requests.iter() {
            let _ = writeln!(
                text,
                "mutant_request_seconds_total{{route=\"{route}\",status=\"{status}\"}} {seconds:.6}"
            );
        }
        let cache = service.cache();
        let _ = writeln!(
            text,
            "# HELP mutant_cache_bytes Bytes of datasets held in memory.\n# TYPE mutant_cache_bytes gauge\nmutant_cache_bytes {}",
            cache.held_bytes()
        );
        let _ = writeln!(
            text,
            "# HELP mutant_cache_max_bytes The cache bound.\n# TYPE mutant_cache_max_bytes gauge\nmutant_cache_max_bytes {}",
            cache.max_bytes()
        );
        let counters = cache.counters();
        for (name, help, counter) in [
            (
                "mutant_cache_hits_total",
                "Dataset uses served from memory.",
                &counters.hits,
            ),
            (
                "mutant_cache_misses_total",
                "Dataset uses that loaded the whole dataset.",
                &counters.misses,
            ),
            (
                "mutant_cache_refreshes_total",
                "Refreshes that applied changes from ClickHouse.",
                &counters.refreshes,
            ),
            (
                "mutant_cache_rows_refreshed_total",
                "Records upserted or deleted by refreshes.",
                &counters.rows_refreshed,
            ),
            (
                "mutant_cache_rows_fetched_total",
                "Whole rows refreshes fetched from ClickHouse, applied or found unchanged.",
                &counters.rows_fetched,
            ),
            (
                "mutant_cache_evictions_total",
                "Datasets evicted to stay within the bound.",
                &counters.evictions,
            ),
            (
                "mutant_cache_graph_reuses_total",
                "Analyses handed self-kNN graphs kept from an earlier analysis of the same data.",
                &counters.graph_reuses,
            ),
        ] {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        text.push_str("# HELP mutant_analyses Analyses on this server, by status.\n# TYPE mutant_analyses gauge\n");
        for (status, count) in service.analyses().counts_by_status() {
            let _ = writeln!(text, "mutant_analyses{{status=\"{status}\"}} {count}");
        }
        let (computing, waiting) = service.analyses().computing_and_waiting();
        let _ = writeln!(
            text,
            "# HELP mutant_analyses_computing Analyses holding one of this server's MUTANT_ANALYSES_IN_FLIGHT slots.\n# TYPE mutant_analyses_computing gauge\nmutant_analyses_computing {computing}"
        );
        let _ = writeln!(
            text,
            "# HELP mutant_analyses_waiting Analyses queued on this server for a slot.\n# TYPE mutant_analyses_waiting gauge\nmutant_analyses_waiting {waiting}"
        );
        text
    }
}
