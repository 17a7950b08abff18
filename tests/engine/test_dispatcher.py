"""Dead-call records (kept for SIPp's -deadcall_wait, expired oldest first), Call-ID trimming,
and input that is not a call's message: keep-alives, cut-off messages, refused connections."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gossipper.cli.ports import LOOPBACK
from gossipper.engine import dispatcher as dispatcher_module
from gossipper.engine.call import Call, SentMessage
from gossipper.engine.dispatcher import DEAD_CALL_WAIT_S, Dispatcher
from gossipper.sip.transport import ListenerGuard, open_tcp_listener, open_udp
from gossipper.stats.counters import RunCounters
from tests.engine.fake_host import FakeHost, FakeTransport, load, make_context, start_call


def _ended_call(call_id: str) -> Call:
    """A real call (the engine may be compiled, and then takes nothing else) that sent a BYE last."""
    host = FakeHost(load("<scenario><recv response='200'/></scenario>"))
    call = Call(host, make_context(call_id=call_id), FakeTransport(), is_server=False)
    call.last_sent = SentMessage(f"BYE of {call_id}".encode(), 0, "BYE")
    return call


def test_dead_calls_expire_in_burial_order_and_a_reburied_call_moves_to_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = itertools.count(100.0, 1.0)  # each burial one second after the previous one
    monkeypatch.setattr(dispatcher_module.time, "monotonic", lambda: next(clock))
    dispatcher = Dispatcher(RunCounters(), lambda *_: None, lambda _text: None, lambda *_: None, False)
    for call_id in ("a", "b", "c"):
        dispatcher.bury(_ended_call(call_id))  # buried at 100, 101, 102
    dispatcher.bury(_ended_call("a"))  # again at 103: now the youngest record
    assert list(dispatcher.dead_calls) == ["b", "c", "a"]
    assert dispatcher.dead_calls["a"].last_sent == b"BYE of a"

    dispatcher.expire_dead_calls(101 + DEAD_CALL_WAIT_S - 0.5)
    assert list(dispatcher.dead_calls) == ["b", "c", "a"]
    dispatcher.expire_dead_calls(102 + DEAD_CALL_WAIT_S)
    assert list(dispatcher.dead_calls) == ["a"]
    dispatcher.expire_dead_calls(103 + DEAD_CALL_WAIT_S)
    assert dispatcher.dead_calls == {}


@pytest.mark.parametrize(
    ("call_id", "key"),
    [("abc", "abc"), ("///abc2", "abc2"), ("abc2///abc3", "abc3"), ("abc3///abc4///abc5", "abc4///abc5")],
)
def test_a_call_id_names_its_call_by_the_text_after_the_first_triple_slash(call_id: str, key: str) -> None:
    """SIPp's get_trimmed_call_id (socket.cpp, and its unit tests' cases)."""
    dispatcher = Dispatcher(RunCounters(), lambda *_: None, lambda _text: None, lambda *_: None, False)
    assert dispatcher.call_key(call_id) == key
    untrimmed = Dispatcher(RunCounters(), lambda *_: None, lambda _t: None, lambda *_: None, False, False)
    assert untrimmed.call_key(call_id) == call_id


def _response(call_id: str) -> bytes:
    return (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.2>;tag=2\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("callid_slash_ign", [False, True])
def test_a_prefixed_call_id_reaches_its_call_unless_callid_slash_ign(callid_slash_ign: bool) -> None:
    counters = RunCounters()
    errors: list[str] = []
    dispatcher = Dispatcher(
        counters, lambda *_: None, errors.append, lambda *_: None, False, trim_call_id=not callid_slash_ign
    )
    _host, call = start_call("<scenario><recv response='200'/></scenario>")
    dispatcher.calls["1-4242@127.0.0.1"] = call
    dispatcher.on_data(_response("edge-42///1-4242@127.0.0.1"), ("127.0.0.2", 5060), FakeTransport())
    last = call.context.last_message
    if callid_slash_ign:
        assert last is None and counters.out_of_call_messages == 1
    else:
        assert last is not None and last.call_id == "edge-42///1-4242@127.0.0.1"  # it keeps its Call-ID
        assert call.finished and counters.out_of_call_messages == 0


# ------------------------------------------- input that is not a call's message, on real sockets
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
WAIT_S = 5.0


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(int(WAIT_S / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@RUNNERS
def test_crlf_keepalive_datagrams_are_counted_not_malformed_and_not_answered(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """RFC 5626 pings and pongs (and SIPp's four NUL bytes) over UDP are keep-alives: counted,
    never malformed, and not answered (UDP keeps alive with STUN; SIPp ignores them)."""
    counters, errors = RunCounters(), []
    dispatcher = Dispatcher(counters, lambda *_: None, errors.append, lambda *_: None, False)

    async def scenario() -> None:
        udp = await open_udp(LOOPBACK, 0, dispatcher.on_data)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind((LOOPBACK, 0))
            peer.settimeout(0.3)
            for datagram in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00", b"not SIP"):
                peer.sendto(datagram, udp.local_address)
            try:
                await _until(lambda: counters.keepalives_received + counters.malformed_messages == 4)
            finally:
                udp.close()
            with pytest.raises(TimeoutError):
                peer.recv(100)  # nothing answered
        assert (counters.keepalives_received, counters.malformed_messages) == (3, 1)
        assert len(errors) == 1 and "not SIP" in errors[0]

    run(scenario())


@RUNNERS
def test_a_crlf_ping_on_a_connection_gets_a_pong_and_a_message_cut_off_is_counted(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """RFC 5626 4.4.1: CRLF CRLF on a connection is answered with one CRLF; a CRLF pong is
    counted and not answered. A peer that closes with half a message sent: that half is
    counted as a truncated (malformed) message, and logged with its peer and size."""
    counters, errors = RunCounters(), []
    dispatcher = Dispatcher(counters, lambda *_: None, errors.append, lambda *_: None, False)
    half = b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: cut@1\r\nContent-Length: 10\r\n\r\n01234"

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = await open_tcp_listener(
            LOOPBACK,
            0,
            dispatcher.on_data,
            dispatcher.on_malformed,
            guard=ListenerGuard(on_refused=dispatcher.on_refused),
        )
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as peer:
                peer.setblocking(False)
                await loop.sock_connect(peer, listener.local_address)
                await loop.sock_sendall(peer, b"\r\n\r\n")
                assert await asyncio.wait_for(loop.sock_recv(peer, 100), WAIT_S) == b"\r\n"
                await loop.sock_sendall(peer, b"\r\n")  # a pong: not answered
                await loop.sock_sendall(peer, half)
                source = peer.getsockname()
            await _until(lambda: counters.malformed_messages == 1)
        finally:
            listener.close()
        assert counters.keepalives_received == 2
        assert counters.truncated_messages == 1
        [line] = errors
        assert f"from {source[0]}:{source[1]} ({len(half)} bytes)" in line
        assert "connection closed inside a message" in line

    run(scenario())


def test_refused_connections_are_counted_and_each_burst_logged_once() -> None:
    counters, errors = RunCounters(), []
    dispatcher = Dispatcher(counters, lambda *_: None, errors.append, lambda *_: None, False)
    dispatcher.on_refused("TCP 127.0.0.1:5060", 3, "Too many open files (EMFILE)", True)
    dispatcher.on_refused("TCP 127.0.0.1:5060", 2, "Too many open files (EMFILE)", False)
    assert counters.connections_refused == 5
    [line] = errors
    assert line.startswith("TCP 127.0.0.1:5060: cannot accept connections: Too many open files (EMFILE)")
