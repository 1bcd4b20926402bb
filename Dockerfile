# The notebooks of this repository in a container: Go, Jupyter Notebook and the GoNB Go kernel.
#
#   docker build -t godiffusion .
#   docker run --rm -p 8888:8888 godiffusion
#   # then open the http://127.0.0.1:8888/?token=... address it prints, and tutorial.ipynb
#
#   docker run --rm -p 8888:8888 -e NOTEBOOK_BUDGET=ci godiffusion     # the quick budget
#   docker run --rm godiffusion bash scripts/test_notebooks.sh         # run the notebook tests
#
# For GPU servers (XLA on CUDA): a CUDA base image (BASE), and the CUDA PJRT plugin installed while
# the image is built (INSTALL_CUDA_PLUGIN=1 runs scripts/install_pjrt: JAX's plugin and the NVIDIA
# libraries it needs, from pypi.org, into /usr/local/lib/go-xla). The host needs the NVIDIA driver
# (>= 580 for the default CUDA_PLUGIN=cuda13; add --build-arg CUDA_PLUGIN=cuda12 for older ones) and
# the NVIDIA Container Toolkit. Nothing has been measured on a GPU yet.
#
#   docker build --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#     --build-arg INSTALL_CUDA_PLUGIN=1 -t godiffusion-gpu .
#   docker run --rm --gpus all -e GOMLX_BACKEND=xla:cuda -p 8888:8888 -e NOTEBOOK_BUDGET=gpu godiffusion-gpu
#   docker run --rm --gpus all -e GOMLX_BACKEND=xla:cuda -v "$PWD/runs:/godiffusion/runs" godiffusion-gpu \
#     bash scripts/train.sh --preset tutorial --classes=false --epochs 10 --minutes 0 --out runs/tutorial
#
# Without INSTALL_CUDA_PLUGIN the GPU image has no plugin: run scripts/install_pjrt in the container,
# or let GoMLX download it when GOMLX_BACKEND=xla:cuda asks for it (see the README's GPU section).
# Building needs the internet (the Go tarball, Debian/Ubuntu packages and Go modules). Inside,
# everything is installed by scripts/setup.sh, the same script a user runs on their own machine.
ARG BASE=debian:bookworm
FROM ${BASE}

ARG GO_VERSION=1.27.3
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && arch="$(dpkg --print-architecture)" \
 && curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-${arch}.tar.gz" | tar -C /usr/local -xz \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/go/bin:/root/go/bin:$PATH

WORKDIR /godiffusion
COPY . .
RUN bash scripts/setup.sh

# The CUDA PJRT plugin, at build time (off by default: the NVIDIA libraries take a few GB).
ARG INSTALL_CUDA_PLUGIN=0
ARG CUDA_PLUGIN=cuda13
RUN if [ "$INSTALL_CUDA_PLUGIN" = 1 ]; then \
      bash -c 'source scripts/env.sh && go run ./scripts/install_pjrt --plugin "$CUDA_PLUGIN" --path /usr/local/lib/go-xla'; \
    fi

# Jupyter listens on every interface inside the container; publish the port with -p 8888:8888.
ENV IP=0.0.0.0 PORT=8888
EXPOSE 8888
CMD ["bash", "scripts/jupyter.sh"]
