#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a fresh H100/H200 machine without internet, in one call of
# at most 8 minutes, the build included: probe, build (sm_90), module check, GPU tests, benchmarks.
# Each stage writes OUT/stage_<name>.json and prints its time as it ends; each benchmark case writes
# OUT/<case>.json as soon as each of its figures exists, so a later timeout loses nothing earlier.
# A stage gets its own limit or what is left of the budget, whichever is less; CC12M gets what is left
# and, if that is too little or it does not finish, is extrapolated from CC3M (the JSON and the table
# say so). The table comes last. Wheels the machine lacks (scipy-openblas32, pytest-timeout) travel
# in .whl/ (docs/gpu.md).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
BUDGET=${GPU_CHECK_BUDGET:-470}  # seconds for the whole script: one call of at most 8 minutes
t0=$SECONDS

stop() { echo "gpu_check: stopped: $1"; exit 1; }
left() { echo $((BUDGET - 10 - (SECONDS - t0))); }  # 10 s kept for the table
# stage NAME LIMIT CMD...: CMD under min(LIMIT, time left); writes OUT/stage_NAME.json; returns CMD's rc.
stage() {
  local name=$1 limit=$2 l s rc
  shift 2
  l=$(left)
  [ "$l" -lt "$limit" ] && limit=$l
  if [ "$limit" -lt 5 ]; then
    echo "== $name: skipped (no time left)"
    printf '{"stage": "%s", "skipped": "no time left"}\n' "$name" >"$OUT/stage_$name.json"
    return 124
  fi
  echo "== $name (limit $limit s, at $((SECONDS - t0)) s)"
  s=$SECONDS
  timeout "$limit" "$@"
  rc=$?
  printf '{"stage": "%s", "seconds": %d, "limit_s": %d, "rc": %d}\n' "$name" $((SECONDS - s)) "$limit" "$rc" \
    >"$OUT/stage_$name.json"
  echo "== $name: $((SECONDS - s)) s, rc $rc"
  return $rc
}

# 1. A GPU must answer, asked of the driver.
nvidia-smi -L 2>/dev/null | grep -q '^GPU' || stop "no GPU answers (nvidia-smi -L lists none)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/machine.txt"
echo "cores: $(nproc)" | tee -a "$OUT/machine.txt"

# 2. Wheels carried in .whl/, and what the build and the checks import.
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
missing=$($PY -c '
import importlib.util as u
need = ["numpy", "torch", "pybind11", "scikit_build_core", "scipy_openblas32", "pytest", "tqdm"]
print(" ".join(m for m in need if u.find_spec(m) is None))')
[ -z "$missing" ] || stop "missing Python packages: $missing"
command -v cmake >/dev/null || $PY -c 'import cmake' 2>/dev/null || stop "no cmake"
$PY -c 'import pytest_timeout' 2>/dev/null || echo "note: no pytest-timeout; only this script's limits bound a hang"

# 3. Build the CUDA module for sm_90, then it must answer too.
export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
stage build 200 bash -c "CLIPCOV_CUDA=ON CUDAARCHS=90 $PY -m pip install --no-build-isolation --no-deps -v -e . \
  >'$OUT/build.log' 2>&1" || { tail -30 "$OUT/build.log"; stop "the build failed (tail of $OUT/build.log above)"; }
why=$($PY -c 'from clipcov_fast import gpu; ok, why = gpu.available(); print(why); raise SystemExit(0 if ok else 1)' 2>&1) \
  || stop "the CUDA module does not work: $(echo "$why" | tail -1)"
echo "module: $why"

# 4. The GPU tests (each has its own timeout too).
stage tests 150 bash -c "$PY -m pytest -q -ra -p no:cacheprovider tests/test_cuda.py >'$OUT/tests.log' 2>&1"
tail -25 "$OUT/tests.log"

# 5. Benchmarks: 1M (GPU, then the CPU engine with 2 threads and with all cores), CC3M, CC12M.
stage n1m 110 $PY bench/gpu_bench.py --case n1m --out "$OUT" 2>&1 | tee -a "$OUT/bench.log"
stage cc3m 60 $PY bench/gpu_bench.py --case cc3m --out "$OUT" 2>&1 | tee -a "$OUT/bench.log"
limit=$(($(left) - 5))
if [ "$limit" -ge 60 ] && stage cc12m "$limit" $PY bench/gpu_bench.py --case cc12m --out "$OUT" 2>&1 | tee -a "$OUT/bench.log"; then
  :
else
  [ "$limit" -ge 60 ] || echo "== cc12m: $limit s left, too little to run it"
  $PY bench/gpu_bench.py --extrapolate cc12m --base cc3m --limit "$((limit > 0 ? limit : 0))" --out "$OUT" 2>&1 \
    | tee -a "$OUT/bench.log"
fi

echo "== done at $((SECONDS - t0)) s"
$PY bench/gpu_bench.py --table --out "$OUT"
