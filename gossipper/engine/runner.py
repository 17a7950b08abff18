"""One SIPp-style run: transports, call creation, calls, views and the exit code.

Everything runs on one asyncio loop (uvloop when installed); calls are state
machines driven by the loop's timers and the transports' callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
import time
from collections.abc import Callable

from gossipper import __version__
from gossipper.cli.config import Config
from gossipper.cli.exit_codes import (
    EXIT_ALL_CALLS_OK,
    EXIT_CALLS_FAILED,
    EXIT_FATAL,
    EXIT_INTERNAL_COMMAND,
    EXIT_NO_CALLS,
)
from gossipper.engine.call import DEFAULT_INVITE_RETRANS, DEFAULT_OTHER_RETRANS, Call
from gossipper.engine.context import CallContext, RunContext
from gossipper.engine.control import RunControl
from gossipper.engine.dispatcher import Dispatcher
from gossipper.engine.generator import CallGenerator
from gossipper.engine.injection import Injection
from gossipper.engine.media_bridge import MediaBridge
from gossipper.engine.twin import TwinChannel
from gossipper.engine.views import RunViews
from gossipper.errors import BindError, GossipperError, InvalidValue
from gossipper.media.scale.preflight import ensure_open_files, raise_open_files_limit, socket_buffer_warnings
from gossipper.scenario import model
from gossipper.scenario.builtins import load_builtin
from gossipper.scenario.loader import load_scenario_file
from gossipper.sip.message import SipMessage
from gossipper.sip.transport import Address, SipTransport, open_tcp_connection, open_tcp_listener, open_udp
from gossipper.stats.counters import DEFAULT_RTT_BUCKETS_MS, RunCounters

DEFAULT_SIP_PORT = 5060
HOUSEKEEPING_S = 1.0


def load_run_scenario(config: Config) -> model.Scenario:
    """-sf file, else -sn built-in, else SIPp's default: the uac built-in."""
    if config.scenario_file:
        return load_scenario_file(config.scenario_file, frozenset(config.keys))
    return load_builtin(config.scenario_name or "uac")


def resolve_address(setting: str, host: str, port: int) -> Address:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise InvalidValue(f"cannot resolve {host!r}: {error.strerror}", setting=setting) from None
    address = infos[0][4]
    return str(address[0]), int(address[1])


def _local_ip_toward(remote: Address | None) -> str:
    """The address the kernel would use toward the peer (no packet is sent)."""
    if remote is None:
        return "127.0.0.1"
    family = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(remote)
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def _install_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


# Every message makes many short-lived objects; at the default threshold (700) the cyclic
# collector runs every few messages and walks the live calls each time. At 5,000 calls/s
# that cost a fifth of the CPU and its pauses let the SIP socket overflow (bench/sip_rate).
GC_THRESHOLDS = (50_000, 20, 100)


def _tune_garbage_collector() -> None:
    """Fewer, larger young collections; what exists after loading is never scanned again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_scenario(config: Config) -> int:
    scenario = load_run_scenario(config)
    _tune_garbage_collector()
    loop = _install_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(Run(config, scenario, loop).main())
    finally:
        loop.close()


class Run:
    """Implements the CallHost protocol for every call of the run."""

    def __init__(self, config: Config, scenario: model.Scenario, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.scenario = scenario
        self.loop = loop
        self.counters = RunCounters()
        self.counters.ensure_steps(len(scenario.steps))
        for name in scenario.rtd_names:  # known up front so the -trace_stat header lists them
            self.counters.rtd_stat(name, scenario.response_time_repartition or DEFAULT_RTT_BUCKETS_MS)
        self.is_uac = scenario.is_uac
        self.remote: Address | None = None
        self.main_transport: SipTransport | None = None
        self.shared_tcp: SipTransport | None = None
        self.run_context: RunContext | None = None
        self.generator: CallGenerator | None = None
        self.call_number = 0
        self.calls_ended = 0
        self.done = asyncio.Event()
        self.exit_override: int | None = None
        self.soft_stopping = False
        self.injection = Injection(config.inject_files)
        self.dispatcher = Dispatcher(
            self.counters,
            self._new_server_call,
            self.trace_error,
            self.trace_message,
            ping_reply="pingreply" in config.default_behaviors,
        )
        self.views = RunViews(config, scenario, self.counters, self._screen_header_fields)
        self.media = MediaBridge(config, self.counters, loop)
        self.twin: TwinChannel | None = None
        self.control = RunControl(self)
        self._closers: list[Callable[[], None]] = []
        self._timeout_hit = False

    # ------------------------------------------------------------------ setup
    async def _setup(self) -> None:
        config = self.config
        if config.remote_sending_address is not None:
            self.remote = resolve_address("remote_sending_address", *config.remote_sending_address)
        elif config.remote_host is not None:
            self.remote = resolve_address("remote_host", config.remote_host, config.remote_port)
        if self.is_uac and self.remote is None:
            raise InvalidValue(
                f"{self.scenario.name}: a client scenario needs a remote host "
                "(gossipper sipp ... host[:port])"
            )
        local_ip = config.local_ip or _local_ip_toward(self.remote)
        bind_ip = config.local_ip or ("::" if ":" in local_ip else "0.0.0.0")
        reliable = config.transport in ("t1", "tn")
        port = await self._open_main_transport(bind_ip, reliable)
        media_ip = config.media_ip or local_ip
        self.run_context = RunContext(
            config=config,
            local_ip=local_ip,
            local_port=port,
            transport_name="TCP" if reliable else "UDP",
            media_ip=media_ip,
            injection=self.injection,
            media_port_span=self._media_port_span(),
            crypto_attribute=self.media.crypto_attribute,
        )
        if config.transport == "t1" and self.is_uac and self.remote is not None:
            self.shared_tcp = await open_tcp_connection(
                self.remote, bind_ip, self.dispatcher.on_data, self.dispatcher.on_malformed
            )
            self._closers.append(self.shared_tcp.close)
        if self.scenario.uses_3pcc:
            self.twin = await TwinChannel.open(self, config, self.scenario)
            self._closers.append(self.twin.close)
        await self.media.start(media_ip)

    async def _open_main_transport(self, bind_ip: str, reliable: bool) -> int:
        ports = [self.config.local_port] if self.config.local_port is not None else [DEFAULT_SIP_PORT, 0]
        last_error: BindError | None = None
        for port in ports:
            try:
                if reliable:
                    listener = await open_tcp_listener(
                        bind_ip, port, self.dispatcher.on_data, self.dispatcher.on_malformed
                    )
                    self._closers.append(listener.close)
                    return int(listener.local_address[1])
                transport = await open_udp(bind_ip, port, self.dispatcher.on_data)
                self.main_transport = transport
                self._closers.append(transport.close)
                return int(transport.local_address[1])
            except BindError as error:
                last_error = error
        assert last_error is not None
        raise last_error.for_setting("local_port")

    def _media_port_span(self) -> int:
        config = self.config
        base = config.media_base_port
        span = max(1, (config.max_rtp_port - base) // 2 + 1)
        if config.max_concurrent > span:
            raise InvalidValue(
                f"{config.max_concurrent} concurrent calls need {config.max_concurrent} media ports "
                f"but {base}..{config.max_rtp_port} holds {span} (step 2); "
                "lower -l or widen -mp/-max_rtp_port",
                setting="max_concurrent",
            )
        if config.media_scale:  # a socket per live stream: check -l, else take all the descriptors we may
            if config.max_concurrent:
                ensure_open_files(config.max_concurrent, setting="max_concurrent")
            else:
                raise_open_files_limit()
            for warning in socket_buffer_warnings(config.max_concurrent or config.max_calls):
                print(f"gossipper: {warning}", file=sys.stderr)
        return span

    # ------------------------------------------------------------------ main
    async def main(self) -> int:
        try:
            self.media.preload(self.scenario)
            await self._setup()
        except GossipperError:
            self._close_all()
            raise
        self.views.start(self.loop)
        self.control.start(self.loop)
        self._install_signals()
        if self.is_uac:
            self.generator = CallGenerator(
                self.loop,
                self.config.rate,
                self.config.rate_period_ms,
                self.config.max_calls,
                self.config.max_concurrent,
                self._new_client_call,
                lambda: self.counters.calls_active,
            )
            if self.config.users:
                self.generator.max_concurrent = self.config.users
            self.generator.start()
        if self.config.global_timeout_ms:
            self.loop.call_later(self.config.global_timeout_ms / 1000, self._global_timeout)
        housekeeping = self.loop.create_task(self._housekeeping())
        try:
            await self.done.wait()
        finally:
            housekeeping.cancel()
            self._finish_run()
        return self._exit_code()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = time.monotonic()
            self.dispatcher.expire_dead_calls(now)
            self.media.refresh_counters()
            self.views.tick(time.time())
            self._apply_rate_increase()

    def _apply_rate_increase(self) -> None:
        config, generator = self.config, self.generator
        if generator is None or not config.rate_increase:
            return
        elapsed = time.time() - self.counters.started_at
        steps = int(elapsed // max(config.stat_period_s, 0.001))
        target = config.rate + steps * config.rate_increase
        if config.rate_max:
            target = min(target, config.rate_max)
        if target != generator.rate:
            generator.set_rate(target)
        self.counters.current_rate = generator.calls_per_second

    def _install_signals(self) -> None:
        handlers = {
            signal.SIGUSR1: self.soft_stop,
            signal.SIGUSR2: self.views.dump_screen,
            signal.SIGINT: self._interrupt,
            signal.SIGTERM: self.hard_stop,
        }
        for signum, handler in handlers.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.add_signal_handler(signum, handler)

    def _interrupt(self) -> None:
        if self.soft_stopping:
            self.hard_stop()
        else:
            self.soft_stop()

    def _global_timeout(self) -> None:
        self._timeout_hit = True
        if self.config.timeout_error:
            elapsed = self.config.global_timeout_ms / 1000
            self.exit_override = EXIT_FATAL
            print(f"gossipper: -timeout: run timed out after {elapsed:.3f} seconds", file=sys.stderr)
        self.hard_stop()

    # ------------------------------------------------------------------ run control
    def soft_stop(self) -> None:
        """q / USR1: create no new calls, let the ongoing ones finish."""
        self.soft_stopping = True
        if self.generator is not None:
            self.generator.stop()
        self._check_done()

    def hard_stop(self) -> None:
        """Q / SIGTERM / -timeout: end every call now."""
        self.soft_stopping = True
        if self.generator is not None:
            self.generator.stop()
        for call in list(self.dispatcher.calls.values()):
            call.abort_now()
        self.done.set()

    def set_rate(self, rate: float) -> None:
        if self.generator is not None:
            self.generator.set_rate(rate)
            self.counters.current_rate = self.generator.calls_per_second

    @property
    def rate(self) -> float:
        return self.generator.rate if self.generator is not None else 0.0

    def pause_traffic(self) -> None:
        if self.generator is not None:
            self.generator.pause(not self.generator.paused)

    def _check_done(self) -> None:
        if self.done.is_set():
            return
        active = self.counters.calls_active
        generator_done = self.generator is not None and self.generator.exhausted
        uas_done = not self.is_uac and self.config.max_calls and self.calls_ended >= self.config.max_calls
        if (active == 0 and (self.soft_stopping or generator_done)) or uas_done:
            self.done.set()

    # ------------------------------------------------------------------ calls
    def _next_context(self, call_id: str | None, remote: Address) -> CallContext:
        assert self.run_context is not None
        self.call_number += 1
        number = self.call_number
        run = self.run_context
        context = CallContext(
            run=run,
            number=number,
            call_id=call_id or self._format_call_id(number),
            remote=remote,
            user_id=number,
            cseq=self.config.base_cseq - 1,
        )
        context.variables.update(self.config.globals_set)
        context.injection_lines = self.injection.pick_lines(number)
        return context

    def _format_call_id(self, number: int) -> str:
        assert self.run_context is not None
        text = self.config.call_id_format
        replacements = {"%u": str(number), "%p": str(self.run_context.pid), "%s": self.run_context.local_ip}
        for key, value in replacements.items():
            text = text.replace(key, value)
        return text

    def _register(self, call: Call) -> None:
        self.dispatcher.calls[call.call_id] = call
        self.counters.calls_created += 1
        self.counters.calls_active += 1
        self.media.call_started(call)

    def _new_client_call(self) -> None:
        assert self.remote is not None
        context = self._next_context(None, self.remote)
        if self.config.transport == "un":
            self.loop.create_task(self._start_call_with_own_udp(context))
        elif self.config.transport == "tn":
            self.loop.create_task(self._start_call_with_own_tcp(context))
        else:
            transport = self.shared_tcp or self.main_transport
            assert transport is not None
            call = Call(self, context, transport, is_server=False)
            self._register(call)
            call.start()

    async def _start_call_with_own_udp(self, context: CallContext) -> None:
        assert self.run_context is not None
        try:
            transport = await open_udp(self._bind_ip(), 0, self.dispatcher.on_data)
        except BindError as error:
            self._failed_to_start(context, "transport_error", str(error))
            return
        context.local_port = int(transport.local_address[1])
        self._start_owned(context, transport)

    async def _start_call_with_own_tcp(self, context: CallContext) -> None:
        try:
            transport = await open_tcp_connection(
                context.remote, self._bind_ip(), self.dispatcher.on_data, self.dispatcher.on_malformed
            )
        except (OSError, BindError) as error:
            self._failed_to_start(context, "transport_error", f"cannot connect to {context.remote}: {error}")
            return
        context.local_port = int(transport.local_address[1])
        self._start_owned(context, transport)

    def _start_owned(self, context: CallContext, transport: SipTransport) -> None:
        call = Call(self, context, transport, is_server=False, owns_transport=True)
        self._register(call)
        call.start()

    def _failed_to_start(self, context: CallContext, failure_class: str, reason: str) -> None:
        self.counters.calls_created += 1
        self.counters.call_failed(failure_class)
        self.trace_error(f"call {context.call_id}: {reason}")
        self.calls_ended += 1
        self._after_call_end()

    def _bind_ip(self) -> str:
        assert self.run_context is not None
        return self.config.local_ip or ("::" if ":" in self.run_context.local_ip else "0.0.0.0")

    def _new_server_call(self, message: SipMessage, source: Address, transport: SipTransport) -> Call | None:
        if self.is_uac or self.soft_stopping:
            return None
        if self.config.max_calls and self.counters.calls_created >= self.config.max_calls:
            return None
        first = next((s for s in self.scenario.steps if not isinstance(s, model.Label)), None)
        if not isinstance(first, model.Recv) or first.request is None:
            return None
        context = self._next_context(message.call_id, source)
        call = Call(self, context, transport, is_server=True)
        self.counters.calls_incoming += 1
        self._register(call)
        call.start()
        return call

    def call_ended(self, call: Call, failure_class: str | None, reason: str) -> None:
        counters = self.counters
        counters.calls_active -= 1
        self.calls_ended += 1
        if failure_class is None:
            counters.calls_succeeded += 1
            counters.call_length.add(call.duration_ms)
        else:
            counters.call_failed(failure_class)
            self.trace_error(f"call {call.call_id} failed ({failure_class}): {reason}")
        self.dispatcher.bury(call)
        if call.owns_transport:
            call.transport.close()
        self._after_call_end()

    def _after_call_end(self) -> None:
        if self.generator is not None:
            self.generator.notify_call_ended()
        self._check_done()

    # ------------------------------------------------------------------ CallHost services
    def trace_message(self, direction: str, data: bytes, peer: Address, transport: SipTransport) -> None:
        self.views.trace_message(direction, data, peer, transport)
        hep = self.media.classic.hep
        if hep is not None:
            local = transport.local_address
            source, destination = (local, peer) if direction == "sent" else (peer, local)
            hep.sip(data, source, destination, transport.is_reliable, time.time())

    def trace_error(self, text: str) -> None:
        self.views.trace_error(text)

    def log(self, kind: str, text: str) -> None:
        self.views.log(kind, text)

    def media_action(self, call: Call, action: model.Exec) -> tuple[str, str] | None:
        return self.media.action(call, action)

    def media_stop(self, call: Call) -> None:
        self.media.call_ended(call)

    def media_sdp(self, call: Call, sdp: bytes) -> None:
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
            self.exit_override = EXIT_INTERNAL_COMMAND
            self.hard_stop()
        elif command == "stop_gracefully":
            self.exit_override = EXIT_INTERNAL_COMMAND
            self.soft_stop()

    def max_retrans(self, is_invite: bool) -> int:
        if "max_retrans" in self.config.given:
            return self.config.max_retrans
        return DEFAULT_INVITE_RETRANS if is_invite else DEFAULT_OTHER_RETRANS

    def recv_timeout_ms(self) -> int:
        return self.config.recv_timeout_ms

    def default_pause_ms(self, step: model.Pause) -> int:
        if "d" in self.config.given:
            return self.config.pause_ms
        return step.default_ms if step.default_ms is not None else self.config.pause_ms

    def send_twin_command(self, call: Call, data: bytes) -> None:
        if self.twin is None:
            call.abort_now("scenario_error", "sendCmd without a 3PCC twin socket (-3pcc)")
            return
        self.twin.send(data)

    def call_for_twin(self, message: SipMessage) -> Call | None:
        """A 3PCC command: its call, or a new one when the scenario starts with recvCmd."""
        call = self.dispatcher.calls.get(message.call_id)
        if call is not None or self.is_uac or self.soft_stopping:
            return call
        assert self.main_transport is not None or self.shared_tcp is not None
        transport = self.shared_tcp or self.main_transport
        assert transport is not None and self.remote is not None
        context = self._next_context(message.call_id, self.remote)
        call = Call(self, context, transport, is_server=True)
        self._register(call)
        call.start()
        return call

    # ------------------------------------------------------------------ ending
    def _screen_header_fields(self) -> dict[str, object]:
        run = self.run_context
        return {
            "scenario": self.scenario.name,
            "local": f"{run.local_ip}:{run.local_port}" if run else "",
            "remote": f"{self.remote[0]}:{self.remote[1]}" if self.remote else "",
            "transport": self.config.transport,
            "rate": self.rate,
            "rate_period_ms": self.config.rate_period_ms,
            "max_calls": self.config.max_calls,
            "max_concurrent": self.config.max_concurrent,
            "paused": bool(self.generator and self.generator.paused),
        }

    def _finish_run(self) -> None:
        for call in list(self.dispatcher.calls.values()):
            call.abort_now()
        self.media.close()
        self.counters.finished_at = time.time()
        self.control.close()
        self._close_all()
        self.views.finish(__version__)

    def _close_all(self) -> None:
        for close in reversed(self._closers):
            with contextlib.suppress(OSError):
                close()
        self._closers.clear()

    def _exit_code(self) -> int:
        if self.exit_override is not None:
            return self.exit_override
        counters = self.counters
        if counters.calls_failed:
            return EXIT_CALLS_FAILED
        if counters.calls_succeeded:
            return EXIT_ALL_CALLS_OK
        if self._timeout_hit:
            return EXIT_INTERNAL_COMMAND
        return EXIT_NO_CALLS
