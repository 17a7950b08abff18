"""SIPp-style single-dash flags: one table, one parser.

Flags are order-free and the positional remote host may stand anywhere, as with
SIPp. Every bad flag or value raises UsageError naming the flag, so the caller
can print one line and exit 255 before anything is sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gossipper.cli.config import Config
from gossipper.cli.errors import UsageError

# SIPp's codes, then gossipper's WebSocket ones (ws/wss, one socket or one per call)
TRANSPORTS = ("u1", "un", "ui", "t1", "tn", "l1", "ln", "s1", "sn", "ws1", "wsn", "wss1", "wssn")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_duration_ms(flag: str, text: str, default_unit: str) -> int:
    """SIPp durations: a number with an optional unit (ms, s, m, h)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{flag}: expected a duration such as 500, 500ms, 10s or 2m, got {text!r}")
    value, unit = match.groups()
    return round(float(value) * _UNIT_MS[unit or default_unit])


def parse_int(flag: str, text: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise UsageError(f"{flag}: expected an integer, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise UsageError(f"{flag}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{flag}: must be at most {maximum}, got {value}")
    return value


def parse_float(flag: str, text: str, minimum: float | None = None, maximum: float | None = None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{flag}: expected a finite number, got {text!r}")
    if minimum is not None and value < minimum:
        raise UsageError(f"{flag}: must be at least {minimum:g}, got {text}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{flag}: must be at most {maximum:g}, got {text}")
    return value


def parse_port(flag: str, text: str) -> int:
    return parse_int(flag, text, 1, 65535)


LOOPBACK_HOST = "127.0.0.1"


def metrics_address(flag: str, text: str) -> tuple[str, int]:
    """-metrics_addr: HOST:PORT, [v6]:PORT, or a bare PORT on loopback, so that live metrics
    are never offered to the network unless a host is named."""
    text = text.strip()
    if text.isdigit():
        return LOOPBACK_HOST, parse_port(flag, text)
    return split_host_port(flag, text)


def cluster_address(flag: str, text: str) -> str:
    """A Ray address as Ray takes it (auto, ray://host:port, host:port), or local:N for a
    cluster of N nodes started on this host for the run (to try a cluster out)."""
    if text.startswith("local:"):
        parse_int(flag, text.removeprefix("local:"), 1, 64)
        return text
    if text == "auto" or text.startswith("ray://") or (":" in text and not text.startswith(":")):
        return text
    raise UsageError(f"{flag}: {text!r} is not a Ray address (auto, ray://HEAD:10001, HOST:PORT or local:N)")


def address_list(flag: str, text: str) -> tuple[str, ...]:
    """IP addresses separated by commas, each checked as an address (not a name: a node's
    media address goes into its SDP as it is)."""
    addresses = tuple(part.strip() for part in text.split(","))
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise UsageError(f"{flag}: {address!r} is not an IP address") from None
    return addresses


def split_host_port(flag: str, text: str, default_port: int | None = None) -> tuple[str, int]:
    """host:port, [v6]:port, or a bare host when a default port exists."""
    text = text.strip()
    if not text:
        raise UsageError(f"{flag}: expected host:port, got an empty value")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"{flag}: unclosed '[' in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UsageError(f"{flag}: expected [host]:port, got {text!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""  # bare host, or a bare IPv6 address
    if not host:
        raise UsageError(f"{flag}: missing host in {text!r}")
    if not port_text:
        if default_port is None:
            raise UsageError(f"{flag}: missing port in {text!r} (expected host:port)")
        return host, default_port
    return host, parse_port(flag, port_text)


@dataclass(frozen=True)
class Option:
    """One flag: how many words it takes and how it lands in Config."""

    name: str
    nargs: int
    apply: Callable[[Config, str, list[str]], None]
    help: str


def _set(attr: str, convert: Callable[[str, str], Any] | None = None) -> Callable[..., None]:
    def apply(config: Config, flag: str, values: list[str]) -> None:
        setattr(config, attr, convert(flag, values[0]) if convert else values[0])

    return apply


def _flag(attr: str) -> Callable[..., None]:
    def apply(config: Config, flag: str, values: list[str]) -> None:
        setattr(config, attr, True)

    return apply


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, str], int]:
    return lambda flag, text: parse_int(flag, text, minimum, maximum)


def _float(minimum: float | None = None, maximum: float | None = None) -> Callable[[str, str], float]:
    return lambda flag, text: parse_float(flag, text, minimum, maximum)


def _gate(name: str, parse: Callable[[str, str], float]) -> Callable[..., None]:
    """A -health_* gate: its limit under the gate's name (HealthGates' field)."""

    def apply(config: Config, flag: str, values: list[str]) -> None:
        config.health_gates[name] = parse(flag, values[0])

    return apply


def _duration(unit: str) -> Callable[[str, str], int]:
    return lambda flag, text: parse_duration_ms(flag, text, unit)


def _seconds(flag: str, text: str) -> float:
    return parse_duration_ms(flag, text, "s") / 1000.0


def _addr(default_port: int | None = None) -> Callable[[str, str], tuple[str, int]]:
    return lambda flag, text: split_host_port(flag, text, default_port)


def _choice(*names: str) -> Callable[[str, str], str]:
    def convert(flag: str, text: str) -> str:
        if text not in names:
            raise UsageError(f"{flag}: unknown value {text!r} (expected {' or '.join(names)})")
        return text

    return convert


def _transport(flag: str, text: str) -> str:
    if text not in TRANSPORTS:
        raise UsageError(f"{flag}: unknown transport {text!r} (expected one of {', '.join(TRANSPORTS)})")
    return text


def _behaviors(flag: str, text: str) -> frozenset[str]:
    known = {"all", "none", "bye", "abortunexp", "pingreply", "cancel", "cseq"}
    chosen: set[str] = set()
    for word in text.split(","):
        word = word.strip().lower()
        negate = word.startswith("-")
        name = word.lstrip("-+")  # SIPp takes +name as name
        if name not in known:
            raise UsageError(f"{flag}: unknown behavior {name!r} (expected {', '.join(sorted(known))})")
        names = (
            {"bye", "abortunexp", "pingreply", "cancel", "cseq"}
            if name == "all"
            else (set() if name == "none" else {name})
        )
        chosen = chosen - names if negate else chosen | names
    return frozenset(chosen)


def _append(attr: str) -> Callable[..., None]:
    def apply(config: Config, flag: str, values: list[str]) -> None:
        getattr(config, attr).append(values[0])

    return apply


def _pair(attr: str) -> Callable[..., None]:
    def apply(config: Config, flag: str, values: list[str]) -> None:
        getattr(config, attr)[values[0]] = values[1]

    return apply


def parse_bool(flag: str, text: str) -> bool:
    """SIPp's get_bool: true or false in any case, else an integer (0 is false)."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return parse_int(flag, text) != 0
    except UsageError:
        raise UsageError(f"{flag}: expected true or false, got {text!r}") from None


def _overwrite(kind: str) -> Callable[..., None]:
    def apply(config: Config, flag: str, values: list[str]) -> None:
        config.overwrite[kind] = parse_bool(flag, values[0])

    return apply


def _delimiter(flag: str, text: str) -> str:
    if not text:
        raise UsageError(f"{flag}: the delimiter must not be empty")
    return text


# gossipper's CI health gates: a missed one makes the exit status 2 (stats.health).
HEALTH_OPTIONS: tuple[Option, ...] = (
    Option(
        "health_min_success_ratio",
        1,
        _gate("min_success_ratio", _float(0, 1)),
        "(gossipper) Exit 2 if successful / ended calls is below this (0..1)",
    ),
    Option(
        "health_max_failed_calls",
        1,
        _gate("max_failed_calls", _int(0)),
        "(gossipper) Exit 2 past N failed calls",
    ),
    Option("health_max_timeouts", 1, _gate("max_timeouts", _int(0)), "(gossipper) Exit 2 past N timeouts"),
    Option(
        "health_max_rtp_loss_pct",
        1,
        _gate("max_rtp_loss_pct", _float(0, 100)),
        "(gossipper) Exit 2 if received RTP lost more than this percent",
    ),
    Option(
        "health_max_jitter_ms",
        1,
        _gate("max_jitter_ms", _float(0)),
        "(gossipper) Exit 2 if the received streams' mean jitter passes this (ms)",
    ),
    Option(
        "health_min_mos",
        1,
        _gate("min_mos", _float(1, 5)),
        "(gossipper) Exit 2 if the mean estimated MOS is below",
    ),
    Option(
        "health_min_rtp_packets",
        1,
        _gate("min_rtp_packets", _int(0)),
        "(gossipper) Exit 2 if fewer RTP packets were received",
    ),
    Option(
        "health_max_late_pct",
        1,
        _gate("max_late_pct", _float(0, 100)),
        "(gossipper) Exit 2 if more than this percent of RTP left over 1 ms late",
    ),
)

# SIPp's tracing, logging and statistics files beyond the basic -trace_* flags.
OUTPUT_OPTIONS: tuple[Option, ...] = (
    Option("stat_delimiter", 1, _set("stat_delimiter", _delimiter), "Delimiter of the statistics files"),
    Option("periodic_rtd", 0, _flag("periodic_rtd"), "Reset response-time repartitions at each -fd row"),
    Option("rfc3339", 0, _flag("rfc3339"), "Write timestamps in RFC 3339 format"),
    Option("trace_shortmsg", 0, _flag("trace_shortmsg"), "Log SIP messages one line each"),
    Option("shortmessage_file", 1, _set("shortmessage_file"), "File for -trace_shortmsg"),
    Option("trace_counts", 0, _flag("trace_counts"), "Write per-message counts to a CSV"),
    Option("trace_error_codes", 0, _flag("trace_error_codes"), "Write unexpected status codes to a CSV"),
    Option("trace_calldebug", 0, _flag("trace_calldebug"), "Log the history of each aborted call"),
    Option("calldebug_file", 1, _set("calldebug_file"), "File for -trace_calldebug"),
    Option("rtt_freq", 1, _set("rtt_freq", _int(1)), "-trace_rtt: write response times every N samples"),
    *(
        Option(f"{kind}_overwrite", 1, _overwrite(kind), f"Truncate the {kind} file at start (default true)")
        for kind in ("message", "shortmessage", "error", "calldebug", "screen", "log")
    ),
    Option("ringbuffer_files", 1, _set("ringbuffer_files", _int(0)), "Rotated trace files to keep"),
    Option("ringbuffer_size", 1, _set("ringbuffer_size", _int(0)), "Rotate trace files past N bytes"),
    Option("max_log_size", 1, _set("max_log_size", _int(0)), "Stop a trace file past this many bytes"),
)

_OPTIONS: list[Option] = [
    # scenario
    Option("sn", 1, _set("scenario_name"), "Use a built-in scenario (uac, uas, invite_media_scale, ...)"),
    Option("sf", 1, _set("scenario_file"), "Load a scenario from an XML file"),
    Option("sd", 1, _set("dump_scenario"), "Print a built-in scenario's XML and exit"),
    Option("inf", 1, _append("inject_files"), "CSV injection file ([fieldN] keywords)"),
    # addressing
    Option("rsa", 1, _set("remote_sending_address", _addr(5060)), "Send SIP to host:port"),
    Option("i", 1, _set("local_ip"), "Local IP address for SIP and media"),
    Option("p", 1, _set("local_port", parse_port), "Local SIP port"),
    Option("mi", 1, _set("media_ip"), "Local media IP address"),
    Option("mp", 1, _set("media_port", parse_port), "Local media base port"),
    Option("min_rtp_port", 1, _set("min_rtp_port", parse_port), "Lowest local RTP port"),
    Option("max_rtp_port", 1, _set("max_rtp_port", parse_port), "Highest local RTP port"),
    Option("t", 1, _set("transport", _transport), "Transport: u1 un t1 tn l1 ln s1 sn ws1 wsn wss1 wssn"),
    Option("tls_cert", 1, _set("tls_cert"), "TLS certificate file (default cacert.pem)"),
    Option("tls_key", 1, _set("tls_key"), "TLS private key file (default cakey.pem)"),
    Option("tls_ca", 1, _set("tls_ca"), "TLS CA file: verify peers (default: no verification)"),
    Option("tls_crl", 1, _set("tls_crl"), "TLS certificate revocation list: verify peers with it"),
    Option("tls_version", 1, _set("tls_version", _float(0)), "TLS version 1.0-1.3 (default: negotiate)"),
    Option("s", 1, _set("service"), "Request-URI user part ([service])"),
    Option("3pcc", 1, _set("twin_3pcc", _addr()), "3PCC twin socket host:port"),
    Option("master", 1, _set("twin_master"), "Extended 3PCC: this instance is the master NAME"),
    Option("slave", 1, _set("twin_slave"), "Extended 3PCC: this instance is the slave NAME"),
    Option("slave_cfg", 1, _set("twin_peers_file"), "Extended 3PCC: file of name;host:port lines"),
    # call generation
    Option("m", 1, _set("max_calls", _int(0)), "Stop after this many calls"),
    Option("l", 1, _set("max_concurrent", _int(0)), "Maximum concurrent calls"),
    Option("r", 1, _set("rate", _float(0)), "Call rate (calls per rate period)"),
    Option("rp", 1, _set("rate_period_ms", _duration("ms")), "Rate period (default 1000 ms)"),
    Option("rate_increase", 1, _set("rate_increase", _float(0)), "Add this to the rate every -fd"),
    Option("rate_max", 1, _set("rate_max", _float(0)), "Stop increasing the rate here"),
    Option("users", 1, _set("users", _int(1)), "Fixed user population (instead of a rate)"),
    Option("d", 1, _set("pause_ms", _duration("ms")), "Default pause length"),
    Option("base_cseq", 1, _set("base_cseq", _int(0)), "First CSeq of each call"),
    Option("cid_str", 1, _set("call_id_format"), "Call-ID format (%u call number, %p pid, %s ip)"),
    Option("callid_slash_ign", 0, _flag("callid_slash_ign"), "Do not treat '///' in a Call-ID as a prefix"),
    # timers
    Option("timeout", 1, _set("global_timeout_ms", _duration("s")), "Quit after this long"),
    Option("timeout_error", 0, _flag("timeout_error"), "Exit with an error when -timeout hits"),
    Option("recv_timeout", 1, _set("recv_timeout_ms", _duration("ms")), "Default recv timeout"),
    Option("max_retrans", 1, _set("max_retrans", _int(0)), "Maximum UDP retransmissions"),
    Option("default_behaviors", 1, _set("default_behaviors", _behaviors), "bye,abortunexp,..."),
    Option("aa", 0, _flag("auto_answer"), "Answer INFO, NOTIFY, OPTIONS, UPDATE with 200 OK"),
    # variables
    Option("key", 2, _pair("keys"), "Set a [keyword] value: -key name value"),
    Option("set", 2, _pair("globals_set"), "Set a scenario variable: -set name value"),
    Option("au", 1, _set("auth_username"), "Authentication user name"),
    Option("ap", 1, _set("auth_password"), "Authentication password"),
    Option("auth_uri", 1, _set("auth_uri"), "Digest URI of authentication answers (sip:VALUE)"),
    # interaction
    Option("nostdin", 0, _flag("no_stdin"), "Do not read keyboard commands"),
    Option("bg", 0, _flag("background"), "Background mode: no screen"),
    Option("ci", 1, _set("control_ip"), "Control socket IP"),
    Option("cp", 1, _set("control_port", parse_port), "Control socket port"),
    # traces
    Option("trace_msg", 0, _flag("trace_msg"), "Log sent and received SIP messages"),
    Option("message_file", 1, _set("message_file"), "File for -trace_msg"),
    Option("trace_err", 0, _flag("trace_err"), "Log unexpected messages"),
    Option("error_file", 1, _set("error_file"), "File for -trace_err"),
    Option("trace_stat", 0, _flag("trace_stat"), "Write the periodic statistics CSV"),
    Option("stf", 1, _set("stat_file"), "File for -trace_stat"),
    Option("fd", 1, _set("stat_period_s", _seconds), "Statistics period (default 60 s)"),
    Option("trace_screen", 0, _flag("trace_screen"), "Dump the screen to a file at exit"),
    Option("screen_file", 1, _set("screen_file"), "File for -trace_screen"),
    Option("trace_rtt", 0, _flag("trace_rtt"), "Log response times"),
    Option("trace_logs", 0, _flag("trace_logs"), "Write <log> actions to a file"),
    Option("log_file", 1, _set("log_file"), "File for -trace_logs"),
    Option("summary_json", 1, _set("summary_json"), "Write the final summary as JSON (- = stdout)"),
    Option("call_records", 1, _set("call_records"), "(gossipper) Write one JSON line per ended call"),
    *HEALTH_OPTIONS,
    Option(
        "metrics_addr",
        1,
        _set("metrics_address", metrics_address),
        "Serve Prometheus metrics at http://HOST:PORT/metrics (a bare PORT: 127.0.0.1)",
    ),
    Option("stats_jsonl", 1, _set("stats_jsonl"), "Write one JSON line of statistics per -fd period"),
    Option("summary_html", 1, _set("summary_html"), "Write an HTML report with charts over time at the end"),
    *OUTPUT_OPTIONS,
    # media (SIPp)
    Option("rtp_echo", 0, _flag("rtp_echo"), "Echo RTP received on the media port"),
    Option("rtp_payload", 1, _set("rtp_payload", _int(0, 127)), "RTP payload type for rtp_stream"),
    Option("rtpcheck_debug", 0, _flag("rtpcheck_debug"), "Log RTP echo checks to debugafile/debugvfile"),
    Option("audiotolerance", 1, _set("audio_tolerance", _float(0)), "Audio echo check tolerance 0.0-1.0"),
    Option("videotolerance", 1, _set("video_tolerance", _float(0)), "Video echo check tolerance 0.0-1.0"),
    # media (gossipper)
    Option("media_scale", 0, _flag("media_scale"), "Use the scale engine for synthetic RTP"),
    Option("media_iouring", 0, _flag("media_iouring"), "Scale engine sends through io_uring"),
    Option(
        "media_rtprio",
        1,
        _set("media_rtprio", _int(0, 99)),
        "SCHED_RR priority of the scale engine's sender threads when allowed (default 10; 0 = normal)",
    ),
    Option(
        "rtp_quality",
        1,
        _set("rtp_quality", _choice("on", "off")),
        "Scale streams measure the RTP that comes back: loss, jitter, echo RTT, MOS (on|off, default on)",
    ),
    Option("media_srtp", 0, _flag("media_srtp"), "SRTP on the classic media path"),
    Option("rtp_send", 0, _flag("rtp_send"), "Standalone RTP generator, no SIP"),
    Option("rtp_streams", 1, _set("rtp_streams", _int(1)), "Parallel standalone streams"),
    Option("rtp_addr", 1, _set("rtp_addr", _addr()), "Standalone RTP destination host:port"),
    Option(
        "cluster",
        1,
        _set("cluster_address", cluster_address),
        "(gossipper) Spread the run over a Ray cluster: auto, ray://HEAD:10001, HOST:PORT, or local:N",
    ),
    Option(
        "cluster_nodes",
        1,
        _set("cluster_nodes", _int(1)),
        "(gossipper) Nodes of -cluster to use (default: every node offering the gossipper resource)",
    ),
    Option(
        "cluster_media_ips",
        1,
        _set("cluster_media_ips", address_list),
        "(gossipper) Each -cluster node's media IP, in node order, comma-separated (default: its own)",
    ),
    Option("rtp_codec", 1, _set("rtp_codec"), "Codec NAME/RATE (default PCMU/8000)"),
    Option("rtp_pt", 1, _set("rtp_pt", _int(0, 127)), "Override the RTP payload type"),
    Option("rtp_freq", 1, _set("rtp_freq_ms", _int()), "Packet interval in ms (default 20)"),
    Option("rtp_dur", 1, _set("rtp_dur_ms", _int()), "Stream duration in ms (0 = until stopped)"),
    Option("rtp_ch", 1, _set("rtp_channels", _int()), "Channels per packet"),
    Option("hep_addr", 1, _set("hep_addr", _addr()), "HEPv3 collector host:port"),
    Option("hep_id", 1, _set("hep_id", _int(0, 2**32 - 1)), "HEP capture agent id"),
    Option("hep_pass", 1, _set("hep_pass"), "HEP capture password"),
    # misc
    Option("v", 0, _flag("show_version"), "Print the version and exit"),
    Option("h", 0, _flag("show_help"), "Print this help and exit"),
    Option("help", 0, _flag("show_help"), "Print this help and exit"),
]


def _unset(attr: str) -> Callable[..., None]:
    def apply(config: Config, flag: str, values: list[str]) -> None:
        setattr(config, attr, False)

    return apply


def _no_defaults(config: Config, flag: str, values: list[str]) -> None:
    config.default_behaviors = frozenset()


CALL_ID_TYPES = {
    "default": "default",
    "format": "default",
    "legacy": "default",
    "uuid": "uuid",
    "uuid-compact": "uuid-compact",
    "uuidcompact": "uuid-compact",
    "uuid32": "uuid-compact",
    "random": "random",
    "random-hex": "random",
    "timestamp": "timestamp",
    "time": "timestamp",
}


def _call_id_type(flag: str, text: str) -> str:
    kind = CALL_ID_TYPES.get(text.lower())
    if kind is None:
        raise UsageError(f"{flag}: unknown Call-ID mode {text!r} (expected {', '.join(CALL_ID_TYPES)})")
    return kind


def _bool(flag: str, text: str) -> bool:
    """SIPp's get_bool: true or false (any case), else an integer, 0 being false."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return parse_int(flag, text) != 0


def _refuse(reason: str) -> Callable[..., None]:
    """An option of SIPp's table that cannot apply here: refused with the reason, never ignored."""

    def apply(config: Config, flag: str, values: list[str]) -> None:
        raise UsageError(f"{flag}: not supported by gossipper: {reason}")

    return apply


def _text(_flag: str, text: str) -> str:
    return text


def _no_effect(reason: str, convert: Callable[[str, str], Any]) -> Callable[..., None]:
    """A tuning knob of SIPp's own machinery: its value is checked, and the run says once on
    stderr that it changes nothing here and why (so a lab script keeps running, nothing silently)."""

    def apply(config: Config, flag: str, values: list[str]) -> None:
        convert(flag, values[0])
        config.notices.append(f"{flag}: accepted, no effect in gossipper: {reason}")

    return apply


_ASYNCIO = "asyncio's event loop reads every ready socket and runs every ready call each turn"
_SCTP_TUNING = "gossipper's SCTP associations keep the kernel's defaults (sysctl net.sctp.*)"

# The rest of SIPp's options table (sipp.cpp), in its order; what each does is in Config's comments.
_OPTIONS += [
    Option("rxsf", 1, _set("rx_scenario_file"), "Mixed mode: incoming calls run this XML scenario"),
    Option("rxrn", 1, _set("rx_scenario_name"), "Mixed mode: incoming calls run this built-in"),
    Option("oocsf", 1, _set("ooc_scenario_file"), "Out-of-call requests run this XML scenario"),
    Option("oocsn", 1, _set("ooc_scenario_name"), "Out-of-call requests run this built-in"),
    Option("rxinf", 1, _append("rx_inject_files"), "CSV injection file of the -rxsf scenario"),
    Option("infindex", 2, _pair("inject_indexes"), "Index an -inf file on a field: -infindex FILE N"),
    Option("bind_local", 0, _flag("bind_local"), "Bind the SIP socket to the local IP, not to all"),
    Option("max_reconnect", 1, _set("max_reconnect", _int(-1)), "-t t1: reconnections allowed (-1: any)"),
    Option("reconnect_close", 1, _set("reconnect_close", _bool), "-t t1: calls fail when the peer closes"),
    Option(
        "reconnect_sleep", 1, _set("reconnect_sleep_ms", _duration("ms")), "-t t1: wait before reconnecting"
    ),
    Option("bind_to_device", 1, _set("bind_to_device"), "Bind the SIP socket to a network device (root)"),
    Option("max_socket", 1, _set("max_socket", _int(1)), "Most sockets open at once with -t un/tn"),
    Option("plugin", 1, _refuse("it loads a C shared object into SIPp's own process"), "(SIPp only)"),
    Option("sleep", 1, _set("sleep_ms", _duration("s")), "Sleep this long at startup (default unit: s)"),
    Option("skip_rlimit", 0, _flag("skip_rlimit"), "Do not check or raise the open files limit"),
    Option(
        "buff_size",
        1,
        _set("buff_size", _int(1)),
        "SIP socket send and receive buffer size, and the largest message taken on a connection",
    ),
    Option(
        "conn_idle_timeout",
        1,
        _set("conn_idle_timeout_s", _seconds),
        "(gossipper) Close an accepted connection quiet this long (default unit: s; 0 = never)",
    ),
    Option("lost", 1, _set("lost_percent", _float(0)), "Lose this percent of messages (scenario lost= wins)"),
    Option(
        "tdmmap",
        1,
        _refuse("there are no TDM circuits to map (SIPp's TDM gateway tests)"),
        "(SIPp only)",
    ),
    Option("dynamicStart", 1, _set("dynamic_start", _int()), "First [dynamic_id] (default 10000)"),
    Option("dynamicMax", 1, _set("dynamic_max", _int()), "[dynamic_id] wraps above this (default 12000)"),
    Option("dynamicStep", 1, _set("dynamic_step", _int()), "[dynamic_id] increment (default 4)"),
    Option("cid_type", 1, _set("call_id_type", _call_id_type), "Call-ID mode: default, uuid, ..."),
    Option("deadcall_wait", 1, _set("deadcall_wait_ms", _duration("ms")), "Keep ended calls this long"),
    Option("nd", 0, _no_defaults, "No default behaviors (-default_behaviors none)"),
    Option("pause_msg_ign", 0, _flag("pause_msg_ign"), "Ignore messages received during a pause"),
    Option("rate_scale", 1, _set("rate_scale", _float()), "Rate step of the + - * / keys"),
    Option("rate_interval", 1, _set("rate_interval_s", _seconds), "Period of -rate_increase (default -fd)"),
    Option("no_rate_quit", 0, _unset("rate_quit"), "Keep running once -rate_max is reached"),
    Option("max_invite_retrans", 1, _set("max_invite_retrans", _int(0)), "INVITE retransmissions"),
    Option("max_non_invite_retrans", 1, _set("max_non_invite_retrans", _int(0)), "Other retransmissions"),
    Option("nr", 0, _unset("retransmissions"), "No UDP retransmissions"),
    Option("rtcheck", 1, _set("rtcheck", _choice("full", "loose")), "Retransmission detection"),
    Option("T2", 1, _set("t2_ms", _duration("ms")), "Timer T2 (default 4000 ms)"),
    Option("timer_resol", 1, _set("timer_resol_ms", _duration("ms")), "Timer and call-creation tick (ms)"),
    Option("multihome", 1, _no_effect(_SCTP_TUNING, _text), "(SCTP multihome address; not set)"),
    Option("heartbeat", 1, _no_effect(_SCTP_TUNING, _int(0)), "(SCTP heartbeat interval; not set)"),
    Option("assocmaxret", 1, _no_effect(_SCTP_TUNING, _int(0)), "(SCTP association retransmits; not set)"),
    Option("pathmaxret", 1, _no_effect(_SCTP_TUNING, _int(0)), "(SCTP path retransmits; not set)"),
    Option("pmtu", 1, _no_effect(_SCTP_TUNING, _int(0)), "(SCTP path MTU; not set)"),
    Option("gracefulclose", 1, _no_effect(_SCTP_TUNING, _bool), "(SCTP SHUTDOWN or ABORT; not set)"),
    Option("max_recv_loops", 1, _no_effect(_ASYNCIO, _int()), "(SIPp's receive loop; no effect)"),
    Option("max_sched_loops", 1, _no_effect(_ASYNCIO, _int()), "(SIPp's call loop; no effect)"),
    Option(
        "rtp_threadtasks",
        1,
        _no_effect("RTP playback runs on the event loop or the scale engine, not in task threads", _int()),
        "(SIPp's RTP threads; no effect)",
    ),
    Option("watchdog_interval", 1, _set("watchdog_interval_ms", _duration("ms")), "Watchdog period"),
    Option("watchdog_reset", 1, _set("watchdog_reset_ms", _duration("ms")), "Watchdog trip counter reset"),
    Option(
        "watchdog_minor_threshold",
        1,
        _set("watchdog_minor_threshold_ms", _duration("ms")),
        "Lateness of a minor trip",
    ),
    Option(
        "watchdog_major_threshold",
        1,
        _set("watchdog_major_threshold_ms", _duration("ms")),
        "Lateness of a major trip",
    ),
    Option("watchdog_major_maxtriggers", 1, _set("watchdog_major_maxtriggers", _int()), "Major trips"),
    Option("watchdog_minor_maxtriggers", 1, _set("watchdog_minor_maxtriggers", _int()), "Minor trips"),
    Option("f", 1, _set("screen_period_s", _seconds), "Screen refresh period (default 1 s)"),
    Option("random_base_ssrc", 0, _flag("random_base_ssrc"), "Random RTP SSRCs (as gossipper always does)"),
    Option("ip_field", 1, _set("ip_field", _int(0)), "-t ui: the -inf field of each call's local IP"),
    Option("mb", 1, _set("echo_buffer_bytes", _int(1)), "RTP echo buffer: the most an echo sends back"),
    Option("rtp_buffsize", 1, _set("rtp_buffer_bytes", _int(1)), "RTP socket send and receive buffer size"),
    Option(
        "send_timeout",
        1,
        _no_effect(
            "no send waits (asyncio queues what a socket cannot take yet), so none times out", _duration("ms")
        ),
        "(SIPp's congestion timeout; no effect)",
    ),
    Option(
        "sendbuffer_warn",
        1,
        _no_effect("a failed send of a message outside the scenario is counted with the send errors", _bool),
        "(SIPp's send failure policy; no effect)",
    ),
    Option(
        "srtpcheck_debug",
        0,
        _refuse("it traces the contexts of SIPp's own SRTP engine (JLSRTP); gossipper's SRTP is -media_srtp"),
        "(SIPp only)",
    ),
]

OPTIONS: dict[str, Option] = {option.name: option for option in _OPTIONS}


def parse_args(argv: Sequence[str]) -> Config:
    """Turn SIPp-style arguments into a Config; raise UsageError on the first bad one."""
    config = Config()
    words = list(argv)
    index = 0
    positional: list[str] = []
    while index < len(words):
        word = words[index]
        index += 1
        if word.startswith("-") and len(word) > 1 and not _is_negative_number(word):
            name = word.lstrip("-")
            option = OPTIONS.get(name)
            if option is None:
                raise UsageError(f"{word}: unknown option (see gossipper sipp -h)")
            values = words[index : index + option.nargs]
            if len(values) < option.nargs:
                raise UsageError(f"{word}: expects {option.nargs} value(s)")
            index += option.nargs
            option.apply(config, word, values)
            config.given.add(name)
        else:
            positional.append(word)
    if len(positional) > 1:
        raise UsageError(f"{positional[1]}: only one remote host may be given ({positional[0]!r} already)")
    if positional:
        config.remote_host, config.remote_port = split_host_port("remote host", positional[0], 5060)
    return config


def _is_negative_number(word: str) -> bool:
    return bool(re.fullmatch(r"-\d+(\.\d+)?", word))


def usage_text() -> str:
    lines = ["usage: gossipper sipp [options] [remote_host[:port]]", "", "options:"]
    for option in _OPTIONS:
        args = {0: "", 1: " VALUE", 2: " NAME VALUE"}[option.nargs]
        lines.append(f"  -{option.name}{args}".ljust(29) + " " + option.help)
    return "\n".join(lines)
