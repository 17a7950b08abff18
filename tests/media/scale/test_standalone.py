"""The standalone sender's checks before it sends (preflight) and its common start grid, in-process.

Its runs as subprocesses are end-to-end tests: tests/e2e/test_scale_standalone.py.
"""

from __future__ import annotations

import re
import resource
import time
from pathlib import Path

import pytest

from gossipper.cli.errors import describe
from gossipper.cli.ports import LOOPBACK
from gossipper.errors import InvalidValue
from gossipper.media.scale.preflight import (
    RESERVED_FDS,
    check_port_range,
    ensure_open_files,
    socket_buffer_warnings,
)


def test_preflight_port_range_says_how_many_fit() -> None:
    check_port_range(100, 65336)  # 65336 + 2 x 99 = 65534: fits
    with pytest.raises(InvalidValue) as caught:
        check_port_range(101, 65336)
    assert re.search(r"-rtp_streams: 101 streams from -mp 65336 .* 100 streams fit", describe(caught.value))
    with pytest.raises(InvalidValue) as caught:
        check_port_range(7, 7000, max_port=7010)
    assert re.search(r"-mp 7000 .* above 7010; 6 streams fit", describe(caught.value))


def test_preflight_raises_the_soft_fd_limit_itself() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 2 * RESERVED_FDS + 100:
        pytest.skip(f"hard fd limit {hard} leaves no room to test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (RESERVED_FDS + 100, hard))
    try:
        assert ensure_open_files(hard - RESERVED_FDS) == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
        with pytest.raises(InvalidValue, match=rf"about {hard + 1 + RESERVED_FDS} open files .*`ulimit -n"):
            ensure_open_files(hard + 1)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_preflight_warns_about_small_kernel_buffers_only_at_scale(tmp_path: Path) -> None:
    core = tmp_path / "net" / "core"
    core.mkdir(parents=True)
    (core / "wmem_max").write_text("212992\n")
    (core / "rmem_max").write_text("33554432\n")
    assert socket_buffer_warnings(1000, sysctl_root=tmp_path) == []
    warnings = socket_buffer_warnings(1001, sysctl_root=tmp_path)
    assert len(warnings) == 1
    assert "net.core.wmem_max is 212992" in warnings[0]
    assert "sysctl -w net.core.wmem_max=33554432" in warnings[0]
    assert "scripts/tune-udp-sysctl.sh" in warnings[0]


def test_phases_stay_on_one_grid_however_long_registration_takes() -> None:
    """Stream i's first packet is i/N of an interval into the period, measured from one start."""
    from gossipper.media.codecs import lookup_codec
    from gossipper.media.scale.api import NS_PER_MS, StreamSpec
    from gossipper.media.scale.standalone import _on_common_grid

    interval_ms, streams = 20, 8
    grid_start_ns = time.monotonic_ns() - 55 * NS_PER_MS  # registration already took 2.75 intervals
    for index in range(streams):
        phase_ms = index * interval_ms / streams
        spec = StreamSpec(
            LOOPBACK,
            6000 + 2 * index,
            LOOPBACK,
            9,
            lookup_codec("PCMU/8000"),
            interval_ms,
            start_offset_ms=phase_ms,
        )
        before_ns = time.monotonic_ns()
        placed = _on_common_grid(spec, grid_start_ns)
        after_ns = time.monotonic_ns()
        assert 0 <= placed.start_offset_ms <= interval_ms + (after_ns - before_ns) / NS_PER_MS
        for now_ns in (before_ns, after_ns):  # the phase, seen from the grid's start, is kept
            since_grid_ms = (now_ns - grid_start_ns) / NS_PER_MS + placed.start_offset_ms
            drift = (since_grid_ms - phase_ms) % interval_ms
            assert min(drift, interval_ms - drift) <= (after_ns - before_ns) / NS_PER_MS + 0.01
