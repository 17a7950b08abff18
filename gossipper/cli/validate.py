"""Cross-flag checks that must fail before any socket opens (SPEC section 1).

They read the Config and change nothing: what a flag implies for another (a built-in
that turns the scale engine on) is decided once, in `cli.compile`.
"""

from __future__ import annotations

import os
from pathlib import Path

from gossipper.cli.compile import media_scale_wanted
from gossipper.cli.config import Config
from gossipper.cli.errors import UsageError
from gossipper.cluster import availability
from gossipper.engine.settings import MAX_CALLS_PER_SECOND, MAX_TIMER_RESOLUTION_MS, rate_ceiling
from gossipper.media.codecs import check_duration, check_interval, lookup_codec
from gossipper.media.scale.preflight import check_port_range, ensure_open_files
from gossipper.media.settings import media_port_span
from gossipper.scenario.model import Scenario


def validate(config: Config) -> None:
    """Raise UsageError for combinations SIPp or gossipper cannot run."""
    if config.scenario_name and config.scenario_file:
        raise UsageError("-sn and -sf: choose one scenario source, not both")
    media_scale = media_scale_wanted(config)
    if media_scale and config.media_srtp:
        raise UsageError(
            "-media_scale: cannot be combined with -media_srtp (the scale engine is cleartext only)"
        )
    if config.rtp_streams > 1 and not media_scale:
        raise UsageError("-rtp_streams: more than one stream needs -media_scale")
    if config.rtp_send and config.rtp_addr is None:
        raise UsageError("-rtp_send: needs -rtp_addr host:port (the destination of the streams)")
    if "rtp_codec" in config.given or config.rtp_send:
        lookup_codec(config.rtp_codec)
    check_interval(config.rtp_freq_ms)
    check_duration(config.rtp_dur_ms)
    if not 1 <= config.rtp_channels <= 8:
        raise UsageError(f"-rtp_ch: channels must be 1..8, got {config.rtp_channels}")
    tolerances = (("-audiotolerance", config.audio_tolerance), ("-videotolerance", config.video_tolerance))
    for flag, tolerance in tolerances:
        if not 0.0 <= tolerance <= 1.0:
            raise UsageError(f"{flag}: must be 0.0..1.0, got {tolerance:g}")
    if config.min_rtp_port is not None and config.min_rtp_port > config.max_rtp_port:
        raise UsageError(f"-min_rtp_port: {config.min_rtp_port} is above -max_rtp_port {config.max_rtp_port}")
    if config.ringbuffer_size and config.max_log_size:
        raise UsageError("-ringbuffer_size and -max_log_size: choose one (SIPp refuses both)")
    if config.transport == "ui" and not config.inject_files:
        raise UsageError("-t ui: needs -inf (its lines name the local addresses to send from)")
    for path, index in config.inject_indexes.items():
        _check_inject_index(config, path, index)
    if config.timer_resol_ms is not None and config.timer_resol_ms > MAX_TIMER_RESOLUTION_MS:
        raise UsageError(f"-timer_resol: {config.timer_resol_ms} ms is above {MAX_TIMER_RESOLUTION_MS} ms")
    if config.rate_period_ms <= 0:
        raise UsageError("-rp: rate period must be positive")
    for flag, rate in (("-r", config.rate), ("-rate_max", config.rate_max)):
        if rate > rate_ceiling(config.rate_period_ms):
            raise UsageError(
                f"{flag}: {rate:g} calls per {config.rate_period_ms:g} ms is above gossipper's ceiling of "
                f"{MAX_CALLS_PER_SECOND:g} calls per second"
            )
    _check_cluster(config, media_scale)
    if config.rtp_send and config.cluster_address is None:
        _check_stream_capacity(config)
    _check_output_file("-summary_json", config.summary_json)
    _check_output_file("-call_records", config.call_records)
    if config.rtp_send and config.call_records is not None:
        raise UsageError("-call_records: a -rtp_send run makes no calls to record")
    for flag, file in (("-stats_jsonl", config.stats_jsonl), ("-summary_html", config.summary_html)):
        if file == "-":
            raise UsageError(f"{flag}: give a file name (stdout carries the screen and the summary)")
        _check_output_file(flag, file)


def _check_cluster(config: Config, media_scale: bool) -> None:
    """-cluster: Ray is there, and the run is one a cluster can spread: the standalone
    generator or a client scenario."""
    if config.cluster_address is None:
        for flag, given in (
            ("-cluster_nodes", config.cluster_nodes),
            ("-cluster_media_ips", config.cluster_media_ips),
        ):
            if given:
                raise UsageError(f"{flag}: needs -cluster (the cluster whose nodes to use)")
        return
    availability.prepare_environment(config.cluster_address)
    problem = availability.ray_import_problem()
    if problem is not None:
        raise UsageError(f"-cluster: {problem}")
    if config.rtp_send and not media_scale:
        raise UsageError("-cluster: the standalone generator runs on a cluster with -media_scale")
    if config.background:
        raise UsageError(
            "-cluster: cannot run in the background (-bg); the driver collects every node's counts"
        )
    twin = [flag for flag, given in _twin_flags(config) if given]
    if twin:
        raise UsageError(
            f"-cluster: {', '.join(twin)}: 3PCC pairs instances with each other, not nodes of a cluster"
        )
    local = availability.local_cluster_nodes(config.cluster_address)
    nodes = config.cluster_nodes or local
    if local is not None and config.cluster_nodes is not None and config.cluster_nodes > local:
        raise UsageError(f"-cluster_nodes: {config.cluster_nodes} nodes asked of a local cluster of {local}")
    if config.cluster_media_ips and nodes is not None and len(config.cluster_media_ips) < nodes:
        raise UsageError(
            f"-cluster_media_ips: {len(config.cluster_media_ips)} address(es) for {nodes} nodes; "
            "give one per node"
        )
    if not config.rtp_send:
        return
    if nodes is not None and config.rtp_streams < nodes:
        raise UsageError(f"-cluster_nodes: {nodes} nodes need at least {nodes} streams (-rtp_streams)")
    # the nodes' port slices cut one range, so the run's streams must fit it as on one host
    check_port_range(config.rtp_streams, config.media_base_port, config.max_rtp_port)


def _twin_flags(config: Config) -> tuple[tuple[str, object], ...]:
    return (("-3pcc", config.twin_3pcc), ("-master", config.twin_master), ("-slave", config.twin_slave))


def _check_output_file(flag: str, path: str | None) -> None:
    """A file written when the run ends: a path it cannot be written to would lose the
    summary after the whole run, so it is refused before the first call."""
    if path is None or path == "-":
        return
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"{flag}: the directory {str(folder)!r} of {path!r} does not exist")
    if target.is_dir():
        raise UsageError(f"{flag}: {path!r} is a directory")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"{flag}: {path!r} cannot be written (permissions)")


def _check_inject_index(config: Config, path: str, index: str) -> None:
    """SIPp's -infindex checks: the file is one -inf names, the field a number. The index
    serves <lookup>, an action gossipper's scenarios do not have (their loader refuses it),
    so a command line that runs has no use for the index itself."""
    if path not in config.inject_files:
        raise UsageError(f"-infindex: {path!r} is not a file given with -inf")
    if not index.isdigit():
        raise UsageError(f"-infindex: invalid field {index!r} for {path} (expected a field number)")


def check_media_ports_for_calls(config: Config, scenario: Scenario) -> None:
    """Where the calls open media sockets (rtp_stream, pcap play, -rtp_echo), each live call
    holds a media port pair of its own, so the range must hold -l calls. Calls that only
    write [media_port] into their SDP open nothing, as SIPp's, and are not limited."""
    if not (config.rtp_echo or scenario.media_actions()):
        return
    base, top = config.media_base_port, config.max_rtp_port
    span = media_port_span(base, top)
    if config.max_concurrent > span:
        raise UsageError(
            f"-l: {config.max_concurrent} concurrent calls need {config.max_concurrent} media ports "
            f"but {base}..{top} holds {span} (step 2); lower -l or widen -mp/-max_rtp_port"
        )


def _check_stream_capacity(config: Config) -> None:
    """Every standalone stream needs its own port and descriptor; say how many fit if not."""
    check_port_range(config.rtp_streams, config.media_base_port, config.max_rtp_port)
    ensure_open_files(config.rtp_streams)
