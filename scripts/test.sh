#!/usr/bin/env bash
# Runs every check of the project on a fresh machine: formatting, vet, the Go tests on every
# engine installed here (ONNX Runtime is installed first if it is missing, see
# scripts/install_onnxruntime), then executes every notebook headless with the CI budget
# (installing Jupyter and GoNB first, see scripts/setup.sh).
#
# The whole suite runs on the engine the automatic choice prefers (or $GOMLX_BACKEND), the short
# suite (go test -short) on each other engine; `go run ./scripts/engines` lists them.
#
#   bash scripts/test.sh            # everything
#   SHORT=1 bash scripts/test.sh    # skip the slow tests (go test -short) everywhere
#   NO_NOTEBOOKS=1 bash scripts/test.sh   # skip executing the notebooks (which installs Jupyter + GoNB)
#   NO_ONNXRUNTIME=1 bash scripts/test.sh # do not install ONNX Runtime
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

echo "== go: $(go version)"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

if [ -z "${NO_ONNXRUNTIME:-}" ]; then
  echo "== ONNX Runtime"
  go run ./scripts/install_onnxruntime ||
    echo "warning: ONNX Runtime could not be installed: the tests run on the other engines only" >&2
fi

args=(-count=1 -timeout=40m)
[ -n "${SHORT:-}" ] && args+=(-short)
# goexp prints the GOEXPERIMENT to test an engine with: none for the pure Go backend, whose tests
# build without simd: Go 1.27.3's simd.LoadFloat32sPart reads a whole vector past a short slice,
# which faults when a buffer ends at the edge of the mapped heap (half of the runs of
# scripts/evaluate's short tests on AVX-512).
goexp() { if [[ "$1" == go* ]]; then echo ""; else echo "${GOEXPERIMENT:-}"; fi; }
if [ -n "${GOMLX_BACKEND:-}" ]; then
  echo "== go test (GOMLX_BACKEND=$GOMLX_BACKEND)"
  GOEXPERIMENT="$(goexp "$GOMLX_BACKEND")" go test "${args[@]}" ./...
else
  engines=($(go run ./scripts/engines))
  echo "== engines installed: ${engines[*]}"
  echo "== go test (automatic choice: ${engines[0]})"
  GOEXPERIMENT="$(goexp "${engines[0]}")" go test "${args[@]}" ./...
  for engine in "${engines[@]:1}"; do
    echo "== go test -short (GOMLX_BACKEND=$engine)"
    GOEXPERIMENT="$(goexp "$engine")" GOMLX_BACKEND="$engine" go test -count=1 -timeout=40m -short ./...
  done
fi

if [ -z "${NO_NOTEBOOKS:-}" ]; then
  echo "== notebooks (NOTEBOOK_BUDGET=ci)"
  bash scripts/test_notebooks.sh
fi
