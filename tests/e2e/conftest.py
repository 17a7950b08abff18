"""Fixtures of the end-to-end tests: launchers for gossipper and SIPp, each process they start
stopped at the test's teardown (see tests/e2e/processes.py). The scale engine's `backend`
fixture comes from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.processes import GossipperUac, GossipperUas, Processes, SippUac, SippUas


@pytest.fixture
def processes() -> Iterator[Processes]:
    """What this test started; stopped (terminate, then kill) at teardown, last first."""
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def gossipper_uas(processes: Processes) -> GossipperUas:
    return GossipperUas(processes)


@pytest.fixture
def gossipper_uac(processes: Processes) -> GossipperUac:
    return GossipperUac(processes)


@pytest.fixture
def sipp_uas(processes: Processes) -> SippUas:
    return SippUas(processes)


@pytest.fixture
def sipp_uac(processes: Processes) -> SippUac:
    return SippUac(processes)
