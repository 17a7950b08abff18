"""From the flags' Config to the frozen settings each layer takes, every default decided here once.

Where SIPp's meaning depends on whether a flag was given at all (-max_retrans, -d,
-rtp_codec), the answer is settled here, so no layer below ever asks which flags the
user typed.
"""

from __future__ import annotations

import os
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
)
from gossipper.media.codecs import lookup_codec
from gossipper.media.settings import MediaSettings, StandaloneSettings
from gossipper.media.streams import StreamDefaults
from gossipper.scenario.builtins import MEDIA_SCALE_BUILTINS
from gossipper.sip.tls import TlsSettings


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
        ),
        generation=GenerationSettings(
            rate=config.rate,
            rate_period_ms=config.rate_period_ms,
            rate_increase=config.rate_increase,
            rate_max=config.rate_max,
            increase_period_s=config.stat_period_s,
            max_calls=config.max_calls,
            max_concurrent=config.max_concurrent,
            users=config.users or 0,
            global_timeout_ms=config.global_timeout_ms,
            timeout_is_error=config.timeout_error,
        ),
        views=view_settings(config),
        control=ControlSettings(
            ip=config.control_ip or "127.0.0.1",
            port=config.control_port,
            keyboard=not config.no_stdin and not config.background,
        ),
        media=_media(config, _stream_defaults(config)),
        hep=(
            HepSettings(config.hep_addr, config.hep_id, config.hep_pass)
            if config.hep_addr is not None
            else None
        ),
        injection_files=tuple(config.inject_files),
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
        quiet=config.background,
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
    )


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
        srtp=config.media_srtp,
        echo=config.rtp_echo,
        default_payload_type=config.rtp_payload if "rtp_payload" in config.given else None,
        audio_tolerance=config.audio_tolerance,
        video_tolerance=config.video_tolerance,
        rtpcheck_debug=config.rtpcheck_debug,
        stream_defaults=defaults,
        quiet=config.background,
    )


def _call_policy(config: Config) -> CallPolicy:
    given = config.given
    return CallPolicy(
        behaviors=frozenset(DefaultBehavior(name) for name in config.default_behaviors),
        auto_answer=config.auto_answer,
        invite_max_retrans=config.max_retrans if "max_retrans" in given else DEFAULT_INVITE_RETRANS,
        other_max_retrans=config.max_retrans if "max_retrans" in given else DEFAULT_OTHER_RETRANS,
        recv_timeout_ms=config.recv_timeout_ms,
        pause_override_ms=config.pause_ms if "d" in given else None,
        pause_fallback_ms=config.pause_ms,
        auth_username=config.auth_username or "",
        auth_password=config.auth_password if config.auth_password is not None else "password",
        auth_uri=config.auth_uri,
        trim_call_id_prefix=not config.callid_slash_ign,
    )
