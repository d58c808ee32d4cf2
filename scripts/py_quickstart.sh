#!/usr/bin/env bash
# The Python quickstart: starts a throwaway ClickHouse (installing it from the
# distribution's packages if needed) and a Mutant server on 127.0.0.1:7311,
# installs the SDK into .build/py-venv with `pip install ./mutant-py`, then
# runs examples/quickstart.py against them. Both stop when it ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

listen="${MUTANT_LISTEN:-127.0.0.1:7311}"
if curl -s "http://$listen/" >/dev/null 2>&1; then
    echo "py_quickstart.sh: something already listens on $listen; stop it or set MUTANT_LISTEN" >&2
    exit 1
fi
# Stop ClickHouse afterwards only if this script started it.
if ! curl -sf "http://127.0.0.1:${MUTANT_CLICKHOUSE_HTTP_PORT:-18123}/?query=SELECT%201" >/dev/null 2>&1; then
    stop_clickhouse=1
fi
url="$(scripts/clickhouse.sh start)"
trap 'kill "${server_pid:-}" 2>/dev/null || true; if [ -n "${stop_clickhouse:-}" ]; then scripts/clickhouse.sh stop; fi' EXIT
cargo build --release --locked -p mutant-server
venv="$(scripts/py_venv.sh)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check ./mutant-py

MUTANT_CLICKHOUSE_URL="$url" MUTANT_LISTEN="$listen" MUTANT_DATABASE="${MUTANT_DATABASE:-mutant_demo}" \
    target/release/mutant-server &
server_pid=$!
for _ in $(seq 1 100); do
    if curl -sf "http://$listen/healthz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then echo "py_quickstart.sh: mutant-server exited during start-up" >&2; exit 1; fi
    sleep 0.2
done
MUTANT_URL="http://$listen" "$venv/bin/python" examples/quickstart.py
