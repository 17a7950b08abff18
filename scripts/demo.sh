#!/usr/bin/env bash
# The loopback demo: gossipper's own UAS as the SBC, the UAC running invite_media_scale.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/gossipper demo "$@"
