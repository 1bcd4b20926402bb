# Sourced by the project's scripts: the Go toolchain settings every build here uses.
#
# GOEXPERIMENT=simd turns on the AVX-512 or AVX2 matmul kernels of GoMLX's pure Go backend
# (2-3x faster training on CPU). The first build with it recompiles the standard
# library (about a minute), after which the build cache is warm.
export GOEXPERIMENT="${GOEXPERIMENT:-simd}"
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
if ! command -v go >/dev/null; then
  echo "Go is not installed: install Go >= 1.26 (https://go.dev/dl) and re-run." >&2
  exit 1
fi
