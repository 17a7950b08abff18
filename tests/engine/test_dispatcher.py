"""Dead-call records: kept for SIPp's -deadcall_wait, expired oldest first."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any, cast

import pytest

from gossipper.engine import dispatcher as dispatcher_module
from gossipper.engine.dispatcher import DEAD_CALL_WAIT_S, Dispatcher
from gossipper.stats.counters import RunCounters


def _ended_call(call_id: str) -> Any:
    sent = SimpleNamespace(data=f"BYE of {call_id}".encode())
    return SimpleNamespace(
        call_id=call_id, last_sent=sent, context=SimpleNamespace(remote=("127.0.0.1", 5060)), transport=None
    )


def test_dead_calls_expire_in_burial_order_and_a_reburied_call_moves_to_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = itertools.count(100.0, 1.0)  # each burial one second after the previous one
    monkeypatch.setattr(dispatcher_module.time, "monotonic", lambda: next(clock))
    dispatcher = Dispatcher(RunCounters(), lambda *_: None, lambda _text: None, lambda *_: None, False)
    for call_id in ("a", "b", "c"):
        dispatcher.bury(cast(Any, _ended_call(call_id)))  # buried at 100, 101, 102
    dispatcher.bury(cast(Any, _ended_call("a")))  # again at 103: now the youngest record
    assert list(dispatcher.dead_calls) == ["b", "c", "a"]
    assert dispatcher.dead_calls["a"].last_sent == b"BYE of a"

    dispatcher.expire_dead_calls(101 + DEAD_CALL_WAIT_S - 0.5)
    assert list(dispatcher.dead_calls) == ["b", "c", "a"]
    dispatcher.expire_dead_calls(102 + DEAD_CALL_WAIT_S)
    assert list(dispatcher.dead_calls) == ["a"]
    dispatcher.expire_dead_calls(103 + DEAD_CALL_WAIT_S)
    assert dispatcher.dead_calls == {}
