#!/usr/bin/env bash
# Regenerates mutant-core/testdata/digits.csv: scikit-learn's digits data set
# (1,797 8x8 images, 64 features with values 0..16, 10 classes), one record a
# line as "label,v0,...,v63". The data ships inside the scikit-learn package,
# so nothing is downloaded at run time; scikit-learn is installed from PyPI
# into a throwaway virtualenv under .build/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.build/digits-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet scikit-learn
fi
"$venv/bin/python" - "$root/mutant-core/testdata/digits.csv" <<'PY'
import sys
from sklearn.datasets import load_digits

digits = load_digits()
with open(sys.argv[1], "w") as out:
    for label, row in zip(digits.target, digits.data):
        out.write(",".join([str(int(label))] + [str(int(value)) for value in row]) + "\n")
PY
echo "wrote $root/mutant-core/testdata/digits.csv"
