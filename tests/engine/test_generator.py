import asyncio
import itertools

from gossipper.engine.generator import CallGenerator


def _run(generator_kwargs: dict[str, float], seconds: float, active: list[int] | None = None) -> int:
    loop = asyncio.new_event_loop()
    created: list[int] = []
    live = active if active is not None else [0]

    def create() -> None:
        created.append(1)
        live[0] += 1

    generator = CallGenerator(
        loop,
        rate=generator_kwargs.get("rate", 10),
        period_ms=int(generator_kwargs.get("period_ms", 1000)),
        max_calls=int(generator_kwargs.get("max_calls", 0)),
        max_concurrent=int(generator_kwargs.get("max_concurrent", 0)),
        create_call=create,
        active_calls=lambda: live[0],
    )
    generator.start()
    loop.run_until_complete(asyncio.sleep(seconds))
    generator.stop()
    loop.close()
    return len(created)


def test_rate_is_followed_over_time() -> None:
    created = _run({"rate": 100}, 1.0)
    assert 90 <= created <= 102


def test_rate_period_divides_the_rate() -> None:
    created = _run({"rate": 10, "period_ms": 2000}, 1.0)
    assert 4 <= created <= 6


def test_max_calls_caps_creation() -> None:
    assert _run({"rate": 1000, "max_calls": 7}, 0.3) == 7


def test_concurrency_limit_holds_creation() -> None:
    assert _run({"rate": 1000, "max_concurrent": 5}, 0.3) == 5


def test_calls_are_created_a_few_at_a_time_not_one_wake_up_each() -> None:
    """A wake-up of the loop costs more than a call: at 2000 calls/s a tick comes every 5 ms
    or so with about ten calls, and the rate is still kept."""
    loop = asyncio.new_event_loop()
    ticks: list[float] = []
    generator = CallGenerator(loop, 2000, 1000, 0, 0, lambda: ticks.append(loop.time()), lambda: 0)
    generator.start()
    loop.run_until_complete(asyncio.sleep(1.0))
    generator.stop()
    loop.close()
    assert 1800 <= len(ticks) <= 2010
    # a new tick: a call more than 0.5 ms after the previous one (a tick's calls follow at once)
    wake_ups = 1 + sum(1 for before, after in itertools.pairwise(ticks) if after - before > 0.0005)
    assert 100 <= wake_ups <= 260  # 1 ms ticks would make ~1000


def test_timer_resol_sets_the_tick_both_ways() -> None:
    """-timer_resol as SIPp's scheduler has it: the calls due are created once per resolution,
    so a coarse one makes fewer, larger ticks and a fine one more, at the same rate."""

    def wake_ups(resolution_ms: int) -> tuple[int, int]:
        loop = asyncio.new_event_loop()
        ticks: list[float] = []
        generator = CallGenerator(
            loop, 1000, 1000, 0, 0, lambda: ticks.append(loop.time()), lambda: 0, resolution_ms=resolution_ms
        )
        generator.start()
        loop.run_until_complete(asyncio.sleep(1.0))
        generator.stop()
        loop.close()
        gaps = [after - before for before, after in itertools.pairwise(ticks)]
        return len(ticks), 1 + sum(1 for gap in gaps if gap > 0.0005)

    created, coarse = wake_ups(20)
    assert 900 <= created <= 1010
    assert 20 <= coarse <= 52  # every 20 ms: 50 in a second (5 ms gathering would make ~200)
    created, fine = wake_ups(1)
    assert 900 <= created <= 1010
    assert fine >= 300  # every 1 ms: up to 1000, where 5 ms gathering makes ~200 (a busy machine merges some)
