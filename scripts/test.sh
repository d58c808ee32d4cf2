#!/usr/bin/env bash
# The test command: starts a throwaway ClickHouse and a throwaway cluster of
# four (installing ClickHouse and ZooKeeper from the distribution's packages
# if needed), then runs the formatting and lint
# checks and every test of the workspace against it, and the web page's
# browser test (installing Debian's chromium and playwright-core if needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Stop ClickHouse afterwards only if this script started it.
stop_afterwards=()
if ! curl -sf "http://127.0.0.1:${MUTANT_CLICKHOUSE_HTTP_PORT:-18123}/?query=SELECT%201" >/dev/null 2>&1; then
    stop_afterwards+=("scripts/clickhouse.sh stop")
fi
# The cluster tests (issue 16) run on the 2 shards x 2 replicas cluster of
# `start-cluster`; one this script starts begins with empty data.
cluster_base="${MUTANT_CLICKHOUSE_CLUSTER_BASE_PORT:-18600}"
if ! curl -sf "http://127.0.0.1:$((cluster_base + 10))/?query=SELECT%201" >/dev/null 2>&1; then
    rm -rf ".build/clickhouse-cluster-$cluster_base"
    stop_afterwards+=("scripts/clickhouse.sh stop-cluster")
fi
trap 'for command in "${stop_afterwards[@]}"; do $command; done' EXIT
url="$(scripts/clickhouse.sh start)"
export MUTANT_CLICKHOUSE_URL="$url"
echo "tests use ClickHouse $(curl -sf "$url/?query=SELECT%20version()") at $url"
cluster_url="$(scripts/clickhouse.sh start-cluster | tail -n 1)"
export MUTANT_CLICKHOUSE_CLUSTER_URL="$cluster_url"
echo "cluster tests use the cluster mutant at $cluster_url"

# The build and the test data need about 5 GB; say what there is, so that a
# full disk is recognised as such when a test fails on it.
echo "free disk where the build goes: $(df -h --output=avail . | tail -n 1 | tr -d ' ')"
# One clean build per run: incremental state would only add gigabytes to a
# build machine's disk.
export CARGO_INCREMENTAL=0
cargo fmt --all --check
if cargo tree --locked -p mutant-client -e normal | grep -E 'clickhouse|faer'; then
    echo "mutant-client must not depend on ClickHouse or faer (see DESIGN.md, Parts)" >&2
    exit 1
fi
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
# The end-to-end tests start the real server binary.
cargo build --locked -p mutant-server
cargo test --workspace --locked
# The in-process example, in memory and on this ClickHouse.
env -u MUTANT_CLICKHOUSE_URL cargo run --locked -q -p mutant-examples --bin embedded
cargo run --locked -q -p mutant-examples --bin embedded
# The web page in headless Chromium against that binary.
scripts/ui_test.sh

# The Python SDK: built (debug) into the virtualenv with maturin, then its
# pytest suite against the server binary built above and this ClickHouse.
venv="$(scripts/py_venv.sh)"
VIRTUAL_ENV="$PWD/$venv" "$venv/bin/maturin" develop --locked --quiet -m mutant-py/Cargo.toml
MUTANT_SERVER_BINARY="${CARGO_TARGET_DIR:-$PWD/target}/debug/mutant-server" \
    "$venv/bin/python" -m pytest -q mutant-py/tests
