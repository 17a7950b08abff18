"""Dead-call records: kept for SIPp's -deadcall_wait, expired oldest first."""

from __future__ import annotations

import itertools

import pytest

from gossipper.engine import dispatcher as dispatcher_module
from gossipper.engine.call import Call, SentMessage
from gossipper.engine.dispatcher import DEAD_CALL_WAIT_S, Dispatcher
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
