#!/usr/bin/env bash
# The prepared check for a lent GPU machine, as one call (docs/benchmarks.md, "GPU (CUDA)"):
#   1. the CUDA tests (tests/test_device.py; TESTS_K selects some), 2. the full v4 run under a
#   time limit, 3. benchmarks/bench_gpu.py (env and training speed with and without CUDA graphs).
# Run from the repository root: `bash benchmarks/gpu_session.sh` (results under $OUT).
# Where exitcore is not installed, wheels in .whl/ (exitcore, its plugins, missing
# dependencies) are installed into /tmp/site first.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD:/tmp/site"  # the working tree's exitcore; the wheels give entry points and missing packages
fi
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
t0=$SECONDS
timeout "${TESTS_S:-150}" $PY -m pytest -q -p no:cacheprovider -rs -s tests/test_device.py ${TESTS_K:+-k "$TESTS_K"} 2>&1 | tail -n 40 | tee "$OUT/pytest.log"
echo "tests: $((SECONDS - t0)) s"
t0=$SECONDS
rm -rf /tmp/gpu_runs
timeout "${RUN_S:-170}" $PY -m exitcore run v4_no_lookahead --device cuda --runs-dir /tmp/gpu_runs 2>&1 | tail -n 30 | tee "$OUT/run.log"
echo "full run: $((SECONDS - t0)) s (exit ${PIPESTATUS[0]})"
for f in train_log.jsonl results.json; do cp /tmp/gpu_runs/*/"$f" "$OUT/" 2>/dev/null; done
t0=$SECONDS
timeout "${BENCH_S:-200}" $PY benchmarks/bench_gpu.py --device cuda ${BENCH_ARGS:-} --json "$OUT/gpu.json" 2>&1 | tail -n 30 | tee "$OUT/bench.log"
echo "bench: $((SECONDS - t0)) s"
