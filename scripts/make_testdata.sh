#!/usr/bin/env bash
# Regenerates the public data sets the tests and quality benchmarks use, from
# the copies that ship inside the scikit-learn package (nothing is downloaded
# at run time; scikit-learn is installed from PyPI into a throwaway
# virtualenv under .build/):
#
# - mutant-core/testdata/digits.csv: the digits (1,797 8x8 images, 64
#   features with values 0..16, 10 classes), "label,v0,...,v63" a line;
# - mutant-core/testdata/breast_cancer.csv: the Wisconsin breast cancer set
#   (569 records, 30 features, 2 classes), each feature standardised (mean
#   0, standard deviation 1, because their units differ by orders of
#   magnitude), "label,v0,...,v29" a line, 6 significant digits.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.build/testdata-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet scikit-learn
fi
"$venv/bin/python" - "$root/mutant-core/testdata" <<'PY'
import sys
from sklearn.datasets import load_breast_cancer, load_digits

out_dir = sys.argv[1]
digits = load_digits()
with open(f"{out_dir}/digits.csv", "w") as out:
    for label, row in zip(digits.target, digits.data):
        out.write(",".join([str(int(label))] + [str(int(value)) for value in row]) + "\n")
cancer = load_breast_cancer()
data = cancer.data
standardised = (data - data.mean(axis=0)) / data.std(axis=0)
with open(f"{out_dir}/breast_cancer.csv", "w") as out:
    for label, row in zip(cancer.target, standardised):
        out.write(",".join([str(int(label))] + [f"{value:.6g}" for value in row]) + "\n")
PY
echo "wrote $root/mutant-core/testdata/digits.csv and breast_cancer.csv"
