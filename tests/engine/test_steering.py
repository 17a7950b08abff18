"""RunSteering: commands from other threads reach the run on its own loop, none is lost
before the run starts, and what the driver reads is a copy taken on the loop."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

from gossipper.engine.steering import RunSteering
from gossipper.stats.counters import RunCounters


class Recorder:
    """A run that notes which commands it was given, and on which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...], int]] = []

    def _note(self, name: str, *args: object) -> None:
        self.calls.append((name, args, threading.get_ident()))

    def soft_stop(self) -> None:
        self._note("soft_stop")

    def hard_stop(self) -> None:
        self._note("hard_stop")

    def quit_now(self, tidy: bool = False) -> None:
        self._note("quit_now")

    def set_rate(self, rate: float) -> None:
        self._note("set_rate", rate)

    def set_limit(self, limit: int) -> None:
        self._note("set_limit", limit)

    def pause_traffic(self) -> None:
        self._note("pause_traffic")


def test_commands_before_and_after_start_run_on_the_loop_thread_in_order() -> None:
    steering = RunSteering()
    run = Recorder()
    steering.command("set_rate", 12.5)  # before the run has started: kept, not lost
    loop = asyncio.new_event_loop()
    try:
        steering.attach(run, loop)
        sender = threading.Thread(
            target=lambda: (steering.command("pause_traffic"), steering.command("quit_now"))
        )
        sender.start()
        sender.join()
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
    assert [(name, args) for name, args, _ in run.calls] == [
        ("set_rate", (12.5,)),
        ("pause_traffic", ()),
        ("quit_now", ()),
    ]
    assert {thread for _, _, thread in run.calls} == {threading.get_ident()}  # the loop's thread
    steering.command("soft_stop")  # after the loop closed: nothing to steer, and no error


def test_an_unknown_command_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown command"):
        RunSteering().command("exec", "rm -rf /")


def test_progress_is_a_copy_and_hands_over_records_and_codes_once() -> None:
    steering = RunSteering(keep_records=True)
    counters = RunCounters(calls_created=3, collect_error_codes=True, unexpected_codes=[486, 503])
    assert steering.records is not None
    assert steering.progress().counters is None  # nothing published yet: no report
    steering.records.write({"call": 1})
    steering.publish(counters)
    counters.calls_created = 4  # the run goes on; the copy the driver reads does not move
    first = steering.progress()
    assert first.counters is not None and first.counters.calls_created == 3
    assert first.records == [{"call": 1}]
    assert first.unexpected_codes == [486, 503]
    assert counters.unexpected_codes == []  # handed over: the driver's CSV writes them
    pickle.dumps(first)  # it crosses to the driver's process
    second = steering.progress()
    assert (second.records, second.unexpected_codes) == ([], [])
    steering.records.write({"call": 2})
    last, final = steering.final(counters)
    assert last.calls_created == 4 and final.records == [{"call": 2}]
