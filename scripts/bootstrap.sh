#!/usr/bin/env bash
# Create .venv from nothing and install gossipper (building the native scale core)
# plus the development tools. Idempotent: re-running only refreshes the install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
# The C cores and the mypyc-compiled SIP engine are built once, in place, where the editable
# install imports them from (GOSSIPPER_COMPILE=0 spares pip's own build the mypyc step).
# The cluster extra (Ray) too, so the -cluster tests run rather than skip.
GOSSIPPER_COMPILE=0 .venv/bin/python -m pip install --quiet -e ".[dev,cluster]"
.venv/bin/python setup.py --quiet build_ext --inplace >/dev/null
