#!/usr/bin/env bash
# Runs every check of the project on a fresh machine: formatting, vet, the Go tests
# (on GoMLX's pure Go backend unless GOMLX_BACKEND says otherwise), then executes every
# notebook headless with the CI budget (installing Jupyter and GoNB first, see scripts/setup.sh).
#
#   bash scripts/test.sh            # everything
#   SHORT=1 bash scripts/test.sh    # skip the slow tests (go test -short)
#   NO_NOTEBOOKS=1 bash scripts/test.sh   # skip executing the notebooks (which installs Jupyter + GoNB)
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

echo "== go test"
args=(-count=1 -timeout=40m)
[ -n "${SHORT:-}" ] && args+=(-short)
go test "${args[@]}" ./...

if [ -z "${NO_NOTEBOOKS:-}" ]; then
  echo "== notebooks (NOTEBOOK_BUDGET=ci)"
  bash scripts/test_notebooks.sh
fi
