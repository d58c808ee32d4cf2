#!/usr/bin/env bash
# The test command: starts a throwaway ClickHouse (installing it from the
# distribution's packages if needed), then runs the formatting and lint
# checks and every test of the workspace against it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

url="$(scripts/clickhouse.sh start)"
export MUTANT_CLICKHOUSE_URL="$url"
if [ "${MUTANT_KEEP_CLICKHOUSE:-0}" != 1 ]; then
    trap 'scripts/clickhouse.sh stop' EXIT
fi
echo "tests use ClickHouse $(curl -sf "$url/?query=SELECT%20version()") at $url"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
