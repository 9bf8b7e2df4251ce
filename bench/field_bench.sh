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
# not in make bench: a 12.8M-row pool (DataComp-small's shape, clip-retrieval layout: 26 GB) and the local engine
POOL=${POOL:-bench/data/cr12800k}
[ -d "$POOL/img_emb" ] || "$PY" bench/field_measure.py write-pool "$POOL" 12800000 512 40
run normsim-12.8m pool-scores normsim "$POOL" 2
run clip-score-12.8m pool-scores clip_score "$POOL" 2
run image-based-1m image-based 1000000 512 10000 2
