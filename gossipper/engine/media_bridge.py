"""Between calls and media: rtp_stream actions to the scale engine or the classic path.

With -media_scale, synthetic streams go to the scale engine: each binds the call's
[media_port] and sends to the address in the peer's SDP. Everything else (files,
pcap replay, echo, SRTP, synthetic without -media_scale) runs on the classic
per-call path. Call end always ends both, so no stream outlives its call; the
engines keep the counts of ended streams, so the run's totals stay whole. A call's
media port is chosen here the first time it is asked (media.ports): its own slot,
or the next free pair when that one is taken.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gossipper.engine.context import format_variable
from gossipper.errors import GossipperError
from gossipper.media.classic.manager import ClassicMedia, QosSink
from gossipper.media.ports import MediaPorts
from gossipper.media.sdp import parse_audio_endpoint, sdp_of_body
from gossipper.media.settings import MediaSettings
from gossipper.media.streams import RtpStreamAction, StreamKind
from gossipper.scenario import model
from gossipper.stats.counters import MediaCounters, ReceiveQuality, RunCounters
from gossipper.stats.quality import QualitySummary

if TYPE_CHECKING:
    from gossipper.engine.call import Call
    from gossipper.media.scale.api import ScaleEngine

MediaFailure = tuple[str, str]  # (failure class, reason)
QUALITY_REFRESH_S = 5.0  # the quality aggregate reads every live stream: not every second


class MediaBridge:
    def __init__(
        self,
        settings: MediaSettings,
        counters: RunCounters,
        loop: asyncio.AbstractEventLoop,
        qos_sink: QosSink | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.counters = counters
        self.engine: ScaleEngine | None = None
        self.classic = ClassicMedia(settings, loop, qos_sink=qos_sink)
        self.media_ip = "127.0.0.1"
        self.ports = MediaPorts(settings.base_port, settings.port_span, warn or self._warn)
        self._streams: set[str] = set()
        self._stopped: dict[str, list[dict[str, object]]] = {}  # a live call's stopped scale streams
        self._quality: QualitySummary | None = None
        self._quality_at = -QUALITY_REFRESH_S
        # Probing a pair costs two binds per call; it is only worth it when our own calls bind
        # media ports (SIPp probes in rtpstream_get_localport, i.e. for rtp_stream alone).
        self._binds_media = settings.scale
        self._refresh_in_use()

    def _refresh_in_use(self) -> None:
        # Whether a call's end has anything here to stop or release: most load runs have no
        # media at all, and asking at every call's end cost about 2% of a UAS's CPU.
        self.in_use = self._follows_calls

    @property
    def _follows_calls(self) -> bool:
        """Whether the classic side keeps something of each call before any media action."""
        return self._binds_media or self.settings.echo or self.settings.srtp

    def _warn(self, text: str) -> None:
        if not self.settings.quiet:
            print(f"gossipper: {text}", file=sys.stderr)

    def media_port(self, call_id: str, preferred: int) -> int:
        """The call's [media_port]: `preferred` (its slot) unless that pair is in use."""
        if not self._binds_media:
            return preferred
        return self.ports.port_for(call_id, preferred, self.media_ip)

    def preload(self, scenario: model.Scenario) -> None:
        """Load the scenario's media files now, so a bad file fails the run before any call."""
        media = scenario.media_actions()
        self._binds_media = self._binds_media or bool(media)
        self._refresh_in_use()
        self.classic.preload(media)

    def start(self, media_ip: str) -> None:
        self.media_ip = media_ip
        self.classic.start(media_ip)
        if not self.settings.scale:
            return
        from gossipper.media.scale.factory import create_scale_engine

        prefer = "iouring" if self.settings.iouring else "auto"
        self.engine = create_scale_engine(
            prefer=prefer, rt_priority=self.settings.rt_priority, quality=self.settings.quality
        )
        self.engine.start()
        self.counters.media.engine = self.engine.name
        if not self.settings.quiet:
            print(
                f"gossipper: media scale engine: {self.engine.name} ({self.engine.reason})", file=sys.stderr
            )

    def action(self, call: Call, action: model.Exec) -> MediaFailure | None:
        self.in_use = True  # a scenario not preloaded (-oocsf) may hold media actions too
        stream = action.rtp
        if stream is not None and stream.kind is StreamKind.ECHO_SWITCH:
            self.classic.switch_flag_echo(_switch_on(call, stream))
            return None
        if stream is not None and stream.kind.controls_a_stream and not stream.video:
            self._control_scale(call.call_id, stream.kind)
        elif stream is not None and stream.kind is StreamKind.SYNTHETIC and self.engine is not None:
            return self._start_synthetic(call, stream)
        context = call.context
        return self.classic.action(call.call_id, context.media_port, context.remote_sdp, action)

    def _control_scale(self, call_id: str, kind: StreamKind) -> None:
        if self.engine is None or call_id not in self._streams:
            return
        if kind is StreamKind.PAUSE:
            self.engine.pause(call_id)
        elif kind is StreamKind.RESUME:
            self.engine.resume(call_id)
        else:
            self._unregister(call_id)

    @property
    def starts_with_calls(self) -> bool:
        """Whether a call's start opens anything here (call_started): only with -rtp_echo does
        a call's port open before its scenario asks."""
        return self.settings.echo

    def call_started(self, call: Call) -> None:
        if self.starts_with_calls:
            self.classic.call_started(call.call_id, call.context.media_port)

    def sdp_received(self, call: Call, sdp: bytes) -> None:
        # The peer's SDP matters to the classic side only for a session it may re-aim or
        # echo, or an a=crypto to answer; a media action reads it from the call's context.
        if self._follows_calls:
            self.classic.remote_sdp_changed(call.call_id, sdp)

    def crypto_attribute(self, call_id: str) -> str:
        return self.classic.local_crypto_attribute(call_id)

    def _start_synthetic(self, call: Call, stream: RtpStreamAction) -> MediaFailure | None:
        from gossipper.media.scale.api import StreamSpec

        assert self.engine is not None
        sdp = call.context.remote_sdp
        if not sdp:
            return ("parse_error", "rtp_stream: the peer sent no SDP to take the RTP address from")
        try:
            endpoint = parse_audio_endpoint(sdp_of_body(sdp))
        except ValueError as error:
            return ("parse_error", f"rtp_stream: {error}")
        spec = StreamSpec.carrying(
            self.settings.stream_defaults.synthetic(stream),
            (self.media_ip, call.context.media_port),
            (endpoint.address, endpoint.port),
        )
        if call.call_id in self._streams:
            self._unregister(call.call_id)
        try:
            self.engine.register(call.call_id, spec)
        except (GossipperError, OSError) as error:
            return ("transport_error", f"rtp_stream: {error}")
        self._streams.add(call.call_id)
        return None

    def _unregister(self, call_id: str) -> None:
        """Stop the call's scale stream; what it sent and measured waits for the call's end
        (a scenario may stop its stream long before the call ends), for the call's record."""
        counts = self.engine.unregister(call_id) if self.engine is not None else None
        self._streams.discard(call_id)
        if counts is None:
            return
        stream: dict[str, object] = {"engine": "scale", "packets_sent": counts.packets}
        if counts.quality is not None:
            stream.update(counts.quality.to_dict())
        self._stopped.setdefault(call_id, []).append(stream)

    def call_ended(self, call: Call) -> dict[str, object] | None:
        """Stop the call's media; -> what it received, for its call record (None: nothing)."""
        streams = [_classic_stream(report) for report in self.classic.call_ended(call.call_id)]
        if call.call_id in self._streams:
            self._unregister(call.call_id)
        streams += self._stopped.pop(call.call_id, [])
        self.ports.release(call.call_id)
        return {"streams": streams} if streams else None

    def refresh_counters(self, final: bool = False) -> None:
        media = MediaCounters()
        if self.engine is not None:
            media = self.engine.snapshot()
            media.engine = self.engine.name
            media.quality_enabled = self.engine.quality
            media.quality = self._quality_summary(final)
        self.classic.snapshot_into(media)
        self._receive_quality(media.receive)
        self.counters.media = media

    def _quality_summary(self, final: bool) -> QualitySummary | None:
        """The scale streams' quality, read again every QUALITY_REFRESH_S and at the end."""
        assert self.engine is not None
        now = time.monotonic()
        if final or now - self._quality_at >= QUALITY_REFRESH_S:
            self._quality = self.engine.quality_summary()
            self._quality_at = now
        return self._quality

    def _receive_quality(self, quality: ReceiveQuality) -> None:
        reports = self.classic.stream_reports()
        jitters = [float(report["jitter_ms"]) for report in reports]  # type: ignore[arg-type]
        quality.streams = len(reports)
        for key in ("packets", "lost", "duplicates", "out_of_order"):
            setattr(quality, key, sum(int(report[key]) for report in reports))  # type: ignore[call-overload]
        quality.jitter_avg_ms = sum(jitters) / len(jitters) if jitters else 0.0
        quality.jitter_max_ms = max(
            (float(report["max_jitter_ms"]) for report in reports),  # type: ignore[arg-type]
            default=0.0,
        )
        totals = self.classic.totals
        quality.echoed_packets = totals.echoed_packets
        quality.srtp_rejected = totals.srtp_rejected.copy()

    def close(self) -> None:
        if self.engine is not None:
            for call_id in list(self._streams):
                self._unregister(call_id)
            self.engine.close()
        self.classic.close()
        self.refresh_counters(final=True)


def _switch_on(call: Call, stream: RtpStreamAction) -> bool:
    """<rtp_echo>'s value (or variable's, unset being 0) as SIPp reads it: anything but 0 is on."""
    text = stream.switch_value or "0"
    if stream.switch_is_variable:
        value = call.context.variables.get(text.lstrip("$"))
        text = "0" if value is None else format_variable(value)
    try:
        return float(text) != 0
    except ValueError:
        return False  # SIPp reads a text variable as the number 0


def _classic_stream(report: dict[str, object]) -> dict[str, object]:
    """A classic stream's reception report under the names the scale engine's use."""
    return {
        "engine": "classic",
        "local_port": report["local_port"],
        "source": report["source"],
        "source_ssrc": report["ssrc"],
        "packets_received": report["packets"],
        "packets_expected": report["expected"],
        "packets_lost": report["lost"],
        "duplicates": report["duplicates"],
        "reordered": report["out_of_order"],
        "jitter_ms": report["jitter_ms"],
        "jitter_max_ms": report["max_jitter_ms"],
    }
