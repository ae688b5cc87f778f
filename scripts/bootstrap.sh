#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine (run as root): the system
# packages, then a virtualenv with the pinned Python dependencies. Idempotent: a second
# run with the same requirements does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# wrk drives the benchmarks; chromium runs the browser tests.
APT_PACKAGES=(wrk chromium)

# The embedding model's ONNX export, made here once so that no web process ever imports
# torch (a no-op when it exists, so it runs even when the virtualenv is up to date).
export_embedder() {
  DJANGO_DEBUG=1 .venv/bin/python manage.py export_embedder >/dev/null
}

stamp=.venv/.bootstrapped
want=$(cat requirements.txt scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  export_embedder
  exit 0
fi

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
command -v python3 >/dev/null || missing+=(python3)
# A python3 that is not Debian's (pyenv, for example) may bring venv and headers itself.
if ! python3 -c 'import venv, ensurepip, sysconfig, os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; then
  missing+=(python3-venv python3-dev)
fi
command -v cc >/dev/null || missing+=(build-essential)
for pkg in "${APT_PACKAGES[@]}"; do have "$pkg" || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[bootstrap] apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
[ -x .venv/bin/python ] || python3 -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The CPU build of torch first, so nothing later pulls in a multi-GB CUDA build.
.venv/bin/pip install -q torch==2.13.0 2>&1 | { grep -v "^WARNING: Location" || true; }
.venv/bin/pip install -q -r requirements.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
.venv/bin/python -c 'import django, torch, sentence_transformers' 
echo "$want" > "$stamp"
export_embedder
echo "[bootstrap] virtualenv ready"
