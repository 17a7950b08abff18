"""SIP parsing tests run against each parser this machine has: the native one
(gossipper/sip/_sipcore.c: whole messages and header sections) when it is built, and the
pure-Python one always."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gossipper.sip import message, transport

try:
    from gossipper.sip import _sipcore
except ImportError:  # the extension did not build: only the Python indexer exists
    _sipcore = None  # type: ignore[assignment]

INDEXERS = ["python", "native"]


@pytest.fixture(params=INDEXERS)
def sip_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The parser under test, put in place for SipMessage.parse."""
    if request.param == "python":
        monkeypatch.setattr(message, "_index_headers", message._python_index_headers)
        monkeypatch.setattr(message, "_parse_whole", None)
        monkeypatch.setattr(message, "_peek_message", None)
    else:
        if _sipcore is None:
            pytest.skip("the native SIP core is not built")
        monkeypatch.setattr(message, "_index_headers", message._native_or_python(_sipcore.index_headers))
        monkeypatch.setattr(message, "_parse_whole", _sipcore.parse_message)
        monkeypatch.setattr(message, "_peek_message", _sipcore.peek_message)
    yield request.param


UDP_BACKENDS = ["python", "native"]


@pytest.fixture(params=UDP_BACKENDS)
def udp_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The UDP transport under test: asyncio's datagram endpoint, or the native batched one."""
    if request.param == "python":
        monkeypatch.setattr(transport, "_native_io", None)
    elif transport._native_io is None:
        pytest.skip("the native SIP core is not built")
    yield request.param
