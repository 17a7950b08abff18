"""Every flag's value after parsing, as the user gave it (or SIPp's default).

Only `cli/` reads a Config: `cli.compile` turns it into the frozen settings each
layer takes. Defaults match SIPp's so that an unchanged lab script behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gossipper.media.settings import DEFAULT_MEDIA_PORT


@dataclass
class Config:
    # --- scenario selection ---
    scenario_name: str | None = None  # -sn
    scenario_file: str | None = None  # -sf
    dump_scenario: str | None = None  # -sd
    inject_files: list[str] = field(default_factory=list)  # -inf (repeatable)
    inject_indexes: dict[str, str] = field(default_factory=dict)  # -infindex FILE FIELD
    ooc_scenario_file: str | None = None  # -oocsf: the out-of-call scenario of a client run
    ooc_scenario_name: str | None = None  # -oocsn
    rx_scenario_file: str | None = None  # -rxsf: mixed mode's receiving scenario
    rx_scenario_name: str | None = None  # -rxrn
    rx_inject_files: list[str] = field(default_factory=list)  # -rxinf (repeatable)
    # --- addressing ---
    remote_host: str | None = None  # positional host[:port]
    remote_port: int = 5060
    remote_sending_address: tuple[str, int] | None = None  # -rsa
    local_ip: str | None = None  # -i
    local_port: int | None = None  # -p
    media_ip: str | None = None  # -mi
    media_port: int | None = None  # -mp
    min_rtp_port: int | None = None  # -min_rtp_port
    max_rtp_port: int = 65535  # -max_rtp_port
    transport: str = "u1"  # -t
    tls_cert: str = "cacert.pem"  # -tls_cert (SIPp's default, in the working directory)
    tls_key: str = "cakey.pem"  # -tls_key
    tls_ca: str | None = None  # -tls_ca
    tls_crl: str | None = None  # -tls_crl
    tls_version: float = 0.0  # -tls_version (0: negotiate)
    service: str = "service"  # -s
    twin_3pcc: tuple[str, int] | None = None  # -3pcc
    twin_master: str | None = None  # -master NAME (extended 3PCC)
    twin_slave: str | None = None  # -slave NAME (extended 3PCC)
    twin_peers_file: str | None = None  # -slave_cfg FILE (extended 3PCC)
    # --- call generation ---
    max_calls: int = 0  # -m (0 = unlimited)
    max_concurrent: int = 0  # -l (0 = 3 x rate x call length, computed later)
    rate: float = 10.0  # -r
    rate_period_ms: int = 1000  # -rp
    rate_increase: float = 0.0  # -rate_increase
    rate_max: float = 0.0  # -rate_max
    users: int | None = None  # -users
    pause_ms: int = 0  # -d (0 = scenario's default pause)
    base_cseq: int = 1  # -base_cseq
    call_id_format: str = "%u-%p@%s"  # -cid_str
    callid_slash_ign: bool = False  # -callid_slash_ign
    # --- timers ---
    global_timeout_ms: int = 0  # -timeout
    timeout_error: bool = False  # -timeout_error
    recv_timeout_ms: int = 0  # -recv_timeout
    max_retrans: int = 5  # -max_retrans
    default_behaviors: frozenset[str] = frozenset({"bye", "abortunexp", "pingreply", "cseq"})  # SIPp's all
    auto_answer: bool = False  # -aa
    # --- variables ---
    keys: dict[str, str] = field(default_factory=dict)  # -key K V
    globals_set: dict[str, str] = field(default_factory=dict)  # -set V X
    auth_username: str | None = None  # -au
    auth_password: str | None = None  # -ap
    auth_uri: str | None = None  # -auth_uri
    # --- interaction ---
    no_stdin: bool = False  # -nostdin
    background: bool = False  # -bg
    control_ip: str | None = None  # -ci
    control_port: int | None = None  # -cp
    # --- traces ---
    trace_msg: bool = False
    message_file: str | None = None
    trace_err: bool = False
    error_file: str | None = None
    trace_stat: bool = False
    stat_file: str | None = None  # -stf
    stat_period_s: float = 60.0  # -fd
    trace_screen: bool = False
    screen_file: str | None = None
    trace_rtt: bool = False
    trace_logs: bool = False
    log_file: str | None = None
    summary_json: str | None = None  # -summary_json
    call_records: str | None = None  # -call_records
    health_gates: dict[str, float] = field(default_factory=dict)  # -health_*: HealthGates field -> limit
    metrics_address: tuple[str, int] | None = None  # -metrics_addr: a bare port is 127.0.0.1's
    stats_jsonl: str | None = None  # -stats_jsonl
    summary_html: str | None = None  # -summary_html
    # --- output files: SIPp's stat and trace options (one block, see cli.options OUTPUT_OPTIONS) ---
    stat_delimiter: str = ";"  # -stat_delimiter
    periodic_rtd: bool = False  # -periodic_rtd
    rfc3339: bool = False  # -rfc3339
    trace_shortmsg: bool = False
    shortmessage_file: str | None = None
    trace_counts: bool = False
    trace_error_codes: bool = False
    trace_calldebug: bool = False
    calldebug_file: str | None = None
    rtt_freq: int = 200  # -rtt_freq: -trace_rtt samples per write
    # -message_overwrite, -shortmessage_overwrite, ...: kind -> truncate at start (SIPp's default true)
    overwrite: dict[str, bool] = field(default_factory=dict)
    ringbuffer_files: int = 0
    ringbuffer_size: int = 0
    max_log_size: int = 0
    # --- media (SIPp) ---
    rtp_echo: bool = False
    rtp_payload: int = 0
    rtpcheck_debug: bool = False
    audio_tolerance: float = 1.0  # -audiotolerance
    video_tolerance: float = 1.0  # -videotolerance
    # --- media (gossipper) ---
    media_scale: bool = False
    media_iouring: bool = False
    media_rtprio: int = 10  # SCHED_RR priority of the scale engine's workers; 0: normal scheduling
    rtp_quality: str = "on"  # scale streams measure what comes back to them ("on" or "off")
    media_srtp: bool = False
    rtp_send: bool = False
    rtp_streams: int = 1
    rtp_addr: tuple[str, int] | None = None
    rtp_codec: str = "PCMU/8000"
    rtp_pt: int | None = None
    rtp_freq_ms: int = 20
    rtp_dur_ms: int = 0
    rtp_channels: int = 1
    hep_addr: tuple[str, int] | None = None
    # --- more than one host (gossipper, issue 17) ---
    cluster_address: str | None = None  # -cluster: a Ray address, or local:N
    cluster_nodes: int | None = None  # -cluster_nodes (None: every node offering the gossipper resource)
    cluster_media_ips: tuple[str, ...] = ()  # -cluster_media_ips: node i's media address (default: its own)
    hep_id: int = 2001
    hep_pass: str | None = None
    # --- SIPp's remaining options (sipp.cpp options_table): retransmissions, timers, runtime ---
    max_invite_retrans: int | None = None  # -max_invite_retrans
    max_non_invite_retrans: int | None = None  # -max_non_invite_retrans
    retransmissions: bool = True  # -nr: off
    t2_ms: int = 4000  # -T2
    rtcheck: str = "full"  # -rtcheck full|loose
    pause_msg_ign: bool = False  # -pause_msg_ign
    lost_percent: float = 0.0  # -lost
    deadcall_wait_ms: int = 33_000  # -deadcall_wait
    timer_resol_ms: int | None = None  # -timer_resol (None: 1 ms timers, creation ticks of up to 5 ms)
    rate_scale: float = 1.0  # -rate_scale
    rate_interval_s: float | None = None  # -rate_interval (None: -fd)
    rate_quit: bool = True  # -no_rate_quit: off
    sleep_ms: int = 0  # -sleep
    screen_period_s: float = 1.0  # -f
    call_id_type: str = "default"  # -cid_type
    dynamic_start: int = 10_000  # -dynamicStart
    dynamic_max: int = 12_000  # -dynamicMax
    dynamic_step: int = 4  # -dynamicStep
    bind_local: bool = False  # -bind_local
    bind_to_device: str | None = None  # -bind_to_device
    buff_size: int = 65_536  # -buff_size
    max_socket: int = 50_000  # -max_socket
    conn_idle_timeout_s: float = 0.0  # -conn_idle_timeout (gossipper): 0, a quiet connection stays
    max_reconnect: int = 0  # -max_reconnect
    ip_field: int = 0  # -ip_field
    echo_buffer_bytes: int = 2048  # -mb
    rtp_buffer_bytes: int | None = None  # -rtp_buffsize (SIPp's 65536 default is not forced here)
    reconnect_close: bool = True  # -reconnect_close
    reconnect_sleep_ms: int = 1000  # -reconnect_sleep
    skip_rlimit: bool = False  # -skip_rlimit
    watchdog_interval_ms: int = 400  # -watchdog_interval (0: no watchdog)
    watchdog_reset_ms: int = 600_000  # -watchdog_reset
    watchdog_minor_threshold_ms: int = 500  # -watchdog_minor_threshold
    watchdog_major_threshold_ms: int = 3000  # -watchdog_major_threshold
    watchdog_minor_maxtriggers: int = 120  # -watchdog_minor_maxtriggers
    watchdog_major_maxtriggers: int = 10  # -watchdog_major_maxtriggers
    random_base_ssrc: bool = False  # -random_base_ssrc: what it asks (random SSRCs) always holds here
    # --- misc ---
    show_help: bool = False
    show_version: bool = False
    # One line each for options accepted without effect here, printed before the run.
    notices: list[str] = field(default_factory=list)
    # Flags given explicitly, so later stages can tell "default" from "chosen".
    given: set[str] = field(default_factory=set)

    @property
    def media_base_port(self) -> int:
        """Base for per-call and standalone media ports: -mp, else -min_rtp_port, else 6000."""
        if self.media_port is not None:
            return self.media_port
        return self.min_rtp_port if self.min_rtp_port is not None else DEFAULT_MEDIA_PORT
