#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a fresh H100/H200 machine without internet:
# build with CUDA for sm_90, run the GPU tests, then the GPU benchmarks; logs and JSON under $OUT;
# a short table last. Stages have their own time limits so the whole stays within 8 minutes.
# Wheels the machine lacks (scipy-openblas32) travel in .whl/ (see bench/README or docs/gpu.md).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
t0=$SECONDS
stage() { echo "== $1 ($((SECONDS - t0)) s)"; }

stage "wheels"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/build.log"

stage "build (CLIPCOV_CUDA=ON CUDAARCHS=90)"
CLIPCOV_CUDA=ON CUDAARCHS=90 timeout 200 $PY -m pip install --no-build-isolation --no-deps -v -e . \
  >>"$OUT/build.log" 2>&1 || { echo "build failed; tail of $OUT/build.log:"; tail -40 "$OUT/build.log"; exit 1; }

stage "GPU tests"
timeout 100 $PY -m pytest -q -ra tests/test_cuda.py 2>&1 | tee "$OUT/tests.log" | tail -15

stage "benchmarks"
for spec in n1m:110 cc3m:60 cc12m:100; do
  case=${spec%%:*}
  timeout "${spec##*:}" $PY bench/gpu_bench.py --case "$case" --out "$OUT" 2>&1 | tee -a "$OUT/bench.log" \
    || echo "[$case] did not finish (limit ${spec##*:} s or error)" | tee -a "$OUT/bench.log"
done

stage "done"
$PY bench/gpu_bench.py --table --out "$OUT"
