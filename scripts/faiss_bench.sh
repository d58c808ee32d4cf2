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
# command only. faiss then runs twice a round: with its OpenBLAS left to
# detect the CPU, and forced to the kernel of the widest SIMD the CPU has
# (SkylakeX with AVX-512, Haswell with AVX2); each figure keeps faiss's best.
#
# Usage: scripts/faiss_bench.sh [--rounds 3] [--threads 1,2] [--rows N] [--graph-rows N]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.build/faiss-venv"
results="$root/.build/faiss-bench"
mkdir -p "$results"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet faiss-cpu numpy
fi

# The machine is shared and noisy: the two sides alternate, round after
# round, and each figure is the best of its rounds.
rounds=3
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
# The OpenBLAS kernel of the widest SIMD this CPU has, if it has AVX2 or more.
widest_kernel=""
if grep -qw avx512f /proc/cpuinfo; then
    widest_kernel="SkylakeX"
elif grep -qw avx2 /proc/cpuinfo; then
    widest_kernel="Haswell"
fi
(cd "$root" && cargo bench -p mutant-tests --bench knn --no-run --quiet)
: >"$results/mutant.txt"
: >"$results/faiss.txt"
for round in $(seq "$rounds"); do
    echo "== round $round of $rounds: Mutant (cargo bench, release) =="
    (cd "$root" && cargo bench -p mutant-tests --bench knn --quiet -- "${args[@]}") | tee -a "$results/mutant.txt"
    echo "== round $round of $rounds: faiss-cpu, OpenBLAS detecting the CPU =="
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" "$root/scripts/faiss_bench.py" "${args[@]}" | tee -a "$results/faiss.txt"
    if [ -n "$widest_kernel" ]; then
        echo "== round $round of $rounds: faiss-cpu, OpenBLAS forced to $widest_kernel =="
        env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$widest_kernel" "$venv/bin/python" "$root/scripts/faiss_bench.py" "${args[@]}" | tee -a "$results/faiss.txt"
    fi
done

echo "== ratios, best of $rounds rounds each, faiss at its best of both OpenBLAS kernels (faiss seconds / Mutant seconds; > 1: Mutant faster) =="
python3 - "$results/mutant.txt" "$results/faiss.txt" <<'PY'
import sys

def read(path):
    found = {}
    for line in open(path):
        if line.startswith("result "):
            fields = line.split()
            values = dict(field.split("=") for field in fields[2:])
            key = (fields[1], values["threads"])
            found[key] = min(found.get(key, float("inf")), float(values["seconds"]))
    return found

mutant, faiss = read(sys.argv[1]), read(sys.argv[2])
for (name, threads), seconds in sorted(mutant.items()):
    other = faiss.get(("faiss_" + name, threads))
    if other is not None:
        print(f"{name:10} threads {threads}: Mutant {seconds * 1e3:9.2f} ms, faiss {other * 1e3:9.2f} ms, ratio {other / seconds:.2f}")
# Each side at its best thread count (faiss answers one query fastest on one
# thread).
for name in sorted({name for name, _ in mutant}):
    ours = min(seconds for (key, _), seconds in mutant.items() if key == name)
    theirs = [seconds for (key, _), seconds in faiss.items() if key == "faiss_" + name]
    if theirs:
        print(f"{name:10} best thread count: Mutant {ours * 1e3:9.2f} ms, faiss {min(theirs) * 1e3:9.2f} ms, ratio {min(theirs) / ours:.2f}")
PY
