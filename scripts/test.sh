#!/usr/bin/env bash
# The whole test suite: lint, type-check, the layer contract, then pytest against real sockets and real SIPp.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v sipp >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing SIPp (Debian sip-tester) for the interoperability tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null
    else
        echo "warning: sipp not found and not root; SIPp interoperability tests will be skipped" >&2
    fi
fi
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing Chromium (Debian chromium) for the HTML report test"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
            || echo "warning: chromium could not be installed; the HTML report's browser test will skip" >&2
    else
        echo "warning: chromium not found and not root; the HTML report's browser test will be skipped" >&2
    fi
fi
scripts/bootstrap.sh
.venv/bin/ruff check gossipper tests bench setup.py
.venv/bin/mypy
.venv/bin/lint-imports --no-cache --no-logo  # the layer contract in pyproject.toml
# The SIP engine's unit tests once more as plain Python: the compiled modules come from the
# same files, and both must behave the same (GOSSIPPER_SIP_BACKEND=python skips them).
if [ "$#" -eq 0 ]; then
    GOSSIPPER_SIP_BACKEND=python .venv/bin/python -m pytest -q -p no:cacheprovider tests/sip tests/engine tests/scenario tests/stats
fi
.venv/bin/python -m pytest "$@"
