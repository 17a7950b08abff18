import asyncio

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
