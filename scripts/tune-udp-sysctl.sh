#!/usr/bin/env bash
# Raise the kernel's UDP and file limits for high-scale RTP runs (thousands of streams).
#
# Values come from examples/sysctl/gossipper-high-scale.conf, the file to install for a
# persistent setting; this script applies them now. A value is only ever raised: a host
# already tuned higher keeps its own setting. Running it twice changes nothing the
# second time. It prints every key: what changed, what already sufficed.
#
# Usage: sudo scripts/tune-udp-sysctl.sh [--check] [CONF]
#   --check  print what would change, change nothing (needs no root)
set -euo pipefail

check_only=0
if [[ "${1:-}" == "--check" ]]; then
    check_only=1
    shift
fi
conf="${1:-$(dirname "$0")/../examples/sysctl/gossipper-high-scale.conf}"

if [[ ! -r "$conf" ]]; then
    echo "tune-udp-sysctl: cannot read $conf" >&2
    exit 1
fi
if [[ $check_only -eq 0 && $EUID -ne 0 ]]; then
    echo "tune-udp-sysctl: needs root to change kernel settings (or use --check)" >&2
    exit 1
fi

# Field-wise maximum of two whitespace-separated number lists of the same length
# (udp_mem has three fields; most keys have one).
raise_to() {
    local -a current=($1) wanted=($2) result=()
    local i
    for i in "${!wanted[@]}"; do
        local have="${current[$i]:-0}"
        if ((have > wanted[i])); then
            result+=("$have")
        else
            result+=("${wanted[$i]}")
        fi
    done
    echo "${result[*]}"
}

changed=0
while IFS='=' read -r key value; do
    key="$(echo "$key" | xargs)"
    value="$(echo "$value" | xargs)"
    [[ -z "$key" || "$key" == \#* ]] && continue
    current="$(sysctl -n "$key" 2>/dev/null | xargs)" || {
        echo "$key: not available on this kernel, skipped"
        continue
    }
    target="$(raise_to "$current" "$value")"
    if [[ "$target" == "$current" ]]; then
        echo "$key: $current (already enough)"
        continue
    fi
    if [[ $check_only -eq 1 ]]; then
        echo "$key: $current -> $target (would change)"
    else
        sysctl -q -w "$key=$target"
        echo "$key: $current -> $target"
    fi
    changed=$((changed + 1))
done <"$conf"

if [[ $check_only -eq 1 ]]; then
    echo "tune-udp-sysctl: $changed setting(s) would change"
else
    echo "tune-udp-sysctl: $changed setting(s) changed (not persistent: install $conf into /etc/sysctl.d/ for that)"
fi
echo "tune-udp-sysctl: also raise the open-file limit of the shell running gossipper: ulimit -n 1048576"
