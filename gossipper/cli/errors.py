"""How the layers' errors reach the user: the flag a setting came from, and the exit status.

Lower layers raise `gossipper.errors` naming a settings field; this module alone knows
which flag (or environment variable) the user set it with, so the one line printed names
what the user typed.
"""

from __future__ import annotations

from gossipper.cli.exit_codes import EXIT_BIND_FAILED, EXIT_FATAL
from gossipper.errors import BindError, GossipperError, PortRangeTooSmall

# settings field -> how the user spells it
SETTING_FLAGS: dict[str, str] = {
    "scenario_name": "-sn",
    "dump_scenario": "-sd",
    "scenario_file": "-sf",
    "injection_file": "-inf",
    "stat_file": "-stf",
    "message_file": "-message_file",
    "shortmessage_file": "-shortmessage_file",
    "error_file": "-error_file",
    "log_file": "-log_file",
    "calldebug_file": "-calldebug_file",
    "screen_file": "-screen_file",
    "counts_file": "-trace_counts",
    "error_codes_file": "-trace_error_codes",
    "rtt_file": "-trace_rtt",
    "summary_json": "-summary_json",
    "stats_jsonl": "-stats_jsonl",
    "summary_html": "-summary_html",
    "metrics_address": "-metrics_addr",
    "hep_address": "-hep_addr",
    "local_port": "-p",
    "transport": "-t",
    "tls_cert": "-tls_cert",
    "tls_key": "-tls_key",
    "tls_ca": "-tls_ca",
    "tls_crl": "-tls_crl",
    "tls_version": "-tls_version",
    "codec": "-rtp_codec",
    "interval_ms": "-rtp_freq",
    "duration_ms": "-rtp_dur",
    "streams": "-rtp_streams",
    "max_concurrent": "-l",
    "stream_destination": "-rtp_addr",
    "remote_host": "remote host",
    "remote_sending_address": "-rsa",
    "twin_address": "-3pcc",
    "twin_name": "-master/-slave",
    "twin_peers_file": "-slave_cfg",
    "media_backend": "GOSSIPPER_MEDIA_BACKEND",
    "cluster": "-cluster",
    "cluster_nodes": "-cluster_nodes",
}


class UsageError(GossipperError):
    """A bad flag or flag value, found while parsing or validating (the text names the flag)."""


def describe(error: GossipperError) -> str:
    """The one line the user reads: the flag first when the error names a setting."""
    if isinstance(error, PortRangeTooSmall):
        return (
            f"{SETTING_FLAGS['streams']}: {error.streams} streams from -mp {error.base_port} need ports "
            f"up to {error.last_port}, above {error.max_port}; {error.fit} streams fit "
            "(lower -mp or -rtp_streams)"
        )
    flag = SETTING_FLAGS.get(error.setting or "")
    return f"{flag}: {error.message}" if flag else error.message


def exit_status(error: GossipperError) -> int:
    """SIPp's status for a failure before or outside the calls: -2 for binding, else -1."""
    return EXIT_BIND_FAILED if isinstance(error, BindError) else EXIT_FATAL
