"""TLS as SIPp's sslsocket.cpp sets it up, over real loopback connections (asyncio and uvloop)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK
from gossipper.errors import FileProblem, InvalidValue
from gossipper.sip.tls import TlsContexts, TlsSettings, check_version, tls_contexts
from gossipper.sip.transport import (
    INCOMPLETE_AT_CLOSE,
    StreamConnection,
    open_tcp_connection,
    open_tcp_listener,
)
from tests.sip.test_transport import RUNNERS, Inbox, Malformed, Runner, _message
from tests.sip.tls_material import Leaf, TlsMaterial, make_tls_material, needs_openssl

pytestmark = needs_openssl


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


def _contexts(leaf: Leaf, **verify: object) -> TlsContexts:
    return tls_contexts(TlsSettings(str(leaf.cert), str(leaf.key), **verify))  # type: ignore[arg-type]


async def _call(
    server: TlsContexts, client: TlsContexts
) -> tuple[StreamConnection | None, Exception | None, Malformed, Inbox]:
    """One connection from client to server and a message across: the client connection (or
    the error that stopped it), the server's reports and its inbox. Under TLS 1.3 a client
    is done with its handshake before the server has judged the client's certificate, so a
    refused client may connect and only its message never arrive."""
    inbox, malformed = Inbox(), Malformed()
    listener = await open_tcp_listener(LOOPBACK, 0, inbox, malformed, tls=server.server)
    try:
        try:
            connection = await open_tcp_connection(
                listener.local_address, LOOPBACK, Inbox(), Malformed(), tls=client.client
            )
        except (OSError, ssl.SSLError) as error:
            await asyncio.wait_for(malformed.reported.wait(), 5)
            return None, error, malformed, inbox
        connection.send(_message("over-tls"), listener.local_address)
        arrived = asyncio.ensure_future(inbox.wait_for(1))
        refused = asyncio.ensure_future(malformed.reported.wait())
        await asyncio.wait([arrived, refused], timeout=5, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (arrived, refused):
            waiter.cancel()
        connection.close()
        return connection, None, malformed, inbox
    finally:
        listener.close()


@RUNNERS
def test_without_ca_peers_are_not_verified_and_messages_cross(run: Runner, material: TlsMaterial) -> None:
    async def scenario() -> None:
        connection, error, malformed, inbox = await _call(_contexts(material.rogue), _contexts(material.good))
        assert error is None and connection is not None
        assert connection.protocol_name == "TLS" and connection.is_reliable
        assert inbox.items[0][0] == _message("over-tls")
        assert inbox.items[0][2].protocol_name == "TLS"
        assert malformed.reports == []

    run(scenario())


@RUNNERS
def test_with_ca_an_untrusted_server_is_refused_and_the_server_says_why(
    run: Runner, material: TlsMaterial
) -> None:
    async def scenario() -> None:
        client = _contexts(material.good, ca_file=str(material.ca))
        connection, error, malformed, _ = await _call(_contexts(material.rogue), client)
        assert connection is None and isinstance(error, ssl.SSLCertVerificationError)
        assert malformed.reports[0][0].startswith("TLS handshake failed")

    run(scenario())


@RUNNERS
def test_with_ca_the_server_requires_a_trusted_client_certificate(run: Runner, material: TlsMaterial) -> None:
    async def scenario() -> None:
        server = _contexts(material.good, ca_file=str(material.ca))
        trusted, error, _, _ = await _call(server, _contexts(material.good))
        assert error is None and trusted is not None
        _, _, malformed, inbox = await _call(server, _contexts(material.rogue))
        assert "certificate verify failed" in malformed.reports[0][0]
        assert inbox.items == []

    run(scenario())


@RUNNERS
def test_crl_refuses_a_revoked_certificate(run: Runner, material: TlsMaterial) -> None:
    async def scenario() -> None:
        client = _contexts(material.good, ca_file=str(material.ca), crl_file=str(material.crl))
        fine, error, _, _ = await _call(_contexts(material.good), client)
        assert error is None and fine is not None
        revoked, error, _, _ = await _call(_contexts(material.revoked), client)
        assert revoked is None and isinstance(error, ssl.SSLCertVerificationError)
        assert "revoked" in str(error)

    run(scenario())


@RUNNERS
def test_tls_version_pins_one_version(run: Runner, material: TlsMaterial) -> None:
    async def scenario() -> None:
        names = {1.0: "TLSv1", 1.1: "TLSv1.1", 1.2: "TLSv1.2", 1.3: "TLSv1.3"}
        for version, name in names.items():
            pinned = _contexts(material.good, version=version)
            connection, error, _, _ = await _call(pinned, pinned)
            assert error is None and connection is not None
            assert connection.tls_version == name
        negotiated, _, _, _ = await _call(_contexts(material.good), _contexts(material.good))
        assert negotiated is not None and negotiated.tls_version == "TLSv1.3"
        server = _contexts(material.good, version=1.2)
        mismatch, error, malformed, _ = await _call(server, _contexts(material.good, version=1.3))
        assert mismatch is None and error is not None
        assert malformed.reports[0][0].startswith("TLS handshake failed")

    run(scenario())


def test_version_must_be_one_sipp_knows() -> None:
    check_version(0.0)
    for version in (1.0, 1.1, 1.2, 1.3):
        check_version(version)
    with pytest.raises(InvalidValue, match=r"unrecognized TLS version 1\.4") as caught:
        check_version(1.4)
    assert caught.value.setting == "tls_version"


def test_missing_or_wrong_files_name_the_file_and_flag(tmp_path: Path, material: TlsMaterial) -> None:
    with pytest.raises(FileProblem, match=r"cacert\.pem: no such file") as caught:
        tls_contexts(TlsSettings(str(tmp_path / "cacert.pem"), str(material.good.key)))
    assert caught.value.setting == "tls_cert"
    with pytest.raises(FileProblem, match=r"cakey\.pem: no such file") as caught:
        tls_contexts(TlsSettings(str(material.good.cert), str(tmp_path / "cakey.pem")))
    assert caught.value.setting == "tls_key"
    with pytest.raises(FileProblem, match="not a matching PEM certificate and key") as caught:
        tls_contexts(TlsSettings(str(material.good.cert), str(material.rogue.key)))
    assert caught.value.setting == "tls_cert"
    with pytest.raises(FileProblem, match=r"nothing\.pem") as caught:
        _contexts(material.good, ca_file=str(tmp_path / "nothing.pem"))
    assert caught.value.setting == "tls_ca"


@RUNNERS
def test_sni_names_the_host_and_keylog_file_receives_the_keys(
    run: Runner, material: TlsMaterial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    contexts = _contexts(material.good)
    names: list[str | None] = []
    contexts.server.sni_callback = lambda _tls, name, _context: names.append(name)

    async def scenario() -> None:
        listener = await open_tcp_listener(LOOPBACK, 0, Inbox(), Malformed(), tls=contexts.server)
        try:
            for hostname in ("sip.gossipper.test", None):
                connection = await open_tcp_connection(
                    listener.local_address, LOOPBACK, Inbox(), Malformed(), tls=contexts.client,
                    server_hostname=hostname,
                )  # fmt: skip
                connection.close()
        finally:
            listener.close()

    run(scenario())
    assert names == ["sip.gossipper.test", None]
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in keylog.read_text()


@RUNNERS
def test_a_message_cut_off_by_a_closed_tls_connection_is_reported(run: Runner, material: TlsMaterial) -> None:
    """Half a SIP message in whole TLS records, then close_notify: the half is reported."""

    async def scenario() -> None:
        contexts = _contexts(material.good)
        inbox, malformed = Inbox(), Malformed()
        listener = await open_tcp_listener(LOOPBACK, 0, inbox, malformed, tls=contexts.server)
        try:
            half = _message("cut", b"body")[:30]
            client = await open_tcp_connection(
                listener.local_address, LOOPBACK, Inbox(), Malformed(), tls=contexts.client
            )
            client.send(half, listener.local_address)
            await asyncio.sleep(0.05)
            client.close()
            await asyncio.wait_for(malformed.reported.wait(), 5)
            assert malformed.reports == [(INCOMPLETE_AT_CLOSE, half, client.local_address)]
            assert inbox.items == []
        finally:
            listener.close()

    run(scenario())
