#!/usr/bin/env bash
# Installs what the notebooks need, on a fresh Debian/Ubuntu machine (as root or with sudo):
#
#   - Jupyter Notebook + nbconvert from the distribution (apt), if `jupyter` is missing, and gcc if
#     there is no C compiler (cgo: the XLA backend's bindings);
#   - the ONNX Runtime library (the fast CPU engine), with scripts/install_onnxruntime: GoMLX's
#     installer (GitHub), else the npm package onnxruntime-node (with Node.js + npm from apt if
#     npm is missing); if that fails everything runs on GoMLX's pure Go backend;
#   - the Go kernel GoNB and its helpers goimports and gopls, at the versions pinned in go.mod
#     (`tool` directives; gopls is built from its own pinned module, see below), into GOBIN;
#   - the GoNB kernel spec (`gonb --install`), for the current user;
#   - a warm Go build cache for the packages the notebooks import.
#
# It is idempotent: each step is skipped when its result is already there, and it prints what it
# did. Go (>= 1.26) must already be installed (see the Dockerfile or https://go.dev/dl).
#
#   bash scripts/setup.sh            # install what is missing
#   FORCE=1 bash scripts/setup.sh    # rebuild the Go tools and re-install the kernel spec
#   NO_ONNXRUNTIME=1 bash scripts/setup.sh   # do not install ONNX Runtime
#
# Why not `go install github.com/janpfeifer/gonb@v0.11.3`? Installing with @version makes the go
# command ask the module proxy for deprecation notices, which some proxies refuse (403). Building
# the tools from this module, which pins them, asks nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

GOPLS_VERSION=v0.23.0
GOBIN_DIR="$(go env GOBIN)"
[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH)/bin"
mkdir -p "$GOBIN_DIR"
export PATH="$GOBIN_DIR:$PATH"

did=()
say() { echo "setup: $*"; }

# --- 1. Debian packages: Jupyter (Notebook 6 and nbconvert; PyPI is not needed) and a C compiler
# (the XLA backend's PJRT bindings use cgo, so every program importing ./backend needs one). ------
apt_packages=()
if ! command -v jupyter >/dev/null || ! jupyter nbconvert --version >/dev/null 2>&1 ||
  ! jupyter notebook --version >/dev/null 2>&1; then
  apt_packages+=(jupyter-notebook jupyter-nbconvert)
fi
if [ "$(go env CGO_ENABLED)" = 1 ] && ! command -v "$(go env CC)" >/dev/null; then
  apt_packages+=(gcc libc6-dev)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
      echo "setup: installing ${apt_packages[*]} needs root (or sudo):" >&2
      echo "  apt-get install -y --no-install-recommends ${apt_packages[*]}" >&2
      exit 1
    fi
  fi
  # apt-get update only when the package lists are missing or do not know the packages.
  if ! apt-cache show "${apt_packages[@]}" >/dev/null 2>&1; then
    say "apt-get update"
    $SUDO apt-get update -qq
  fi
  say "installing ${apt_packages[*]} (apt, about a minute)"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${apt_packages[@]}" >/dev/null
  did+=("${apt_packages[*]} (apt)")
fi
say "jupyter notebook $(jupyter notebook --version 2>/dev/null), nbconvert $(jupyter nbconvert --version 2>/dev/null)"

# --- 2. ONNX Runtime, the fast CPU engine that package backend picks when its library is installed
# (README, Backends). scripts/install_onnxruntime says "already installed" when it is; else it tries
# GoMLX's installer (GitHub releases) and falls back to the npm package onnxruntime-node, which
# needs npm: Debian's nodejs + npm are installed for that when npm is missing and apt can. Failing
# all that is not fatal: everything then runs on GoMLX's pure Go backend. -----------------------
ort_warn() {
  echo "setup: warning: ONNX Runtime is not installed ($*); the tests and jobs will run on GoMLX's" \
    "pure Go backend (slower). Retry with: go run ./scripts/install_onnxruntime" >&2
}
# install_ort ARGS...: runs the installer, its output also in $ort_log.
install_ort() { go run ./scripts/install_onnxruntime "$@" | tee "$ort_log"; }
if [ "${NO_ONNXRUNTIME:-0}" != 0 ]; then
  say "ONNX Runtime: skipped (NO_ONNXRUNTIME is set)"
else
  ort_log="$(mktemp)"
  ort_ok=""
  if install_ort; then
    ort_ok=1
  elif command -v npm >/dev/null; then
    ort_warn "scripts/install_onnxruntime failed, see above"
  elif ! command -v apt-get >/dev/null; then
    ort_warn "GoMLX's installer could not download it, and npm, needed for the fallback, is missing: install Node.js with npm"
  else
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
    if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then
      ort_warn "npm is missing, and installing it needs root (or sudo): apt-get install -y nodejs npm"
    else
      if ! apt-cache show nodejs npm >/dev/null 2>&1; then
        say "apt-get update"
        $SUDO apt-get update -qq || true
      fi
      say "installing nodejs npm for the npm package onnxruntime-node (apt, a minute or two)"
      if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        nodejs npm >/dev/null; then
        ort_warn "npm is missing and apt-get install nodejs npm failed"
      else
        did+=("nodejs npm (apt)")
        if install_ort --from npm; then ort_ok=1; else ort_warn "scripts/install_onnxruntime --from npm failed, see above"; fi
      fi
    fi
  fi
  if [ -n "$ort_ok" ] && ! grep -q "already installed" "$ort_log"; then
    did+=("ONNX Runtime ($(grep '^onnxruntime: installed' "$ort_log" | grep -o 'from GitHub\|from the npm package [^ ]*' | head -1))")
  fi
  rm -f "$ort_log"
fi

# --- 3. GoNB and goimports, from the go.mod `tool` directives. ----------------------------------
# module_version MOD: the version go.mod pins; built_version BIN MOD: the version BIN was built from.
module_version() { go list -m -f '{{.Version}}' "$1"; }
built_version() { go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'; }
gonb_v="$(module_version github.com/janpfeifer/gonb)"
tools_v="$(module_version golang.org/x/tools)"
if [ -n "${FORCE:-}" ] || [ "$(built_version "$GOBIN_DIR/gonb" github.com/janpfeifer/gonb)" != "$gonb_v" ] ||
  [ "$(built_version "$GOBIN_DIR/goimports" golang.org/x/tools)" != "$tools_v" ]; then
  say "building gonb $gonb_v and goimports $tools_v (go install tool) into $GOBIN_DIR"
  GOBIN="$GOBIN_DIR" go install github.com/janpfeifer/gonb golang.org/x/tools/cmd/goimports
  did+=("gonb + goimports")
fi

# --- 4. gopls (autocompletion and help in GoNB; optional for running notebooks). -----------------
# gopls pins its own golang.org/x/tools, older than the goimports above needs, so it cannot share
# this module's build list: it is built in a scratch module that requires only gopls.
if [ -n "${FORCE:-}" ] || [ "$(built_version "$GOBIN_DIR/gopls" golang.org/x/tools/gopls)" != "$GOPLS_VERSION" ]; then
  say "building gopls $GOPLS_VERSION into $GOBIN_DIR (about a minute)"
  scratch="$(mktemp -d)"
  if (cd "$scratch" && go mod init gopls-build >/dev/null 2>&1 &&
    go get "golang.org/x/tools/gopls@$GOPLS_VERSION" >/dev/null 2>&1 &&
    go build -o "$GOBIN_DIR/gopls" golang.org/x/tools/gopls); then
    did+=("gopls")
  else
    echo "setup: warning: could not build gopls $GOPLS_VERSION; notebooks run without it (no autocompletion)" >&2
  fi
  rm -rf "$scratch"
fi

# --- 5. The GoNB kernel spec. -------------------------------------------------------------------
# --raw_error: errors as plain text (readable in the browser, and checkable in executed notebooks);
# logs go to a file instead of the notebook server's terminal.
kernel_dir="${JUPYTER_DATA_DIR:-$(jupyter --data-dir)}/kernels/gonb"
if [ -n "${FORCE:-}" ] || [ ! -f "$kernel_dir/kernel.json" ] || ! grep -q "\"$GOBIN_DIR/gonb\"" "$kernel_dir/kernel.json"; then
  log_dir="${XDG_CACHE_HOME:-$HOME/.cache}/gonb-logs"
  mkdir -p "$log_dir"
  say "installing the GoNB kernel spec in $kernel_dir (logs in $log_dir)"
  (cd /tmp && "$GOBIN_DIR/gonb" --install --raw_error --logtostderr=false --log_dir="$log_dir")
  did+=("gonb kernel spec")
fi

# --- 6. Warm the Go build cache for the packages the notebooks import (and download the MNIST
# data module), so the first notebook cells do not wait for it. Quick when already done. ---------
if ! go build ./backend ./diffusion/... ./layers ./kernel 2>/dev/null; then
  echo "setup: warning: the repository's packages do not build right now (go build ./backend ./diffusion/... ./layers ./kernel)" >&2
fi

if [ ${#did[@]} -eq 0 ]; then
  say "nothing to do: everything is installed"
else
  say "done: installed $(IFS=,; echo "${did[*]}" | sed 's/,/, /g')"
fi
say "start Jupyter with: bash scripts/jupyter.sh   (then open notebooks/tutorial.ipynb)"
