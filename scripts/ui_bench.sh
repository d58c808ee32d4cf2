#!/usr/bin/env bash
# The web page's performance figures (BENCHMARKS.md, "The map"):
#  1. the neighbour layout against the self-kNN graph it reuses
#     (cargo bench -p mutant-tests --bench layout; --rows, --dimension);
#  2. time from opening a 100,000-point map to its first paint once the
#     projection is stored (tests/ui/first_paint.mjs; --rows, --rounds).
# Both on a release build; ClickHouse is started by scripts/clickhouse.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MUTANT_CLICKHOUSE_URL="$(scripts/clickhouse.sh start)"
export MUTANT_CLICKHOUSE_URL
lscpu | grep -E 'Model name|^CPU\(s\)|Flags' || true
cargo bench -p mutant-tests --bench layout -- "$@"
cargo build --release -p mutant-server
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
node tests/ui/first_paint.mjs "$@"
