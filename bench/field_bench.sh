#!/usr/bin/env bash
# The field's selectors' benchmarks (issue 20), each case in a fresh process; results in bench/results/field/.
# Heavy: about 15 minutes on 2 cores. Run from the repository root: bash bench/field_bench.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=bench/results/field
mkdir -p "$OUT"
export OMP_NUM_THREADS=2
run() { local name=$1; shift; echo "== $name: $*"; "$PY" bench/field_measure.py "$@" | tee "$OUT/$name.json"; }
run sgemm sgemm 32768 512 2
run negclip-ours negclip-ours 100000 512 32768 3 2
run negclip-torch negclip-torch 100000 512 32768 3 2
