"""What the media layer is told by the run: frozen, every default decided by `cli/`."""

from __future__ import annotations

from dataclasses import dataclass, field

from gossipper.media.codecs import CODECS
from gossipper.media.streams import StreamDefaults
from gossipper.stats.health import HealthGates
from gossipper.stats.live import LiveOutputSettings

DEFAULT_MEDIA_PORT = 6000
RTCP_INTERVAL_S = 5.0  # RFC 3550's minimum report interval, as SIPp's rtpcheck peers expect


@dataclass(frozen=True)
class MediaSettings:
    ip: str | None = None  # None: the run's local address
    base_port: int = DEFAULT_MEDIA_PORT  # call n (1-based) uses base + 2 (n - 1), wrapped
    max_port: int = 65535
    scale: bool = False  # synthetic streams go to the scale engine
    iouring: bool = False  # the scale engine sends through io_uring
    rt_priority: int = 10  # SCHED_RR priority of the scale engine's senders; 0: normal scheduling
    quality: bool = True  # scale streams measure the RTP that comes back (-rtp_quality)
    srtp: bool = False  # classic streams are SRTP, keyed by SDES a=crypto
    echo: bool = False  # every call's media port sends back what reaches it
    default_payload_type: int | None = None  # -rtp_payload; None: a WAV's own, the codec's, else 0
    audio_tolerance: float = 1.0  # -audiotolerance: failed share of echo checks that fails a stream
    video_tolerance: float = 1.0  # -videotolerance
    rtpcheck_debug: bool = False  # -rtpcheck_debug: every echo check to debugafile / debugvfile
    rtcp_interval_s: float = RTCP_INTERVAL_S  # classic path: one SR/RR per stream this often
    stream_defaults: StreamDefaults = field(default_factory=lambda: StreamDefaults(CODECS["PCMU/8000"]))
    quiet: bool = False  # no start line (background mode)
    socket_buffer_bytes: int | None = None  # -rtp_buffsize: RTP sockets' SO_SNDBUF/SO_RCVBUF
    echo_buffer_bytes: int = 2048  # -mb: what an echo sends back of a packet, as SIPp's echo buffer

    @property
    def port_span(self) -> int:
        """How many calls can hold a media port at once (RTP on even ports, step 2)."""
        return media_port_span(self.base_port, self.max_port)


def media_port_span(base_port: int, max_port: int) -> int:
    return max(1, (max_port - base_port) // 2 + 1)


@dataclass(frozen=True)
class StandaloneSettings:
    """`-rtp_send`: N synthetic streams toward one address, no SIP."""

    destination: tuple[str, int]  # unresolved host, port
    streams: int = 1
    local_ip: str | None = None  # None: media.ip, else the kernel's route toward the destination
    media: MediaSettings = field(default_factory=MediaSettings)
    summary_json: str | None = None  # "-": stdout
    health: HealthGates = field(
        default_factory=HealthGates
    )  # -health_*: judged at the end, into the summary and exit status
    live: LiveOutputSettings = field(default_factory=LiveOutputSettings)  # see stats.live
    stat_period_s: float = 60.0  # -fd: the period of -stats_jsonl's rows
