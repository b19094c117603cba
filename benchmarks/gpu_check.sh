#!/usr/bin/env bash
# Issue 12's GPU figures in one run on the lent GPU machine (Python 3.12, torch preinstalled,
# no network). From the checkout on this machine, first:
#   cp -r ../shared/gpu .gpu                       # the three wheels it lacks (git-ignored)
#   cp -r /tmp/mrq_rel/MRQ .release                # optional: the release, to time it too
# then run `bash benchmarks/gpu_check.sh` there (device tool: carry [".gpu", ".release"]).
# Tables land in $OUT (default ./gpu_out): throughput per scale / regime / mode / precision.
set -euo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl
rm -f /tmp/site/torchrl/_torchrl*.so
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RL_WARNINGS=0
release=()
if [ -d .release ]; then release=(--release .release); fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
# every scale eager, beside the release (fp32)
python3 benchmarks/throughput.py --device cuda --scales 1x 3x 5x xl --regimes dense mst \
    --modes eager --steps 30 --rounds 2 "${release[@]}" --out "$OUT/throughput_eager.md"
# 1x: compiled and the precision options (the launch-bound case)
python3 benchmarks/throughput.py --device cuda --scales 1x --regimes dense mst \
    --modes eager compiled --precisions fp32 high bf16 --steps 50 --rounds 2 "${release[@]}" \
    --out "$OUT/throughput_1x.md"
# xl: the precision options (the compute-bound case)
python3 benchmarks/throughput.py --device cuda --scales xl --regimes dense \
    --modes eager --precisions fp32 high bf16 --steps 20 --rounds 2 \
    --out "$OUT/throughput_xl_precision.md"
