"""What SIPp's run-wide options do once compiled: Call-IDs, [dynamic_id], default behaviors,
rate keys, rate increase period, screen period, socket limits, and the no-effect notices."""

from __future__ import annotations

import re
import resource

import pytest

from gossipper.cli.compile import RLIMIT_RESERVE, max_sockets, run_settings
from gossipper.cli.errors import UsageError
from gossipper.cli.options import parse_args
from gossipper.cli.validate import validate
from gossipper.engine.call_factory import CallFactory
from gossipper.engine.control import apply_command, apply_key
from gossipper.engine.dispatcher import Dispatcher
from gossipper.engine.keywords import resolve
from gossipper.engine.settings import RunSettings
from gossipper.stats.counters import RunCounters
from tests.engine.fake_host import make_context


def _settings(*flags: str) -> RunSettings:
    return run_settings(parse_args(list(flags)))


def _call_ids(*flags: str, count: int = 2) -> list[str]:
    settings = _settings(*flags)
    run = make_context(keywords=settings.keywords).run
    counters = RunCounters()
    dispatcher = Dispatcher(counters, lambda *_: None, lambda _text: None, lambda *_: None, False)
    factory = CallFactory(None, run, settings.keywords, dispatcher, counters, lambda _call: None)  # type: ignore[arg-type]
    return [factory.next_context(None, ("127.0.0.2", 5060)).call_id for _ in range(count)]


def test_cid_str_codes_as_sipp_expands_them() -> None:
    first, second = _call_ids("-cid_str", "%u/%p/%s/%%/%x/%r/%")
    assert first.startswith("1/4242/127.0.0.1/%/%/") and first.endswith("/%")
    assert re.fullmatch(r"\d+", first.split("/")[5])
    assert second.startswith("2/")


@pytest.mark.parametrize(
    ("mode", "pattern"),
    [
        ("uuid", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}@127\.0\.0\.1"),
        ("uuid32", r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}@127\.0\.0\.1"),
        ("random-hex", r"1-[0-9a-f]{32}@127\.0\.0\.1"),
        ("time", r"\d{16}-1-4242@127\.0\.0\.1"),
        ("legacy", r"1-4242@127\.0\.0\.1"),
    ],
)
def test_cid_type_modes(mode: str, pattern: str) -> None:
    first, second = _call_ids("-cid_type", mode)
    assert re.fullmatch(pattern, first)
    assert first != second


def test_unknown_cid_type_is_refused() -> None:
    with pytest.raises(UsageError, match="-cid_type: unknown Call-ID mode 'v7'"):
        parse_args(["-cid_type", "v7"])


def test_dynamic_id_steps_and_wraps_run_wide() -> None:
    keywords = _settings("-dynamicStart", "10", "-dynamicStep", "5", "-dynamicMax", "20").keywords
    first = make_context(keywords=keywords)
    other = make_context(number=2, keywords=keywords)
    other.run = first.run  # calls of one run share the counter
    values = [resolve(call, "dynamic_id") for call in (first, other, first, other)]
    assert values == ["10", "15", "20", "10"]
    assert resolve(make_context(), "dynamic_id") == "10000"  # SIPp's defaults: 10000, +4, up to 12000


def test_nd_turns_every_default_behavior_off() -> None:
    assert _settings("-nd").policy.behaviors == frozenset()
    assert _settings("-default_behaviors", "all", "-nd").policy.behaviors == frozenset()


class _Rate:
    rate = 10.0
    rate_ceiling = 100_000.0
    users: int | None = None

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def set_limit(self, limit: int) -> None:
        self.users = limit


@pytest.mark.parametrize(("key", "expected"), [("+", 12.5), ("-", 7.5), ("*", 35.0), ("/", 0.0)])
def test_rate_scale_sizes_the_rate_keys(key: str, expected: float) -> None:
    run = _Rate()
    scale = _settings("-rate_scale", "2.5").control.rate_scale
    assert apply_key(run, key, scale)  # type: ignore[arg-type]
    assert run.rate == expected


def test_a_key_never_takes_the_rate_past_the_ceiling() -> None:
    run = _Rate()
    run.rate = run.rate_ceiling - 5
    assert apply_key(run, "*", 1.0)  # type: ignore[arg-type]
    assert run.rate == run.rate_ceiling


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("set rate 1e9", "above gossipper's ceiling of 100000 calls per rate period"),
        ("set rate inf", "needs a finite number of at least 0"),
        ("set rate nan", "needs a finite number of at least 0"),
        ("set rate -3", "needs a finite number of at least 0"),
        ("set limit nan", "needs a finite number of at least 0"),
        ("set limit 1e400", "needs a finite number of at least 0"),
        ("set rate fast", "needs a number"),
    ],
)
def test_absurd_control_values_are_refused_and_change_nothing(command: str, error: str) -> None:
    """Issue #14: one datagram must never raise in the loop, stop generation or flood it."""
    run = _Rate()
    assert error in (apply_command(run, command) or "")  # type: ignore[arg-type]
    assert (run.rate, run.users) == (10.0, None)
    assert apply_command(run, "set rate 250") is None  # type: ignore[arg-type]
    assert run.rate == 250.0


def test_in_users_mode_the_keys_change_the_population() -> None:
    run = _Rate()
    run.users = 20
    assert apply_key(run, "*", 0.5)  # type: ignore[arg-type]
    assert (run.users, run.rate) == (25, 10.0)


def test_rate_interval_defaults_to_fd() -> None:
    assert _settings("-fd", "7").generation.increase_period_s == 7.0
    assert _settings("-fd", "7", "-rate_interval", "3").generation.increase_period_s == 3.0
    assert _settings().generation.rate_quit and not _settings("-no_rate_quit").generation.rate_quit


def test_screen_period_sleep_and_dead_call_wait() -> None:
    settings = _settings("-f", "5", "-sleep", "2", "-deadcall_wait", "0")
    assert settings.views.screen_period_s == 5.0
    assert settings.generation.sleep_s == 2.0
    assert settings.dead_call_wait_s == 0.0
    assert _settings("-deadcall_wait", "2s").dead_call_wait_s == 2.0


def test_deadcall_wait_zero_keeps_no_dead_calls() -> None:
    from tests.engine.fake_host import start_call
    from tests.engine.test_call import ESTABLISHED

    _host, call = start_call(ESTABLISHED)
    for wait, kept in ((0.0, 0), (33.0, 1)):
        dispatcher = Dispatcher(
            RunCounters(), lambda *_: None, print, lambda *_: None, True, dead_call_wait_s=wait
        )
        dispatcher.bury(call)
        assert len(dispatcher.dead_calls) == kept


def test_no_effect_options_say_so_once_each() -> None:
    config = parse_args(["-max_recv_loops", "5000", "-max_sched_loops", "2000"])
    reason = "asyncio's event loop reads every ready socket and runs every ready call each turn"
    assert config.notices == [
        f"-max_recv_loops: accepted, no effect in gossipper: {reason}",
        f"-max_sched_loops: accepted, no effect in gossipper: {reason}",
    ]
    with pytest.raises(UsageError, match="-max_sched_loops: expected an integer"):
        parse_args(["-max_sched_loops", "many"])


def test_timer_resol_reaches_the_engine_in_sipp_units() -> None:
    """-timer_resol sets the calls' timer tick and the creation tick (tests/engine has what
    each does with it); 0, SIPp's "every loop", is the finest gossipper has: 1 ms."""
    assert _settings().timer_resolution_ms is None
    for given, kept in (("20", 20), ("1s", 1000), ("0", 1)):
        config = parse_args(["-timer_resol", given])
        assert config.notices == []
        validate(config)
        assert run_settings(config).timer_resolution_ms == kept
    with pytest.raises(UsageError, match=r"^-timer_resol: 1001 ms is above 1000 ms$"):
        validate(parse_args(["-timer_resol", "1001"]))
    with pytest.raises(UsageError, match="-timer_resol"):
        parse_args(["-timer_resol", "soon"])


def test_max_socket_must_fit_the_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    too_many = str(hard + 1)
    with pytest.raises(UsageError, match=r"-max_socket: .* do not fit the open files limit"):
        max_sockets(parse_args(["-t", "un", "-max_socket", too_many]))
    assert max_sockets(parse_args(["-t", "un", "-max_socket", too_many, "-skip_rlimit"])) == hard + 1
    assert max_sockets(parse_args(["-t", "u1", "-max_socket", too_many])) == hard + 1  # one socket only
    shrunk = max_sockets(parse_args(["-t", "tn"]))  # SIPp's 50000 default, fitted (SIPp refuses it)
    assert shrunk == min(50_000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - RLIMIT_RESERVE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_transport_options_reach_the_endpoints() -> None:
    transport = _settings("-bind_local", "-buff_size", "131072", "-bind_to_device", "lo").transport
    assert (transport.bind_local, transport.buffer_bytes, transport.bind_to_device) == (True, 131072, "lo")
    assert _settings().transport.buffer_bytes is None  # gossipper keeps its 4 MiB unless told


def test_watchdog_settings() -> None:
    watchdog = _settings("-watchdog_interval", "100", "-watchdog_major_maxtriggers", "2").watchdog
    assert (watchdog.interval_ms, watchdog.major_maxtriggers, watchdog.minor_threshold_ms) == (100, 2, 500)


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["-sn", "uas", "-oocsn", "uas"], "-oocsf/-oocsn: a server run has no out-of-call messages"),
        (["-sn", "uac", "-rxrn", "uac"], "-rxsf/-rxrn: the main scenario must be a client's"),
        (["-sn", "uac", "-rxrn", "uas", "-oocsn", "uas"], "-oocsf/-oocsn: no effect with -rxsf/-rxrn"),
        (["-sn", "uac", "-rxinf", "users.csv"], "-rxinf: needs -rxsf or -rxrn"),
    ],
)
def test_second_scenarios_refused_where_they_cannot_work(flags: list[str], error: str) -> None:
    from gossipper.cli.dispatch import load_other_scenario, load_run_scenario

    config = parse_args(flags)
    with pytest.raises(UsageError, match=re.escape(error)):
        load_other_scenario(config, load_run_scenario(config))


def test_rxrn_is_a_receiving_scenario_with_its_injection_files() -> None:
    from gossipper.cli.dispatch import load_other_scenario, load_run_scenario

    config = parse_args(["-sn", "uac", "-rxrn", "uas"])
    other = load_other_scenario(config, load_run_scenario(config))
    assert other is not None and other.receiving and other.scenario.name == "uas"
    config = parse_args(["-sn", "uac", "-oocsn", "uas"])
    other = load_other_scenario(config, load_run_scenario(config))
    assert other is not None and not other.receiving


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["-infindex", "users.csv", "0"], "-infindex: 'users.csv' is not a file given with -inf"),
        (["-inf", "users.csv", "-infindex", "users.csv", "x"], "-infindex: invalid field 'x' for users.csv"),
    ],
)
def test_infindex_checks_as_sipp(flags: list[str], error: str) -> None:
    from gossipper.cli.validate import validate

    with pytest.raises(UsageError, match=re.escape(error)):
        validate(parse_args(flags))


def test_rtp_buffsize_and_mb_reach_the_media_sockets() -> None:
    import socket

    from gossipper.media.classic.session import bind_media_socket

    media = _settings("-mb", "100", "-rtp_buffsize", "100000").media
    assert (media.echo_buffer_bytes, media.socket_buffer_bytes) == (100, 100000)
    assert _settings().media.socket_buffer_bytes is None  # the media layer's default unless asked
    with bind_media_socket(("127.0.0.1", 0), 100000) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 100000  # Linux doubles it


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        (["-sn", "uac"], False),  # [media_port] in the SDP only: no socket, no limit (as SIPp)
        (["-sn", "uac", "-rtp_echo"], True),
        (["-sn", "invite_media_scale"], True),
        (["-sn", "invite_media_scale", "-l", "20000"], False),
    ],
)
def test_l_is_held_to_the_media_port_range_only_where_calls_open_media(
    flags: list[str], refused: bool
) -> None:
    from gossipper.cli.dispatch import load_run_scenario

    config = parse_args([*flags, "127.0.0.1", "-l", "40000"] if "-l" not in flags else [*flags, "127.0.0.1"])
    if refused:
        with pytest.raises(UsageError, match="-l: 40000 concurrent calls need 40000 media ports"):
            load_run_scenario(config)
    else:
        assert load_run_scenario(config) is not None
