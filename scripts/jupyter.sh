#!/usr/bin/env bash
# Starts Jupyter Notebook on notebooks/ with the Go kernel (GoNB), installing it first if needed.
#
#   bash scripts/jupyter.sh                  # http://localhost:8888, open tutorial.ipynb
#   IP=0.0.0.0 bash scripts/jupyter.sh       # listen on every interface (containers, remote machines)
#   PORT=9999 bash scripts/jupyter.sh        # another port
#   NOTEBOOK_BUDGET=cpu bash scripts/jupyter.sh   # the notebooks' training budget: ci, cpu (default) or gpu
#   bash scripts/jupyter.sh --NotebookApp.token=''  # extra arguments go to `jupyter notebook`
#
# The environment of this script (GOEXPERIMENT=simd from scripts/env.sh, NOTEBOOK_BUDGET,
# CHECKPOINT, GOMLX_BACKEND...) is what the notebook cells see.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

kernel_json="${JUPYTER_DATA_DIR:-$(jupyter --data-dir 2>/dev/null || echo "$HOME/.local/share/jupyter")}/kernels/gonb/kernel.json"
if ! command -v jupyter >/dev/null || [ ! -f "$kernel_json" ] || ! command -v gonb >/dev/null; then
  bash scripts/setup.sh
fi

args=(--no-browser --ip="${IP:-127.0.0.1}" --port="${PORT:-8888}" --notebook-dir="$PWD/notebooks")
[ "$(id -u)" = 0 ] && args+=(--allow-root)
echo "jupyter: serving notebooks/ on http://${IP:-127.0.0.1}:${PORT:-8888} (open tutorial.ipynb); Ctrl-C to stop"
exec jupyter notebook "${args[@]}" "$@"
