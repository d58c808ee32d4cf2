#!/usr/bin/env bash
# Mutant's exact kNN against faiss-cpu's exact IndexFlatL2 / IndexFlatIP, on
# the same data, in the same run: the 1,000-query batch (100,000 x 384, k = 10,
# 1 and 2 threads), single-query latency, and the self-kNN graph of
# 100,000 x 128. Prints both sides and the ratios (faiss time / Mutant time:
# above 1 means Mutant is faster).
#
# faiss-cpu and numpy come from PyPI into a throwaway virtualenv under .build/.
# These machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE), which hold
# faiss's bundled OpenBLAS to an older kernel; they are unset for faiss's own
# command only, so faiss is measured at its best.
#
# Usage: scripts/faiss_bench.sh [--threads 1,2] [--rows N] [--graph-rows N]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.build/faiss-venv"
results="$root/.build/faiss-bench"
mkdir -p "$results"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet faiss-cpu numpy
fi

echo "== Mutant (cargo bench, release) =="
(cd "$root" && cargo bench -p mutant-tests --bench knn -- "$@") | tee "$results/mutant.txt"
echo "== faiss-cpu =="
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" "$root/scripts/faiss_bench.py" "$@" | tee "$results/faiss.txt"

echo "== ratios (faiss seconds / Mutant seconds; > 1: Mutant faster) =="
python3 - "$results/mutant.txt" "$results/faiss.txt" <<'PY'
import sys

def read(path):
    found = {}
    for line in open(path):
        if line.startswith("result "):
            fields = line.split()
            values = dict(field.split("=") for field in fields[2:])
            found[(fields[1], values["threads"])] = float(values["seconds"])
    return found

mutant, faiss = read(sys.argv[1]), read(sys.argv[2])
for (name, threads), seconds in sorted(mutant.items()):
    other = faiss.get(("faiss_" + name, threads))
    if other is not None:
        print(f"{name:10} threads {threads}: Mutant {seconds * 1e3:9.2f} ms, faiss {other * 1e3:9.2f} ms, ratio {other / seconds:.2f}")
PY
