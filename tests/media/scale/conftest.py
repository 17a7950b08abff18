"""Every scale-engine test runs against each backend this machine has, side by side: the
`backend` fixture of tests/media/scale/backends.py (registered in tests/conftest.py).
Engines are built through the factory, as the product does."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from gossipper.cli.ports import free_ports_below_ephemeral
from gossipper.media.scale.api import ScaleEngine
from tests.media.scale.backends import Backend


@pytest.fixture
def engine(backend: Backend) -> Iterator[ScaleEngine]:
    """A started engine of the backend under test, closed after the test whatever happens."""
    engine = backend.make()
    engine.start()
    try:
        yield engine
    finally:
        engine.close()


def _base_port(streams: int) -> int:
    """A base B with B to B + 2 * streams - 1 free on loopback, below the ephemeral range,
    from a random even start so that back-to-back tests do not reuse the same ports."""
    span = 2 * streams
    return free_ports_below_ephemeral(span, start=random.randrange(20000, 32000 - span) & ~1)


@pytest.fixture
def base_port() -> Callable[[int], int]:
    return _base_port
