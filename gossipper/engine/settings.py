"""What a SIP run is told: frozen settings, each default and each "was it given" already decided.

`cli/` builds these from the flags once; the engine never sees a flag. Each part goes
only to the piece that obeys it: a call reads its `CallPolicy` through its host, the
generator its `GenerationSettings`, the views their `ViewSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from gossipper.media.settings import MediaSettings
from gossipper.sip.tls import TlsSettings
from gossipper.stats.health import HealthGates
from gossipper.stats.live import LiveOutputSettings

Address = tuple[str, int]


class DefaultBehavior(Enum):
    """SIPp's -default_behaviors: what a call does on its own, beyond its scenario."""

    BYE = "bye"  # end an aborted dialog with CANCEL/ACK/BYE; answer an unexpected BYE
    ABORT_UNEXPECTED = "abortunexp"  # an unexpected message fails the call
    PING_REPLY = "pingreply"  # answer OPTIONS, in and out of calls
    CANCEL = "cancel"
    CHECK_ACK_CSEQ = "cseq"  # an ACK whose CSeq is not the received INVITE's fails the call


class TransportMode(Enum):
    """-t: which protocol, and one shared socket or one per call.

    SIPp's own two-letter codes, plus gossipper's WebSocket ones: the transport's own
    name then 1 or n, since SIPp's scheme has no free letter for two WebSocket kinds.
    """

    UDP_SHARED = "u1"
    UDP_PER_CALL = "un"
    TCP_SHARED = "t1"
    TCP_PER_CALL = "tn"
    TLS_SHARED = "l1"
    TLS_PER_CALL = "ln"
    SCTP_SHARED = "s1"
    SCTP_PER_CALL = "sn"
    WS_SHARED = "ws1"
    WS_PER_CALL = "wsn"
    WSS_SHARED = "wss1"
    WSS_PER_CALL = "wssn"
    UDP_PER_IP = "ui"  # a UDP socket per local address, each call's from its -inf line (-ip_field)

    @property
    def reliable(self) -> bool:
        return not self.value.startswith("u")  # u1, un and ui are UDP

    @property
    def per_call(self) -> bool:
        """A socket (or connection) of each call's own."""
        return self.value.endswith("n")

    @property
    def protocol_name(self) -> str:
        """As [transport] and a Via print it."""
        return _PROTOCOL_NAMES[self.value[:-1]]

    @property
    def secure(self) -> bool:
        return self.value[:-1] in ("l", "wss")


_PROTOCOL_NAMES = {"u": "UDP", "t": "TCP", "l": "TLS", "s": "SCTP", "ws": "WS", "wss": "WSS"}


# SIPp's retransmission limits when -max_retrans is not given.
DEFAULT_INVITE_RETRANS = 5
DEFAULT_OTHER_RETRANS = 7


@dataclass(frozen=True)
class CallPolicy:
    """The rules every call of the run follows beyond its scenario's steps."""

    behaviors: frozenset[DefaultBehavior] = frozenset(
        {
            DefaultBehavior.BYE,
            DefaultBehavior.ABORT_UNEXPECTED,
            DefaultBehavior.PING_REPLY,
            DefaultBehavior.CHECK_ACK_CSEQ,
        }
    )
    auto_answer: bool = False  # -aa: INFO, NOTIFY, OPTIONS, UPDATE get 200 OK
    invite_max_retrans: int = DEFAULT_INVITE_RETRANS
    other_max_retrans: int = DEFAULT_OTHER_RETRANS
    recv_timeout_ms: int = 0  # a recv without its own timeout waits this long (0: forever)
    pause_override_ms: int | None = None  # -d given: the length of every pause without its own
    pause_fallback_ms: int = 0  # a pause with neither its own length nor a scenario default
    auth_username: str = ""
    auth_password: str = "password"  # SIPp's -ap default
    auth_uri: str | None = None  # -auth_uri: the digest URI is sip:THIS, not sip:remote_ip:remote_port
    # SIPp's '///': a Call-ID "anything///[call_id]" names the call [call_id] (-callid_slash_ign: off)
    trim_call_id_prefix: bool = True
    retransmissions: bool = True  # -nr: UDP sends are not retransmitted nor peer retransmissions detected
    t2_ms: int = 4000  # -T2: the cap of a non-INVITE's retransmission interval
    loose_retrans_check: bool = False  # -rtcheck loose: a retransmission is the same To, From, Call-ID, CSeq
    lost_percent: float = 0.0  # -lost: messages lost on purpose where the step has no lost=
    ignore_during_pause: bool = False  # -pause_msg_ign: a message reaching a call in a pause is dropped

    def max_retrans(self, is_invite: bool) -> int:
        return self.invite_max_retrans if is_invite else self.other_max_retrans

    def default_pause_ms(self, scenario_default_ms: int | None) -> int:
        if self.pause_override_ms is not None:
            return self.pause_override_ms
        return scenario_default_ms if scenario_default_ms is not None else self.pause_fallback_ms

    def has(self, behavior: DefaultBehavior) -> bool:
        return behavior in self.behaviors


@dataclass(frozen=True)
class KeywordSettings:
    """Run-wide values that keywords and new calls read."""

    service: str = "service"  # [service]
    users: int = 0  # [users]
    keys: Mapping[str, str] = field(default_factory=dict)  # -key: [name] is this text
    variables: Mapping[str, str] = field(default_factory=dict)  # -set: every call starts with them
    base_cseq: int = 1
    call_id_format: str = "%u-%p@%s"  # %u call number, %p pid, %s local ip, %r random, %% a '%'
    call_id_type: str = "default"  # -cid_type: default (the format), uuid, uuid-compact, random, timestamp
    dynamic_start: int = 10_000  # [dynamic_id]: first value, the step, and the top before it wraps
    dynamic_step: int = 4
    dynamic_max: int = 12_000
    # A cluster node's calls: numbered from after this, their Call-IDs led by the prefix, so no
    # two nodes make the same call number or Call-ID (gossipper/cluster/split.py).
    call_number_base: int = 0
    call_id_prefix: str = ""


@dataclass(frozen=True)
class TwinSettings:
    """The 3PCC twin sockets: -3pcc, or extended 3PCC's -master/-slave with -slave_cfg."""

    address: Address | None = None  # -3pcc host:port
    name: str | None = None  # -master NAME or -slave NAME: this instance in -slave_cfg
    master: bool = False
    peers_file: str | None = None  # -slave_cfg: name;host:port lines


@dataclass(frozen=True)
class TransportSettings:
    mode: TransportMode = TransportMode.UDP_SHARED
    local_ip: str | None = None  # None: the address the kernel would use toward the peer
    local_port: int | None = None  # None: 5060, else any free port
    remote: Address | None = None  # the positional host[:port], unresolved
    send_to: Address | None = None  # -rsa: where packets go instead, unresolved
    twin: TwinSettings = field(default_factory=TwinSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)  # l1/ln and wss1/wssn
    bind_local: bool = False  # -bind_local: listen on the local IP only (with -i it always does)
    bind_to_device: str | None = None  # -bind_to_device: SO_BINDTODEVICE on the SIP sockets
    buffer_bytes: int | None = None  # -buff_size: SO_SNDBUF/SO_RCVBUF of the SIP sockets (None: 4 MiB)
    max_sockets: int = 50_000  # -max_socket: -t un/tn calls share the open sockets beyond this
    # (and a listener takes no more connections than that, itself included)
    max_message_bytes: int = 65_536  # -buff_size: a longer message on a connection is dropped
    idle_timeout_s: float = 0.0  # -conn_idle_timeout: a listener closes a connection this quiet
    # -t t1 client: when the peer closes the connection, the calls on it fail (-reconnect_close),
    # then it is reconnected after -reconnect_sleep, -max_reconnect times (-1: always; 0: the run fails).
    max_reconnect: int = 0
    ip_field: int = 0  # -t ui: the field of the first -inf file that holds each line's local address
    reconnect_close: bool = True
    reconnect_sleep_ms: int = 1000


# The most calls a second one run may be asked for: ten times SIPp's best on one core, so
# never a real test's limit, while 1e9 (a typo, or a script's bug) is refused up front.
MAX_CALLS_PER_SECOND = 100_000.0
# -timer_resol above a second would hold every retransmission past T1 and every pause by up
# to that long: a typo rather than a tuning.
MAX_TIMER_RESOLUTION_MS = 1000


def rate_ceiling(rate_period_ms: float) -> float:
    """MAX_CALLS_PER_SECOND in calls per rate period, the unit of -r and 'cset rate'."""
    return MAX_CALLS_PER_SECOND * rate_period_ms / 1000.0


@dataclass(frozen=True)
class GenerationSettings:
    """How the UAC creates calls."""

    rate: float = 10.0  # calls per rate period
    rate_period_ms: int = 1000
    rate_increase: float = 0.0  # added to the rate every increase period
    rate_max: float = 0.0  # 0: no cap
    increase_period_s: float = 60.0
    max_calls: int = 0  # 0: unlimited (a UAS stops after this many ended calls)
    max_concurrent: int = 0  # 0: no cap
    users: int = 0  # -users: a fixed population of concurrent calls instead (0: not given)
    global_timeout_ms: int = 0  # 0: none
    timeout_is_error: bool = False
    rate_quit: bool = True  # the run ends once -rate_increase would pass -rate_max (-no_rate_quit: off)
    sleep_s: float = 0.0  # -sleep: wait this long before opening any socket


@dataclass(frozen=True)
class TraceSettings:
    """One of SIPp's trace files: whether it is written, its name when given, and whether an
    existing file is truncated at start (-*_overwrite, default true) or appended to."""

    enabled: bool = False
    path: str | None = None  # None: <file_base>_<pid>_<kind>.log
    overwrite: bool = True


@dataclass(frozen=True)
class ViewSettings:
    """Which views of the counters exist and where their files go (None: SIPp's default name)."""

    # SIPp names its files after the -sf file (its basename, less ".xml") or the -sn name,
    # never after the scenario's name= attribute, so a file never lands outside the cwd.
    file_base: str = "uac"
    messages: TraceSettings = TraceSettings()
    shortmessages: TraceSettings = TraceSettings()
    errors: TraceSettings = TraceSettings()
    logs: TraceSettings = TraceSettings()
    calldebug: TraceSettings = TraceSettings()
    screen: TraceSettings = TraceSettings()  # enabled: -trace_screen, a dump at exit
    ringbuffer_files: int = 0
    ringbuffer_size: int = 0  # bytes; 0: no rotation
    max_log_size: int = 0  # bytes; 0: no limit
    stat_csv: bool = False
    stat_file: str | None = None
    stat_period_s: float = 60.0
    stat_delimiter: str = ";"
    periodic_rtd: bool = False
    rfc3339: bool = False
    counts_csv: bool = False  # -trace_counts
    error_codes_csv: bool = False  # -trace_error_codes
    rtt_csv: bool = False  # -trace_rtt
    rtt_freq: int = 200
    media_columns: bool = False  # the run has media: gossipper's RTP columns follow SIPp's in the CSV
    summary_json: str | None = None  # "-": stdout
    call_records: str | None = None  # -call_records: one JSON line per ended call
    health: HealthGates = field(
        default_factory=HealthGates
    )  # -health_*: judged at the end, into the summary and exit status
    live: LiveOutputSettings = field(default_factory=LiveOutputSettings)  # see stats.live
    quiet: bool = False  # background mode: no screen, no start lines
    headless: bool = False  # a cluster node's share: the driver prints the summary, not the node
    screen_period_s: float = 1.0  # -f: screen refresh period (0: never refreshed)


@dataclass(frozen=True)
class ControlSettings:
    ip: str | None = None  # -ci: listen there and take commands from anyone; None: all, own host only
    port: int | None = None  # None: the first free of SIPp's range
    keyboard: bool = True
    socket: bool = True  # the UDP control socket (a cluster node has none: the driver's steers it)
    rate_scale: float = 1.0  # -rate_scale: what + and - add to the rate (* and / ten times it)


@dataclass(frozen=True)
class WatchdogSettings:
    """SIPp's watchdog: a timer every interval; firing late is a minor or a major trip, and
    too many trips (counted afresh after a quiet reset period) end the run as failed."""

    interval_ms: int = 400  # 0: no watchdog
    reset_ms: int = 600_000
    minor_threshold_ms: int = 500
    major_threshold_ms: int = 3000
    minor_maxtriggers: int = 120
    major_maxtriggers: int = 10


@dataclass(frozen=True)
class HepSettings:
    address: Address
    capture_id: int = 2001
    password: str | None = None


@dataclass(frozen=True)
class RunSettings:
    policy: CallPolicy = field(default_factory=CallPolicy)
    keywords: KeywordSettings = field(default_factory=KeywordSettings)
    transport: TransportSettings = field(default_factory=TransportSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    views: ViewSettings = field(default_factory=ViewSettings)
    control: ControlSettings = field(default_factory=ControlSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    hep: HepSettings | None = None
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings)
    dead_call_wait_s: float = 33.0  # -deadcall_wait: how long an ended call still answers (0: not at all)
    # -timer_resol: the calls' timers and call creation tick this often (None: timers by the
    # millisecond, creation gathering about 40 calls per tick up to 5 ms)
    timer_resolution_ms: int | None = None
    injection_files: tuple[str, ...] = ()
