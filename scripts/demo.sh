#!/usr/bin/env bash
# The main job: starts a throwaway ClickHouse (installing it from the
# distribution's packages if needed) and runs the quickstart against it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

url="$(scripts/clickhouse.sh start)"
export MUTANT_CLICKHOUSE_URL="$url"
cargo run --release --locked -p mutant-examples --bin quickstart
