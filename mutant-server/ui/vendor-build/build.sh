#!/usr/bin/env bash
# Rebuilds ../vendor/regl-scatterplot.js (one minified IIFE exposing
# `createScatterplot`) and ../vendor/LICENSES.txt from the versions pinned in
# package-lock.json. The output is committed, so neither the server build nor
# the tests run this; run it only to change the library's version.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --no-audit --no-fund
mkdir -p ../vendor
npx esbuild entry.js --bundle --minify --format=iife --target=es2020 \
    --legal-comments=none --outfile=../vendor/regl-scatterplot.js
{
    echo "Licences of the packages bundled into regl-scatterplot.js (npm, versions of package-lock.json)."
    for package in $(node -e '
        const lock = require("./package-lock.json");
        for (const [path, entry] of Object.entries(lock.packages)) {
            if (path && !entry.dev) console.log(path.replace(/^node_modules\//, ""));
        }' | sort); do
        version=$(node -p "require('./node_modules/$package/package.json').version")
        echo
        echo "=== $package $version"
        licence=$(ls node_modules/"$package" | grep -iE '^(licen[cs]e|copying)' | head -1 || true)
        if [ -n "$licence" ]; then
            cat "node_modules/$package/$licence"
        else
            echo "licence: $(node -p "require('./node_modules/$package/package.json').license")"
        fi
    done
} > ../vendor/LICENSES.txt
