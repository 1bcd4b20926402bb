#!/usr/bin/env bash
# Executes every notebook under notebooks/ headless with the small CI budget and checks the
# results: no failed cell (compile error, panic, "exit status N") and, for the tutorial, the
# pictures it must show. The executed notebooks (with their outputs) are written to
# out/notebooks/ (or $OUT_DIR) for a look: jupyter nbconvert --to html out/notebooks/tutorial.ipynb
#
#   bash scripts/test_notebooks.sh                       # all notebooks, NOTEBOOK_BUDGET=ci
#   bash scripts/test_notebooks.sh notebooks/variants.ipynb
#   NOTEBOOK_BUDGET=cpu CELL_TIMEOUT=7200 bash scripts/test_notebooks.sh   # the longer budgets
#
# Jupyter's exit status alone is not enough: nbconvert only fails on compile errors and timeouts;
# a Go panic in a GoNB cell only prints "exit status 2" in the cell's output. scripts/nbcheck
# scans the executed notebooks for that.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh >/dev/null
source scripts/env.sh

out="${OUT_DIR:-out/notebooks}"
mkdir -p "$out"
out="$(cd "$out" && pwd)" # Absolute: the notebooks run from notebooks/.
export NOTEBOOK_BUDGET="${NOTEBOOK_BUDGET:-ci}"
# The notebooks keep their checkpoints and pictures in a work folder: a fresh one per test run
# (NOTEBOOK_DEFAULT_WORKDIR=1 keeps the notebooks' own default, runs/notebooks-BUDGET/, whose
# relative path is what they print: scripts/notebook_outputs.sh).
if [ -z "${NOTEBOOK_DEFAULT_WORKDIR:-}" ]; then
  export NOTEBOOK_WORKDIR="${NOTEBOOK_WORKDIR:-$out/work}"
  rm -rf "$NOTEBOOK_WORKDIR"
else
  unset NOTEBOOK_WORKDIR
  rm -rf "runs/notebooks-$NOTEBOOK_BUDGET"
fi
unset CHECKPOINT

if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=(notebooks/*.ipynb); fi

status=0
executed=()
for nb in "${notebooks[@]}"; do
  t0=$(date +%s)
  echo "== executing $nb (NOTEBOOK_BUDGET=$NOTEBOOK_BUDGET)"
  if ! jupyter nbconvert --to notebook --execute \
    --ExecutePreprocessor.timeout="${CELL_TIMEOUT:-600}" \
    --ExecutePreprocessor.kernel_name=gonb \
    --output-dir "$out" "$nb" 2>"$out/$(basename "$nb" .ipynb).log"; then
    echo "   nbconvert failed (compile error or timeout); the end of its log:"
    grep -v '^\[NbConvertApp\]' "$out/$(basename "$nb" .ipynb).log" | tail -25 | sed 's/^/   | /'
    status=1
  fi
  echo "   took $(($(date +%s) - t0)) s"
  [ -f "$out/$(basename "$nb")" ] && executed+=("$out/$(basename "$nb")")
done

# What the notebooks must show: tags are set on their cells.
require=(
  -require tutorial.ipynb:data-sample=png
  -require tutorial.ipynb:forward-noising=png
  -require tutorial.ipynb:embedding=png
  -require tutorial.ipynb:loss-curve=svg
  -require tutorial.ipynb:ddpm=png+gif
  -require tutorial.ipynb:ddim=png+gif
  -require tutorial.ipynb:tutorial-errors=png
  -require variants.ipynb:schedules=svg+png
  -require variants.ipynb:ddim-grid=png
  -require variants.ipynb:ddpm-vs-ddim=png
  -require guidance.ipynb:guidance-grid=png
  -require guidance.ipynb:inversion=png
  -require guidance.ipynb:interpolation=png+gif
  -require guidance.ipynb:inpainting=png
)
# Only require outputs of the notebooks that ran.
selected=()
for ((i = 0; i < ${#require[@]}; i += 2)); do
  name="${require[i + 1]%%:*}"
  for e in "${executed[@]}"; do
    if [ "$(basename "$e")" = "$name" ]; then selected+=(-require "${require[i + 1]}"); fi
  done
done
if [ ${#executed[@]} -gt 0 ]; then
  go run ./scripts/nbcheck "${selected[@]}" "${executed[@]}" || status=1
fi

echo "== notebooks: $([ $status = 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - start)) s; executed notebooks in $out/"
exit $status
