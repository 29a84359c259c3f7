#!/usr/bin/env bash
# The device check for a lent NVIDIA GPU, one prepared run of about 6 minutes:
#   bash bench/gpu.sh            (from the repository root, on the GPU machine; it has torch but no gymnasium)
# 1) the CUDA tests; 2) training-iteration speed on CUDA (eager, compiled, bfloat16 autocast) beside the CPU eager
# baseline measured in the same run. Prints BENCH lines: record them in docs/benchmarks.md with the date, the
# commit and the GPU model (the first lines printed).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
timeout 120 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_cuda.py
timeout 300 python3 bench/bench_model.py --device cuda --models mlp-sqair --workloads trained \
  --modes eager compile autocast compile-autocast --iters 5
timeout 90 python3 bench/bench_model.py --device cpu --models mlp-sqair --workloads trained --modes eager --iters 2 \
  --threads 16
