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
.venv/bin/python -m pip install --quiet -e ".[dev]"
# Build the native core in place so the editable install imports it.
.venv/bin/python setup.py --quiet build_ext --inplace >/dev/null
