#!/usr/bin/env bash
# Regenerates the outputs committed in notebooks/*.ipynb, so that a reader on a code host sees the
# pictures, GIFs and loss curve without running anything: executes every notebook headless with
# the cpu budget (or $NOTEBOOK_BUDGET) through scripts/test_notebooks.sh, which checks every cell,
# and copies the executed notebooks over notebooks/ only if all passed. The notebooks' work folder
# is runs/notebooks-BUDGET/ (what they print, relative to notebooks/). CI still executes the
# notebooks with the ci budget into a scratch folder (scripts/test_notebooks.sh).
#
#   bash scripts/notebook_outputs.sh                       # every notebook, cpu budget
#   bash scripts/notebook_outputs.sh notebooks/variants.ipynb
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
export NOTEBOOK_BUDGET="${NOTEBOOK_BUDGET:-cpu}" NOTEBOOK_DEFAULT_WORKDIR=1
OUT_DIR="$out" CELL_TIMEOUT="${CELL_TIMEOUT:-7200}" bash scripts/test_notebooks.sh "$@"
if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=(notebooks/*.ipynb); fi
for nb in "${notebooks[@]}"; do
  cp "$out/$(basename "$nb")" "$nb"
  echo "notebook_outputs: $nb now holds the outputs of a $NOTEBOOK_BUDGET run ($(du -k "$nb" | cut -f1) KB)"
done
