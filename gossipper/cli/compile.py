"""From the flags' Config to the frozen settings each layer takes, every default decided here once.

Where SIPp's meaning depends on whether a flag was given at all (-max_retrans, -d,
-rtp_codec), the answer is settled here, so no layer below ever asks which flags the
user typed.
"""

from __future__ import annotations

import contextlib
import os
import resource
from types import MappingProxyType

from gossipper.cli.config import Config
from gossipper.cli.errors import UsageError
from gossipper.engine.settings import (
    DEFAULT_INVITE_RETRANS,
    DEFAULT_OTHER_RETRANS,
    CallPolicy,
    ControlSettings,
    DefaultBehavior,
    GenerationSettings,
    HepSettings,
    KeywordSettings,
    RunSettings,
    TraceSettings,
    TransportMode,
    TransportSettings,
    TwinSettings,
    ViewSettings,
    WatchdogSettings,
)
from gossipper.media.codecs import lookup_codec
from gossipper.media.settings import MediaSettings, StandaloneSettings
from gossipper.media.streams import StreamDefaults
from gossipper.scenario.builtins import MEDIA_SCALE_BUILTINS
from gossipper.sip.tls import TlsSettings
from gossipper.stats.health import HealthGates
from gossipper.stats.live import LiveOutputSettings

RLIMIT_RESERVE = 64  # descriptors kept for the main socket, media, trace files


def twin_settings(config: Config) -> TwinSettings:
    """-3pcc, or -master/-slave with -slave_cfg; SIPp refuses any other mix (sipp.cpp)."""
    name = config.twin_master or config.twin_slave
    if config.twin_master and config.twin_slave:
        raise UsageError("-master and -slave: an instance is one or the other")
    if config.twin_3pcc and (name or config.twin_peers_file):
        raise UsageError("-3pcc: cannot be combined with -master, -slave or -slave_cfg")
    if bool(name) != bool(config.twin_peers_file):
        raise UsageError("-slave_cfg: must be used with -master or -slave (and they with it)")
    return TwinSettings(
        address=config.twin_3pcc,
        name=name,
        master=config.twin_master is not None,
        peers_file=config.twin_peers_file,
    )


def max_sockets(config: Config) -> int:
    """SIPp's open files check: with a socket per call (-t un/tn), -max_socket sockets must fit
    under RLIMIT_NOFILE, raised toward its hard limit first. SIPp refuses its default 50000 on
    a smaller limit; here only an explicit -max_socket is refused, the default shrinks to fit
    (room kept for media and files). -skip_rlimit: nothing checked, nothing raised."""
    if config.transport not in ("un", "tn") or config.skip_rlimit:
        return config.max_socket
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = config.max_socket + RLIMIT_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or config.max_socket <= soft - RLIMIT_RESERVE:
        return config.max_socket
    if "max_socket" in config.given:
        raise UsageError(
            f"-max_socket: {config.max_socket} sockets do not fit the open files limit ({soft}); "
            "raise it with ulimit -n, lower -max_socket, or give -skip_rlimit"
        )
    return max(1, soft - RLIMIT_RESERVE)


def run_settings(config: Config) -> RunSettings:
    """The settings of a SIP run (a validated Config)."""
    return RunSettings(
        policy=_call_policy(config),
        keywords=KeywordSettings(
            service=config.service,
            users=config.users or 0,
            keys=MappingProxyType(dict(config.keys)),
            variables=MappingProxyType(dict(config.globals_set)),
            base_cseq=config.base_cseq,
            call_id_format=config.call_id_format,
            call_id_type=config.call_id_type,
            dynamic_start=config.dynamic_start,
            dynamic_step=config.dynamic_step,
            dynamic_max=config.dynamic_max,
        ),
        transport=TransportSettings(
            mode=TransportMode(config.transport),
            local_ip=config.local_ip,
            local_port=config.local_port,
            remote=(config.remote_host, config.remote_port) if config.remote_host is not None else None,
            send_to=config.remote_sending_address,
            twin=twin_settings(config),
            tls=TlsSettings(
                config.tls_cert, config.tls_key, config.tls_ca, config.tls_crl, config.tls_version
            ),
            bind_local=config.bind_local,
            bind_to_device=config.bind_to_device,
            buffer_bytes=config.buff_size if "buff_size" in config.given else None,
            max_sockets=max_sockets(config),
            max_message_bytes=config.buff_size,
            idle_timeout_s=config.conn_idle_timeout_s,
            max_reconnect=config.max_reconnect,
            ip_field=config.ip_field,
            reconnect_close=config.reconnect_close,
            reconnect_sleep_ms=config.reconnect_sleep_ms,
        ),
        generation=GenerationSettings(
            rate=config.rate,
            rate_period_ms=config.rate_period_ms,
            rate_increase=config.rate_increase,
            rate_max=config.rate_max,
            increase_period_s=(
                config.rate_interval_s if config.rate_interval_s is not None else config.stat_period_s
            ),
            max_calls=config.max_calls,
            max_concurrent=config.max_concurrent,
            users=config.users or 0,
            global_timeout_ms=config.global_timeout_ms,
            timeout_is_error=config.timeout_error,
            rate_quit=config.rate_quit,
            sleep_s=config.sleep_ms / 1000,
        ),
        views=view_settings(config),
        control=ControlSettings(
            ip=config.control_ip,
            port=config.control_port,
            keyboard=not config.no_stdin and not config.background,
            rate_scale=config.rate_scale,
        ),
        media=_media(config, _stream_defaults(config)),
        hep=(
            HepSettings(config.hep_addr, config.hep_id, config.hep_pass)
            if config.hep_addr is not None
            else None
        ),
        injection_files=tuple(config.inject_files),
        watchdog=WatchdogSettings(
            interval_ms=config.watchdog_interval_ms,
            reset_ms=config.watchdog_reset_ms,
            minor_threshold_ms=config.watchdog_minor_threshold_ms,
            major_threshold_ms=config.watchdog_major_threshold_ms,
            minor_maxtriggers=config.watchdog_minor_maxtriggers,
            major_maxtriggers=config.watchdog_major_maxtriggers,
        ),
        dead_call_wait_s=config.deadcall_wait_ms / 1000,
        timer_resolution_ms=None if config.timer_resol_ms is None else max(1, config.timer_resol_ms),
    )


def output_file_base(config: Config) -> str:
    """What SIPp names its files after: the -sf file's basename less a ".xml" ending, else
    the -sn name (uac when neither is given)."""
    if config.scenario_file:
        name = os.path.basename(config.scenario_file)
        return name[: -len(".xml")] if name.endswith(".xml") else name
    return config.scenario_name or "uac"


def view_settings(config: Config) -> ViewSettings:
    def trace(kind: str, enabled: bool, path: str | None) -> TraceSettings:
        return TraceSettings(enabled, path, config.overwrite.get(kind, True))

    return ViewSettings(
        file_base=output_file_base(config),
        messages=trace("message", config.trace_msg, config.message_file),
        shortmessages=trace("shortmessage", config.trace_shortmsg, config.shortmessage_file),
        errors=trace("error", config.trace_err, config.error_file),
        logs=trace("log", config.trace_logs, config.log_file),
        calldebug=trace("calldebug", config.trace_calldebug, config.calldebug_file),
        screen=trace("screen", config.trace_screen, config.screen_file),
        ringbuffer_files=config.ringbuffer_files,
        ringbuffer_size=config.ringbuffer_size,
        max_log_size=config.max_log_size,
        stat_csv=config.trace_stat,
        stat_file=config.stat_file,
        stat_period_s=config.stat_period_s,
        stat_delimiter=config.stat_delimiter,
        periodic_rtd=config.periodic_rtd,
        rfc3339=config.rfc3339,
        counts_csv=config.trace_counts,
        error_codes_csv=config.trace_error_codes,
        rtt_csv=config.trace_rtt,
        rtt_freq=config.rtt_freq,
        media_columns=media_scale_wanted(config) or config.rtp_echo,
        summary_json=config.summary_json,
        call_records=config.call_records,
        health=health_gates(config),
        live=live_output_settings(config),
        quiet=config.background,
        screen_period_s=config.screen_period_s,
    )


def live_output_settings(config: Config) -> LiveOutputSettings:
    return LiveOutputSettings(
        metrics_address=config.metrics_address,
        stats_jsonl=config.stats_jsonl,
        summary_html=config.summary_html,
    )


def standalone_settings(config: Config) -> StandaloneSettings:
    """The settings of `-rtp_send` (a validated Config, so -rtp_addr is there)."""
    assert config.rtp_addr is not None
    return StandaloneSettings(
        destination=config.rtp_addr,
        streams=config.rtp_streams,
        local_ip=config.local_ip,
        media=_media(config, _stream_defaults(config)),
        summary_json=config.summary_json,
        health=health_gates(config),
        live=live_output_settings(config),
        stat_period_s=config.stat_period_s,
    )


def health_gates(config: Config) -> HealthGates:
    return HealthGates(**config.health_gates)  # type: ignore[arg-type]  # ints stay ints


def media_scale_wanted(config: Config) -> bool:
    """-media_scale, or a built-in that exists to drive the scale engine (SPEC section 2)."""
    return config.media_scale or config.scenario_name in MEDIA_SCALE_BUILTINS


def _stream_defaults(config: Config) -> StreamDefaults:
    """What a synthetic stream does not say. Unless -rtp_freq is given, each codec keeps its own
    interval (ILBC 30 ms, H264 33 ms); -rtp_pt, else SIPp's -rtp_payload, overrides the codec's type."""
    given = config.given
    payload_type = config.rtp_pt
    if payload_type is None and "rtp_payload" in given:
        payload_type = config.rtp_payload
    return StreamDefaults(
        codec=lookup_codec(config.rtp_codec),
        interval_ms=config.rtp_freq_ms if "rtp_freq" in given else None,
        duration_ms=config.rtp_dur_ms,
        payload_type=payload_type,
        channels=config.rtp_channels,
    )


def _media(config: Config, defaults: StreamDefaults) -> MediaSettings:
    return MediaSettings(
        ip=config.media_ip,
        base_port=config.media_base_port,
        max_port=config.max_rtp_port,
        scale=media_scale_wanted(config),
        iouring=config.media_iouring,
        rt_priority=config.media_rtprio,
        quality=config.rtp_quality == "on",
        srtp=config.media_srtp,
        echo=config.rtp_echo,
        default_payload_type=config.rtp_payload if "rtp_payload" in config.given else None,
        audio_tolerance=config.audio_tolerance,
        video_tolerance=config.video_tolerance,
        rtpcheck_debug=config.rtpcheck_debug,
        stream_defaults=defaults,
        quiet=config.background,
        socket_buffer_bytes=config.rtp_buffer_bytes,
        echo_buffer_bytes=config.echo_buffer_bytes,
    )


def _retrans_limit(config: Config, own: int | None, default: int) -> int:
    """SIPp allows the smaller of -max_retrans and the transaction kind's own limit."""
    limit = own if own is not None else default
    return min(limit, config.max_retrans) if "max_retrans" in config.given else limit


def _call_policy(config: Config) -> CallPolicy:
    return CallPolicy(
        behaviors=frozenset(DefaultBehavior(name) for name in config.default_behaviors),
        auto_answer=config.auto_answer,
        invite_max_retrans=_retrans_limit(config, config.max_invite_retrans, DEFAULT_INVITE_RETRANS),
        other_max_retrans=_retrans_limit(config, config.max_non_invite_retrans, DEFAULT_OTHER_RETRANS),
        recv_timeout_ms=config.recv_timeout_ms,
        pause_override_ms=config.pause_ms if "d" in config.given else None,
        pause_fallback_ms=config.pause_ms,
        auth_username=config.auth_username or "",
        auth_password=config.auth_password if config.auth_password is not None else "password",
        auth_uri=config.auth_uri,
        trim_call_id_prefix=not config.callid_slash_ign,
        retransmissions=config.retransmissions,
        t2_ms=config.t2_ms,
        loose_retrans_check=config.rtcheck == "loose",
        lost_percent=config.lost_percent,
        ignore_during_pause=config.pause_msg_ign,
    )
