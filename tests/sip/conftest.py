"""SIP parsing tests run against each header indexer this machine has: the native one
(gossipper/sip/_sipcore.c) when it is built, and the pure-Python one always."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gossipper.sip import message

try:
    from gossipper.sip import _sipcore
except ImportError:  # the extension did not build: only the Python indexer exists
    _sipcore = None  # type: ignore[assignment]

INDEXERS = ["python", "native"]


@pytest.fixture(params=INDEXERS)
def sip_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The header indexer under test, put in place for SipMessage.parse."""
    if request.param == "python":
        monkeypatch.setattr(message, "_index_headers", message._python_index_headers)
    else:
        if _sipcore is None:
            pytest.skip("the native SIP core is not built")
        monkeypatch.setattr(message, "_index_headers", message._native_or_python(_sipcore.index_headers))
    yield request.param
