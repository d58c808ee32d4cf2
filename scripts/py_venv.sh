#!/usr/bin/env bash
# Creates (or updates) the Python virtualenv the SDK's build, tests, example
# and benchmark use: .build/py-venv, with maturin, pytest, numpy, pandas and
# scikit-learn from PyPI (mutant-py/requirements-dev.txt). Prints its path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=.build/py-venv
requirements=mutant-py/requirements-dev.txt
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
# Install only when the requirements changed since the last run.
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir -r "$requirements" >&2
    cp "$requirements" "$stamp"
fi
echo "$venv"
