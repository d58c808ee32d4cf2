#!/usr/bin/env bash
# The web page's browser test: installs Debian's Chromium when it is missing
# and playwright-core (pinned by tests/ui/package-lock.json) from npm, then
# drives the page against a real debug mutant-server and the ClickHouse at
# MUTANT_CLICKHOUSE_URL. Screenshots land in .build/ui-screenshots/.
# scripts/test.sh runs it after building the server; it fails, never skips.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "ui_test.sh: $*" >&2; }

chromium="${MUTANT_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
    log "installing Debian's chromium (a browser download cannot work here)"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node and npm are needed for the browser test; install Node.js 20 or later"
    exit 1
fi
if [ ! -x target/debug/mutant-server ]; then
    log "no target/debug/mutant-server; run cargo build -p mutant-server first"
    exit 1
fi
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
MUTANT_CHROMIUM="$chromium" node tests/ui/ui.test.mjs
