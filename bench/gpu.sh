#!/usr/bin/env bash
# The GPU check, run on the lent NVIDIA machine (Python 3.12, Triton, CUDA, torch there; no internet):
# the op tests on TRITON and on OPENCL through NVIDIA's driver, then bench/gpu_bench.py. Prints a short table last.
#
# Prepare here, once (wheels for what the GPU machine lacks; see the device tool's README):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl pyopencl pytools platformdirs siphash24 typing_extensions pytest pluggy iniconfig packaging hypothesis \
#     sortedcontainers attrs
# then run it with carry=[".whl"]: `bash bench/gpu.sh`
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$PWD:/tmp/site:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
# lazygrad.backends is the top-level backends/ folder once installed; without installing, link it into place
[ -e lazygrad/backends ] || ln -s ../backends lazygrad/backends
# NVIDIA's OpenCL driver through an ICD folder
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/card.txt"
TESTS="tests/test_ops.py tests/test_schedule.py tests/test_indexing.py tests/test_parity.py tests/test_triton.py tests/test_dynamic.py"
LAZYGRAD_DEVICE=TRITON timeout 240 python3 -m pytest -q -x $TESTS 2>&1 | tail -5 | tee "$OUT/triton_tests.txt"
LAZYGRAD_DEVICE=OPENCL timeout 240 python3 -m pytest -q -x $TESTS 2>&1 | tail -5 | tee "$OUT/opencl_tests.txt"
LAZYGRAD_DEVICE=TRITON timeout 240 python3 bench/gpu_bench.py 2>&1 | tee "$OUT/triton_bench.txt"
LAZYGRAD_DEVICE=OPENCL timeout 180 python3 bench/gpu_bench.py 2>&1 | tee "$OUT/opencl_bench.txt"
# a loop that never reads its loss: the host's run-ahead is bounded (CUDA's queue; ours on OpenCL), memory flat
for d in TRITON OPENCL; do LAZYGRAD_DEVICE=$d timeout 90 python3 bench/soak.py mlp --steps 20000 --reports 4 2>&1 | tail -1 | tee "$OUT/soak_$d.txt"; done
echo "=== summary ==="; cat "$OUT/card.txt"; tail -1 "$OUT/triton_tests.txt" "$OUT/opencl_tests.txt"
cat "$OUT/triton_bench.txt" "$OUT/opencl_bench.txt" "$OUT/soak_TRITON.txt" "$OUT/soak_OPENCL.txt"
