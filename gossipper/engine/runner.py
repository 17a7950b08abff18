"""One SIPp-style run: it wires transports, call creation, calls, media and views together.

Everything runs on one asyncio loop (uvloop when installed); calls are state
machines driven by the loop's timers and the transports' callbacks, and the run is
the host every call asks for its clock, its timers and its sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from time import monotonic  # a global, not a module attribute: read per message

from gossipper import __version__
from gossipper.engine.call import Call, Timer
from gossipper.engine.call_factory import CallFactory
from gossipper.engine.call_journal import call_record
from gossipper.engine.context import CallContext, RunContext
from gossipper.engine.control import RunControl
from gossipper.engine.dispatcher import Dispatcher
from gossipper.engine.generator import CallGenerator
from gossipper.engine.governor import RateGovernor
from gossipper.engine.injection import Injection
from gossipper.engine.media_bridge import MediaBridge
from gossipper.engine.other_scenario import OtherScenario, OtherScenarioHost
from gossipper.engine.run_end import RunEnd, install_signal_handlers
from gossipper.engine.settings import DefaultBehavior, RunSettings, TransportMode, rate_ceiling
from gossipper.engine.sip_endpoints import SipEndpoints
from gossipper.engine.steering import Progress, RunSteering
from gossipper.engine.timers import TimerWheel
from gossipper.engine.twin import TwinChannel
from gossipper.engine.views import RunViews
from gossipper.engine.watchdog import Watchdog
from gossipper.errors import BindError, GossipperError, InvalidValue, ScenarioFatal
from gossipper.hep.sender import HepSender
from gossipper.media.scale.preflight import ensure_open_files, raise_open_files_limit, socket_buffer_warnings
from gossipper.outcome import RunOutcome
from gossipper.scenario import model
from gossipper.sip.message import SipMessage
from gossipper.sip.transport import Address, SipTransport
from gossipper.stats.counters import DEFAULT_RTT_BUCKETS_MS, RunCounters

HOUSEKEEPING_S = 1.0


def _install_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


# Every message makes many short-lived objects; at the default threshold (700) the cyclic
# collector runs every few messages and walks the live calls each time, and its pauses let
# the SIP socket overflow at high call rates (bench/sip_rate.py measures it).
GC_THRESHOLDS = (50_000, 20, 100)


def _tune_garbage_collector() -> None:
    """Fewer, larger young collections; what exists after loading is never scanned again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_scenario(
    settings: RunSettings,
    scenario: model.Scenario,
    on_ready: Callable[[], None] | None = None,
    other: OtherScenario | None = None,
) -> RunOutcome:
    """Run to the end; on_ready is called once the run's sockets are open (for -bg)."""
    return _run_to_end(settings, scenario, other, on_ready, None)[0]


def run_steered(
    settings: RunSettings, scenario: model.Scenario, other: OtherScenario | None, steering: RunSteering
) -> tuple[RunOutcome, RunCounters, Progress]:
    """A cluster node's share of a run, on this thread, steered from others: no signal
    handlers (the signals are the driver's), counters published to `steering` each second;
    -> its outcome, its final counters, and what the driver has not read yet."""
    outcome, run = _run_to_end(settings, scenario, other, None, steering)
    return outcome, *steering.final(run.counters)


def _run_to_end(
    settings: RunSettings,
    scenario: model.Scenario,
    other: OtherScenario | None,
    on_ready: Callable[[], None] | None,
    steering: RunSteering | None,
) -> tuple[RunOutcome, Run]:
    _tune_garbage_collector()
    loop = _install_loop()
    asyncio.set_event_loop(loop)
    try:
        run = Run(settings, scenario, loop, other, steering)
        outcome = loop.run_until_complete(run.main(on_ready))
        if run.ending.fatal_message is not None:
            raise ScenarioFatal(f"<error> action: {run.ending.fatal_message}")
        return outcome, run
    finally:
        loop.close()


def counters_for(scenario: model.Scenario) -> RunCounters:
    """A run's counters before its first call: its steps, response-time names and counter=
    names are known up front, so the -trace_stat header and the screen list them all."""
    counters = RunCounters()
    counters.ensure_steps(len(scenario.steps))
    for name in scenario.rtd_names:
        counters.rtd_stat(name, scenario.response_time_repartition or DEFAULT_RTT_BUCKETS_MS)
    for step in scenario.steps:  # in order of first mention
        if step.counter is not None:
            counters.generic.setdefault(step.counter, 0)
    return counters


class Run:
    """The host of every call of the run (the CallHost protocol), and what drives it to its end."""

    def __init__(
        self,
        settings: RunSettings,
        scenario: model.Scenario,
        loop: asyncio.AbstractEventLoop,
        other: OtherScenario | None = None,
        steering: RunSteering | None = None,
    ) -> None:
        self.settings = settings
        self.steering = steering
        self.other = other
        self.other_factory: CallFactory | None = None
        self.policy = settings.policy
        self.scenario = scenario
        self.loop = loop
        # the calls' timers; the run's own use the loop
        self.timers = TimerWheel(loop, settings.timer_resolution_ms or 1)
        self.counters = counters_for(scenario)
        self.is_uac = scenario.is_uac
        self.generator: CallGenerator | None = None
        self.factory: CallFactory | None = None
        self.calls_ended = 0
        self._opening = 0  # -t ?n calls still connecting (a TLS or WebSocket handshake takes a while)
        self.done = asyncio.Event()
        self.ending = RunEnd()
        self.injection = Injection(list(settings.injection_files))
        self.dispatcher = Dispatcher(
            self.counters,
            self._new_server_call,
            self.trace_error,
            self.trace_message,
            ping_reply=self.policy.has(DefaultBehavior.PING_REPLY),
            trim_call_id=self.policy.trim_call_id_prefix,
            dead_call_wait_s=settings.dead_call_wait_s,
        )
        self.endpoints = SipEndpoints(
            settings.transport,
            self.dispatcher.on_data,
            self.dispatcher.on_malformed,
            self.dispatcher.on_refused,
            self.dispatcher.on_quiet_closed,
        )
        generation = settings.generation
        self.counters.target_rate = generation.rate
        self.counters.target_users = generation.users or None
        self.views = RunViews(
            settings.views,
            scenario,
            self.counters,
            self._screen_header_fields,
            live_calls=self.dispatcher.calls.keys,
            pause_sessions=self._pause_sessions,
            record_sink=steering.records if steering is not None else None,
        )
        self.hep = (
            HepSender(settings.hep.address, settings.hep.capture_id, settings.hep.password)
            if settings.hep is not None
            else None
        )
        self.media = MediaBridge(
            settings.media,
            self.counters,
            loop,
            qos_sink=self.hep.qos_report if self.hep else None,
            warn=lambda text: self.views.log("warning", text),
        )
        self.twin: TwinChannel | None = None
        self.control = RunControl(self, settings.control)
        self.watchdog = Watchdog(
            loop, settings.watchdog, lambda text: self.views.log("warning", text), self._fail
        )
        self._fatal: str | None = None  # why the run must end as a fatal error (the watchdog's verdict)
        self._healthy = True  # the -health_* gates' verdict, judged as the run finishes
        # read for every new call: an enum's property is an interpreted lookup each time
        self._calls_own_transport = settings.transport.mode.per_call
        self._calls_injected_address = settings.transport.mode is TransportMode.UDP_PER_IP
        self._ended_media: dict[str, dict[str, object]] = {}  # -call_records: an ending call's media
        self._wall_offset = time.time() - time.monotonic()  # call records' times in UTC
        self._reconnects_left = settings.transport.max_reconnect
        self._cpu_at_start = time.process_time()  # for counters.process_cpu_s
        self.endpoints.on_shared_lost = self._shared_connection_lost

    # ------------------------------------------------------------------ setup
    async def _setup(self) -> None:
        endpoints = self.endpoints
        endpoints.resolve_remote()
        if self.is_uac and endpoints.remote is None:
            raise InvalidValue(
                f"{self.scenario.name}: a client scenario needs a remote host "
                "(gossipper sipp ... host[:port])"
            )
        if self._calls_injected_address:
            endpoints.per_ip_addresses = self._injected_addresses()
        await endpoints.open(self.is_uac)
        await endpoints.open_per_ip(self.is_uac)
        media = self.settings.media
        media_ip = media.ip or endpoints.local_ip
        self._check_media_capacity()
        run = RunContext(
            keywords=self.settings.keywords,
            local_ip=endpoints.local_ip,
            local_port=endpoints.local_port,
            transport_name=self.settings.transport.mode.protocol_name,
            media_ip=media_ip,
            media_base_port=media.base_port,
            injection=self.injection,
            media_port_span=media.port_span,
            crypto_attribute=self.media.crypto_attribute,
            choose_media_port=self.media.media_port,
            remote_host=endpoints.remote_host,
            calls_share_port=not (self._calls_own_transport or self._calls_injected_address),
        )
        media_call_started = self.media.call_started if self.media.starts_with_calls else None
        self.factory = CallFactory(
            self, run, self.settings.keywords, self.dispatcher, self.counters, media_call_started
        )
        self.factory.keep_journals = self.views.call_records is not None
        if self.other is not None:
            host = OtherScenarioHost(self, self.other.scenario, self._other_call_ended)
            other_run = dataclasses.replace(
                run,
                injection=Injection(list(self.other.injection_files))
                if self.other.receiving
                else run.injection,
                token_resolvers={},
            )
            self.other_factory = CallFactory(
                host, other_run, self.settings.keywords, self.dispatcher, host.counters,
                media_call_started, numbered_by=self.factory,
            )  # fmt: skip
        if self.scenario.uses_3pcc:
            self.twin = await TwinChannel.open(self, self.settings.transport.twin, self.scenario)
            endpoints.add_closer(self.twin.close)
        self.media.start(media_ip)

    def _injected_addresses(self) -> list[str]:
        """-t ui: each line's -ip_field of the first -inf file, in order, once each."""
        source, field = self.injection.files[0], self.settings.transport.ip_field
        addresses = [source.field(line, field) for line in range(len(source.records))]
        if not all(addresses):
            raise InvalidValue(f"{source.path}: a line has no field {field} (-ip_field) to send from")
        return list(dict.fromkeys(addresses))

    def _check_media_capacity(self) -> None:
        """A socket per live scale stream: check -l's worth, else take all the descriptors we may."""
        if not self.settings.media.scale:
            return
        generation = self.settings.generation
        if generation.max_concurrent:
            ensure_open_files(generation.max_concurrent, setting="max_concurrent")
        else:
            raise_open_files_limit()
        for warning in socket_buffer_warnings(generation.max_concurrent or generation.max_calls):
            print(f"gossipper: {warning}", file=sys.stderr)

    # ------------------------------------------------------------------ main
    async def main(self, on_ready: Callable[[], None] | None = None) -> RunOutcome:
        try:
            self.media.preload(self.scenario)
            if self.settings.generation.sleep_s:  # -sleep: SIPp waits before opening any socket
                if on_ready is not None:
                    on_ready()  # and -bg has returned by then: the sleep is the background run's
                    on_ready = None
                await asyncio.sleep(self.settings.generation.sleep_s)
            self.views.open_live()
            await self._setup()
        except GossipperError:
            self.views.live.close()
            self.endpoints.close()
            if self.hep is not None:
                self.hep.close()
            raise
        self.views.start()
        try:
            self.control.start(self.loop)
        except GossipperError:
            self._finish_run()
            raise
        if on_ready is not None:
            on_ready()
        self.watchdog.start()
        self.loop.set_exception_handler(self._internal_error)
        if self.steering is None:
            install_signal_handlers(self.loop, self.soft_stop, self.quit_now, self.views.dump_screen)
        else:
            self.steering.attach(self, self.loop)
        generation = self.settings.generation
        if self.is_uac:
            self.generator = CallGenerator(
                self.loop,
                generation.rate,
                generation.rate_period_ms,
                generation.max_calls,
                generation.users or generation.max_concurrent,
                self._new_client_call,
                lambda: self.counters.calls_active,
                on_window=self._governed,
                resolution_ms=self.settings.timer_resolution_ms,
            )
            self.counters.offered_cps = self.generator.calls_per_second
            self.generator.start()
        if generation.global_timeout_ms:
            self.loop.call_later(generation.global_timeout_ms / 1000, self._global_timeout)
        housekeeping = self.loop.create_task(self._housekeeping())
        try:
            await self.done.wait()
            # One more turn of the loop: a hard stop's CANCELs and BYEs that met a full socket
            # buffer are still queued in their transports, and closing them must not drop those.
            await asyncio.sleep(0)
        finally:
            housekeeping.cancel()
            self.watchdog.stop()
            self._finish_run()
        if self._fatal is not None:
            raise GossipperError(self._fatal)
        return self.ending.outcome(self.counters).gated(self._healthy)

    def _shared_connection_lost(self) -> None:
        """The peer closed -t t1's connection: SIPp's reset_connection. The calls on it fail
        (-reconnect_close true), then it is reconnected after -reconnect_sleep while
        -max_reconnect allows (SIPp's default 0: the run fails)."""
        if self.done.is_set():
            return
        transport = self.settings.transport
        if transport.reconnect_close:
            shared = self.endpoints.shared_tcp
            for call in [call for call in self.dispatcher.calls.values() if call.transport is shared]:
                call.terminate("transport_error", "the peer closed the TCP connection")
        if self._reconnects_left == 0:
            self._fail("the peer closed the TCP connection and -max_reconnect allows no reconnection")
            return
        if self._reconnects_left > 0:
            self._reconnects_left -= 1
        self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        await asyncio.sleep(self.settings.transport.reconnect_sleep_ms / 1000)
        if self.done.is_set():
            return
        try:
            await self.endpoints.reconnect_shared()
        except OSError as error:
            self.views.log("warning", f"could not reconnect the TCP connection: {error}")
            self._shared_connection_lost()  # SIPp closes the calls and counts it as another reset
            return
        self.views.log("warning", "the TCP connection to the peer was reconnected")

    def _internal_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """A bug of ours raised out of a callback: the run stops as on a fatal error, with the
        traceback in the error log (-trace_err) and the summary written, instead of going on with a
        callback (call creation, a timer) silently gone and never ending."""
        error = context.get("exception")
        text = context.get("message", "unhandled exception")
        if isinstance(error, BaseException):
            details = "".join(traceback.format_exception(error)).rstrip()
            self.trace_error(f"internal error: {text}\n{details}")
            text = f"{type(error).__name__}: {error}"
        if self._fatal is None:
            self._fail(f"internal error, the run stopped: {text} (-trace_err writes the traceback)")

    def _fail(self, reason: str) -> None:
        """A fatal error found while running (SIPp's ERROR): exit at once, as on SIGTERM."""
        self._fatal = reason
        self.quit_now()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = time.monotonic()
            self.dispatcher.expire_dead_calls(now)
            self.media.refresh_counters()
            self.views.tick(time.time())
            self._apply_rate_increase()
            if self.steering is not None:
                self.steering.publish(self.counters)

    def _apply_rate_increase(self) -> None:
        generation, generator = self.settings.generation, self.generator
        if generator is None or not generation.rate_increase:
            return
        elapsed = time.time() - self.counters.started_at
        steps = int(elapsed // max(generation.increase_period_s, 0.001))
        target = generation.rate + steps * generation.rate_increase
        capped = bool(generation.rate_max) and target > generation.rate_max
        if capped:
            target = generation.rate_max
        target = min(target, self.rate_ceiling)
        if target != generator.rate:
            generator.set_rate(target)
        self.counters.target_rate = generator.rate
        self.counters.offered_cps = generator.calls_per_second
        if capped and generation.rate_quit and not self.ending.soft_stopping:
            self.soft_stop()  # SIPp's ratetask: an increase past -rate_max quits, as 'q' does

    def _global_timeout(self) -> None:
        """Current SIPp aborts the live calls at -timeout (3.6.1 let them finish); with
        -timeout_error it exits at once as a fatal error, tidying nothing."""
        self.ending.time_limit_hit = True
        if self.settings.generation.timeout_is_error:
            self.ending.timed_out_as_error()
            self.quit_now()
        else:
            self.hard_stop()

    # ------------------------------------------------------------------ run control
    def soft_stop(self) -> None:
        """q / USR1: create no new calls, let the ongoing ones finish."""
        self.ending.soft_stopping = True
        if self.generator is not None:
            self.generator.stop()
        self._check_done()

    def hard_stop(self) -> None:
        """Q / -timeout: SIPp's abort_all_tasks, every live call aborted now (failed;
        a client call's dialog tidied with CANCEL, or ACK and BYE), then the run ends."""
        self.ending.soft_stopping = True
        if self.generator is not None:
            self.generator.stop()
        for call in list(self.dispatcher.calls.values()):
            call.abort_now()
        self.done.set()

    def quit_now(self, tidy: bool = False) -> None:
        """stop_now, SIGINT, SIGTERM, -timeout_error: SIPp exits at once (sipp_exit), its live
        calls not counted: they stay current calls in the final counters. With tidy (stop_now,
        a hard stop the scenario asked for) client dialogs are still ended with CANCEL or BYE."""
        self.ending.soft_stopping = True
        if self.generator is not None:
            self.generator.stop()
        for call in list(self.dispatcher.calls.values()):
            if call.in_final_timewait:
                call.end_timewait()  # done but for waiting: a success, not a current call
            else:
                call.abandon(tidy)
        self.done.set()

    def set_rate(self, rate: float) -> None:
        if self.generator is not None:
            self.generator.set_rate(rate)
            self.counters.target_rate = self.generator.rate
            self.counters.offered_cps = self.generator.calls_per_second

    def _governed(self, governor: RateGovernor) -> None:
        """After each governor window: what the screen and the summary say about the cap."""
        counters = self.counters
        counters.rate_cap_cps = governor.cap_cps
        counters.throttled_s = governor.throttled_s
        if governor.reason is not None and governor.reason != counters.throttle_reason:
            if counters.throttle_reason is None:
                self.views.log("warning", f"call creation slowed: {governor.reason}")
            counters.throttle_reason = governor.reason

    @property
    def rate_ceiling(self) -> float:
        return rate_ceiling(self.settings.generation.rate_period_ms)

    def set_limit(self, limit: int) -> None:
        if self.generator is not None:
            self.generator.max_concurrent = limit
            self.generator.wake()

    @property
    def rate(self) -> float:
        return self.generator.rate if self.generator is not None else 0.0

    @property
    def users(self) -> int | None:
        if not self.settings.generation.users or self.generator is None:
            return None
        return self.generator.max_concurrent

    def pause_traffic(self) -> None:
        if self.generator is not None:
            self.generator.pause(not self.generator.paused)

    def _check_done(self) -> None:
        if self.done.is_set():
            return
        active = self.counters.calls_active
        generator_done = self.generator is not None and self.generator.exhausted
        max_calls = self.settings.generation.max_calls
        uas_done = not self.is_uac and max_calls and self.calls_ended >= max_calls
        idle = active == 0 and self._opening == 0
        if (idle and (self.ending.soft_stopping or generator_done)) or uas_done:
            self.done.set()

    # ------------------------------------------------------------------ calls
    def _new_client_call(self) -> None:
        assert self.factory is not None and self.endpoints.remote is not None
        context = self.factory.next_context(None, self.endpoints.remote)
        if self._calls_own_transport:
            self._opening += 1
            self.loop.create_task(self._start_with_own_transport(context))
        elif self._calls_injected_address:
            self.loop.create_task(self._start_from_injected_address(context))
        else:
            self.factory.launch(context, self.endpoints.shared, is_server=False)

    async def _start_with_own_transport(self, context: CallContext) -> None:
        assert self.factory is not None
        opened: SipTransport | str  # the call's transport, or why it has none
        try:
            opened = await self.endpoints.open_for_call(context.remote)
        except BindError as error:
            opened = str(error)
        except OSError as error:
            opened = f"cannot connect to {context.remote}: {error}"
        self._opening -= 1
        if isinstance(opened, str):
            self._failed_to_start(context, opened)
            return
        transport = opened
        context.local_port = int(transport.local_address[1])
        self.factory.launch(context, transport, is_server=False, owns_transport=True)

    async def _start_from_injected_address(self, context: CallContext) -> None:
        """-t ui: the call sends from the socket of its -inf line's address."""
        assert self.factory is not None
        source = self.injection.files[0]
        ip = source.field(context.injection_lines[source.path], self.settings.transport.ip_field)
        try:
            transport = await self.endpoints.socket_for_ip(ip)
        except GossipperError as error:
            self._failed_to_start(context, str(error))
            return
        context.local_port = int(transport.local_address[1])
        self.factory.launch(context, transport, is_server=False)

    def _failed_to_start(self, context: CallContext, reason: str) -> None:
        self.counters.calls_created += 1
        self.counters.call_failed("transport_error")
        self.trace_error(f"call {context.call_id}: {reason}")
        self.calls_ended += 1
        self._after_call_end()

    def _new_server_call(self, message: SipMessage, source: Address, transport: SipTransport) -> Call | None:
        if self.is_uac and self.other_factory is not None:
            return self._new_other_call(message, source, transport)
        if self.is_uac or self.ending.soft_stopping or self.factory is None:
            return None
        if not self.scenario.starts_with(message.method):
            return None  # out of call: answered as SIPp's ooc_default, never against -m
        max_calls = self.settings.generation.max_calls
        if max_calls and self.counters.calls_created >= max_calls:
            return None
        context = self.factory.next_context(self.dispatcher.call_key(message.call_id), source)
        self.counters.calls_incoming += 1
        return self.factory.launch(context, transport, is_server=True)

    def _new_other_call(self, message: SipMessage, source: Address, transport: SipTransport) -> Call | None:
        """A client run's incoming request outside its calls: a call of the receiving
        scenario (mixed mode), or of the out-of-call scenario (SIPp warns of each)."""
        assert self.other is not None and self.other_factory is not None
        if not self.other.receiving:
            self.views.log("warning", f"out-of-call {message.method} message: using the out-of-call scenario")
        factory = self.other_factory
        context = factory.next_context(self.dispatcher.call_key(message.call_id), source)
        return factory.launch(context, transport, is_server=True)

    def _other_call_ended(self, call: Call) -> None:
        self.dispatcher.bury(call)

    def call_for_twin(self, message: SipMessage) -> Call | None:
        """A 3PCC command: its call, or a new one when the scenario starts with recvCmd."""
        call_id = self.dispatcher.call_key(message.call_id)
        call = self.dispatcher.calls.get(call_id)
        if call is not None or self.is_uac or self.ending.soft_stopping:
            return call
        assert self.factory is not None and self.endpoints.remote is not None
        context = self.factory.next_context(call_id, self.endpoints.remote)
        return self.factory.launch(context, self.endpoints.shared, is_server=True)

    def call_ended(self, call: Call, failure_class: str | None, reason: str, *, counted: bool = True) -> None:
        counters = self.counters
        counters.calls_active -= 1
        self.calls_ended += 1
        if not counted:
            pass  # SIPp's answered PING: the call ends neither failed nor successful
        elif failure_class is None:
            counters.calls_succeeded += 1
            counters.call_length.add(call.duration_ms)
        else:
            counters.call_failed(failure_class)
            self.trace_error(f"call {call.call_id} failed ({failure_class}): {reason}")
        if self.views.traces_messages:  # a call's history is kept only for -trace_calldebug
            self.views.call_ended(call.call_id, failure_class)
        if call.journal is not None:
            self._record(call, failure_class, reason, counted)
        self.dispatcher.bury(call)
        if call.owns_transport:
            self.endpoints.release_for_call(call.transport)
        self._after_call_end()

    def _record(self, call: Call, failure_class: str | None, reason: str, counted: bool) -> None:
        records = self.views.call_records
        assert records is not None and call.journal is not None
        record = call_record(
            number=call.context.number,
            call_id=call.call_id,
            side="uas" if call.is_server else "uac",
            journal=call.journal,
            ended_at=self.now(),
            wall_offset=self._wall_offset,
            failure_class=failure_class,
            reason=reason,
            counted=counted,
            media=self._ended_media.pop(call.call_id, None),
        )
        records.write(record)

    def _after_call_end(self) -> None:
        if self.generator is not None:
            self.generator.notify_call_ended()
        self._check_done()

    # ------------------------------------------------------------------ CallHost services
    def now(self) -> float:
        return monotonic()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        if delay_s <= 0:
            return self.loop.call_soon(callback)
        return self.timers.call_later(delay_s, callback)

    def transmit(self, data: bytes, transport: SipTransport, destination: Address) -> None:
        transport.send(data, destination)
        self.trace_message("sent", data, destination, transport)

    def trace_message(self, direction: str, data: bytes, peer: Address, transport: SipTransport) -> None:
        if self.views.traces_messages:
            self.views.trace_message(direction, data, peer, transport)
        if self.hep is not None:
            local = transport.local_address
            source, destination = (local, peer) if direction == "sent" else (peer, local)
            self.hep.sip(data, source, destination, transport.is_reliable, time.time())

    def trace_error(self, text: str) -> None:
        self.views.trace_error(text)

    def log(self, kind: str, text: str) -> None:
        self.views.log(kind, text)

    def media_action(self, call: Call, action: model.Exec) -> tuple[str, str] | None:
        return self.media.action(call, action)

    def media_stop(self, call: Call) -> None:
        if not self.media.in_use:
            return
        received = self.media.call_ended(call)
        if received is not None and call.journal is not None:
            self._ended_media[call.call_id] = received  # read by its call record, right after

    def media_sdp(self, call: Call, sdp: bytes) -> None:
        if self.media.in_use:
            self.media.sdp_received(call, sdp)

    def run_command(self, command: str) -> None:
        self.loop.create_task(self._run_shell(command))

    async def _run_shell(self, command: str) -> None:
        try:
            process = await asyncio.create_subprocess_shell(command)
            await process.wait()
        except OSError as error:
            self.trace_error(f"exec command failed: {command!r}: {error}")

    def internal_command(self, command: str) -> None:
        if command == "stop_now":
            self.ending.stopped_by_command()
            self.quit_now(tidy=True)
        elif command == "stop_gracefully":
            self.ending.stopped_by_command()
            self.soft_stop()

    def fatal_error(self, text: str) -> None:
        """An <error> action: SIPp's ERROR() exits at once; run_scenario raises it once the
        run has written its summary."""
        self.trace_error(f"<error> action: {text}")
        self.ending.fatal(text)
        self.quit_now()

    def send_twin_command(self, call: Call, data: bytes) -> None:
        if self.twin is None:
            call.abort_now("scenario_error", "sendCmd without a connection to a 3PCC twin")
            return
        self.twin.send(data, call)

    def abort_twin_call(self, call: Call) -> None:
        if self.twin is not None:
            self.twin.abort_call(call)

    def _pause_sessions(self) -> dict[int, int]:
        """-trace_counts' Pause_Sessions: how many live calls are in each pause now."""
        steps = self.scenario.steps
        return Counter(
            call.index
            for call in self.dispatcher.calls.values()
            if call.index < len(steps) and isinstance(steps[call.index], model.Pause)
        )

    # ------------------------------------------------------------------ ending
    def _screen_header_fields(self) -> dict[str, object]:
        endpoints, generation = self.endpoints, self.settings.generation
        remote = endpoints.remote
        return {
            "scenario": self.scenario.name,
            "local": f"{endpoints.local_ip}:{endpoints.local_port}" if self.factory else "",
            "remote": f"{remote[0]}:{remote[1]}" if remote else "",
            "transport": self.settings.transport.mode.value,
            "rate": self.rate,
            "rate_period_ms": generation.rate_period_ms,
            "max_calls": generation.max_calls,
            "max_concurrent": generation.max_concurrent,
            "paused": bool(self.generator and self.generator.paused),
        }

    def _finish_run(self) -> None:
        for call in list(self.dispatcher.calls.values()):
            call.abort_now()
        self.timers.close()
        self.media.close()
        self.counters.finished_at = time.time()
        self.counters.process_cpu_s = time.process_time() - self._cpu_at_start
        self.control.close()
        self.endpoints.close()
        if self.hep is not None:
            self.hep.close()
        self._healthy = self.views.finish(__version__).passed
