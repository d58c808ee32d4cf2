#!/usr/bin/env bash
# The Python SDK's benchmark beside the Rust SDK (scripts/py_bench.py says
# what it measures): builds the server, the Rust side and the Python package
# in release (`pip install ./mutant-py` into .build/py-venv), starts a
# throwaway ClickHouse if none runs, then runs both sides alternately and
# reports their ratios. Arguments go to py_bench.py (--rounds, --rows,
# --queries, --json FILE, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Stop ClickHouse afterwards only if this script started it.
if ! curl -sf "http://127.0.0.1:${MUTANT_CLICKHOUSE_HTTP_PORT:-18123}/?query=SELECT%201" >/dev/null 2>&1; then
    trap 'scripts/clickhouse.sh stop' EXIT
fi
url="$(scripts/clickhouse.sh start)"
cargo build --release --locked -p mutant-server
cargo bench --no-run --locked -p mutant-tests --bench python_baseline
venv="$(scripts/py_venv.sh)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./mutant-py
MUTANT_CLICKHOUSE_URL="$url" "$venv/bin/python" scripts/py_bench.py "$@"
