#!/usr/bin/env bash
# The coverage screen's benchmarks (issue 22): each case with the screen off (CLIPCOV_SCREEN=0, the dense path)
# and on, in fresh processes, alternating, REPEATS times; the picks of the two compared. Results and a markdown
# table in bench/results/screen/. Heavy (about 25 minutes on 2 cores with the CC3M shape; CC3M=0 skips it).
# FASHION: a folder of the experiment's proxy embeddings of fashion-web (img.npy, txt.npy, labels.npy), made by
# `clipcov experiment --config full` in runs/experiment-full/emb-lite0-minilm; skipped when absent.
# Run from the repository root: bash bench/screen_bench.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=bench/results/screen
REPEATS=${REPEATS:-3}
FASHION=${FASHION:-runs/experiment-full/emb-lite0-minilm}
mkdir -p "$OUT"
export OMP_NUM_THREADS=2
pool() { "$PY" -c "import sys; sys.path.insert(0, 'bench'); from conftest import pool; print(pool($1))"; }
run() {  # name pool k: REPEATS runs of each setting, one JSON line each
  local name=$1 pool=$2 k=$3
  : > "$OUT/$name.jsonl"
  for r in $(seq "$REPEATS"); do
    for s in 0 1; do
      CLIPCOV_SCREEN=$s "$PY" bench/screen_measure.py "$pool" "$k" "$OUT/$name-picks-$s.npy" | tee -a "$OUT/$name.jsonl"
    done
  done
}
run oneclass-12k "$(pool '12000, 1, dtype="float32"')" 1200
"$PY" bench/measure.py apricot "$(pool '12000, 1, dtype="float32"')" 1200 | tee "$OUT/oneclass-12k-apricot.json"
run random-12k random:12000:512:0 1200
[ -f "$FASHION/img.npy" ] && run fashion-web "$FASHION" 0.1
run zipf-1m "$(pool '1000000, 1000')" 100000
[ "${CC3M:-1}" = 0 ] || REPEATS=1 run cc3m-2.84m "$(pool '2840000, 1000')" 284000
"$PY" bench/screen_measure.py table "$OUT" | tee "$OUT/table.md"
