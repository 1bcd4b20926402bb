# The notebooks of this repository in a container: Go, Jupyter Notebook and the GoNB Go kernel.
#
#   docker build -t godiffusion .
#   docker run --rm -p 8888:8888 godiffusion
#   # then open the http://127.0.0.1:8888/?token=... address it prints, and tutorial.ipynb
#
#   docker run --rm -p 8888:8888 -e NOTEBOOK_BUDGET=ci godiffusion     # the quick budget
#   docker run --rm godiffusion bash scripts/test_notebooks.sh         # run the notebook tests
#
# Building needs the internet (the Go tarball, Debian packages and Go modules). Inside, everything
# is installed by scripts/setup.sh, the same script a user runs on their own Debian/Ubuntu machine.
# GPU: the image runs GoMLX's pure Go backend; for XLA on CUDA, install a PJRT CUDA plugin and set
# PJRT_PLUGIN_LIBRARY_PATH (see the project README).
FROM debian:bookworm

ARG GO_VERSION=1.26.8
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && arch="$(dpkg --print-architecture)" \
 && curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-${arch}.tar.gz" | tar -C /usr/local -xz \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/go/bin:/root/go/bin:$PATH

WORKDIR /godiffusion
COPY . .
RUN bash scripts/setup.sh

# Jupyter listens on every interface inside the container; publish the port with -p 8888:8888.
ENV IP=0.0.0.0 PORT=8888
EXPOSE 8888
CMD ["bash", "scripts/jupyter.sh"]
