#!/usr/bin/env bash
# Accelerator readiness in one call: MFU of a ~1B-parameter bf16 train step, KV-cache
# decode tokens/s, dry-run memory vs measured peak, and the PMformer paper-size ETTh1 run,
# as one table. Without a GPU it prints one line and exits 0 (--smoke: a tiny CPU run).
#
#   bash benchmarks/gpu_check.sh [--out=gpu_check.md] [--data_path=CSV] [--smoke]
#   PYTHON=python3 bash benchmarks/gpu_check.sh --out="$OUT/gpu_check.md"   # on a GPU machine
#
# Flags and parts: benchmarks/gpu_check.py's docstring. The interpreter is $PYTHON if set,
# else the repository's .venv if it exists, else python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
if [[ -n "${PYTHON:-}" ]]; then
  py="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
  py="$repo/.venv/bin/python"
else
  py="python3"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$py" "$here/gpu_check.py" "$@"
