#!/usr/bin/env bash
# The device check for a lent GPU machine, in one short run (under 8 minutes on one H200):
# one bert-base teacher epoch and one 6-layer student epoch on a GLUE-sized synthetic stream, achieved TFLOP/s
# against the card's peak, peak memory, and the 8-bit options. Results: $OUT/gpu_check.json (or bench/).
#   bash bench/gpu_check.sh [--max-seconds 150] [--rows 392702]
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi: running on $(uname -m)"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec timeout 470 python -m bench.gpu_check "$@"
