# Sourced by the project's scripts: the Go toolchain settings every build here uses.
#
# GoMLX v0.28.16 and its backends need Go >= 1.27: GOTOOLCHAIN makes any installed go command
# (>= 1.21) fetch Go 1.27.3 from the module proxy on first use (about 76 MB, once per machine).
# GOEXPERIMENT=simd turns on the AVX-512 or AVX2 matmul kernels of GoMLX's pure Go backend
# (docs/performance.md). The first build with it recompiles the standard
# library (about a minute), after which the build cache is warm.
export GOTOOLCHAIN="${GODIFFUSION_TOOLCHAIN:-go1.27.3+auto}"
export GOEXPERIMENT="${GOEXPERIMENT:-simd}"
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
if ! command -v go >/dev/null; then
  echo "Go is not installed: install Go >= 1.21 (https://go.dev/dl) and re-run; it fetches Go 1.27.3 itself." >&2
  exit 1
fi
