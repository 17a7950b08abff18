"""Between calls and media: rtp_stream actions to the scale engine, by call id.

Each call's stream binds the call's [media_port] and sends to the address in the
peer's SDP. Call end always unregisters, so no stream outlives its call; the engine
keeps the counts of unregistered streams, so the run's totals stay whole.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from gossipper.cli.config import Config
from gossipper.cli.errors import BindError, UsageError
from gossipper.media.codecs import lookup_codec
from gossipper.media.sdp import parse_audio_endpoint
from gossipper.scenario import model
from gossipper.stats.counters import RunCounters

if TYPE_CHECKING:
    from gossipper.engine.call import Call
    from gossipper.media.scale.api import ScaleEngine

MediaFailure = tuple[str, str]  # (failure class, reason)


class MediaBridge:
    def __init__(self, config: Config, counters: RunCounters) -> None:
        self.config = config
        self.counters = counters
        self.engine: ScaleEngine | None = None
        self.media_ip = "127.0.0.1"
        self._streams: set[str] = set()

    async def start(self, media_ip: str) -> None:
        self.media_ip = media_ip
        if not self.config.media_scale:
            return
        from gossipper.media.scale.factory import create_scale_engine

        prefer = "iouring" if self.config.media_iouring else "auto"
        self.engine = create_scale_engine(prefer=prefer)
        self.engine.start()
        self.counters.media.engine = self.engine.name
        if not self.config.background:
            print(
                f"gossipper: media scale engine: {self.engine.name} ({self.engine.reason})", file=sys.stderr
            )

    def action(self, call: Call, action: model.Exec) -> MediaFailure | None:
        stream = action.rtp
        if stream is None:
            return (
                "scenario_error",
                "play_pcap_audio/video needs the classic media path (not available yet)",
            )
        if stream.kind in ("pause", "resume", "stop"):
            if self.engine is not None and call.call_id in self._streams:
                if stream.kind == "pause":
                    self.engine.pause(call.call_id)
                elif stream.kind == "resume":
                    self.engine.resume(call.call_id)
                else:
                    self._unregister(call.call_id)
            return None
        if stream.kind != "synthetic" or self.engine is None:
            return (
                "scenario_error",
                f"rtp_stream {stream.kind!r} needs the classic media path, which this build does not have yet"
                + ("" if self.engine else "; synthetic streams need -media_scale"),
            )
        return self._start_synthetic(call, stream)

    def _start_synthetic(self, call: Call, stream: model.RtpStreamAction) -> MediaFailure | None:
        from gossipper.media.scale.api import StreamSpec

        assert self.engine is not None
        sdp = call.context.remote_sdp
        if not sdp:
            return ("parse_error", "rtp_stream: the peer sent no SDP to take the RTP address from")
        try:
            endpoint = parse_audio_endpoint(sdp)
        except ValueError as error:
            return ("parse_error", f"rtp_stream: {error}")
        codec = stream.codec or lookup_codec(self.config.rtp_codec)
        spec = StreamSpec(
            local_ip=self.media_ip,
            local_port=call.context.media_port,
            remote_ip=endpoint.address,
            remote_port=endpoint.port,
            codec=codec,
            interval_ms=stream.freq_ms or codec.default_interval_ms,
            duration_ms=stream.dur_ms or 0,
            payload_type=stream.payload_type,
            channels=stream.channels or 1,
        )
        if call.call_id in self._streams:
            self._unregister(call.call_id)
        try:
            self.engine.register(call.call_id, spec)
        except (BindError, UsageError, OSError) as error:
            return ("transport_error", f"rtp_stream: {error}")
        self._streams.add(call.call_id)
        return None

    def _unregister(self, call_id: str) -> None:
        if self.engine is not None:
            self.engine.unregister(call_id)
        self._streams.discard(call_id)

    def call_ended(self, call: Call) -> None:
        if call.call_id in self._streams:
            self._unregister(call.call_id)

    def refresh_counters(self) -> None:
        if self.engine is not None:
            snapshot = self.engine.snapshot()
            snapshot.engine = self.engine.name
            self.counters.media = snapshot

    def close(self) -> None:
        if self.engine is not None:
            for call_id in list(self._streams):
                self._unregister(call_id)
            self.engine.close()
            self.refresh_counters()
