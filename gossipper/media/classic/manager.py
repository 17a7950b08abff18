"""ClassicMedia: the run's classic media path, one MediaSession per call, by call id.

The SIP engine tells it what each call's scenario asks (rtp_stream, play_pcap_*),
what the peer's SDP says, and when calls start and end; it answers with a failure
(class, reason) or None, and keeps the counts, per-stream reports and the SRTP keys.
Files are loaded once per run and shared by every call that plays them. Each ended
stream's QoS report goes to the run's `qos_sink` (its HEP sender), when it has one.
File and pattern streams are echo-checked as SIPp's rtpcheck does (rtpcheck.py); a
call's checks are judged when its media ends, and SIPp's rtp_echo actions switch
echo per call (exec rtp_echo=) or for every -rtp_echo call at once (<rtp_echo>).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from gossipper.errors import FileProblem
from gossipper.media.classic.pcap import PcapMedia, load_pcap
from gossipper.media.classic.receive_stats import ReceiveStats
from gossipper.media.classic.reports import homer_qos_report, stream_report
from gossipper.media.classic.rtpcheck import EchoCheck
from gossipper.media.classic.sender import FramePlan
from gossipper.media.classic.session import Address, MediaSession
from gossipper.media.classic.srtp import (
    SUITES,
    CryptoAttribute,
    SrtpContext,
    audio_crypto_attributes,
    choose_remote,
)
from gossipper.media.classic.totals import ClassicTotals
from gossipper.media.classic.wav import AudioFile, load_audio_file
from gossipper.media.codecs import PacketPlan, packet_plan
from gossipper.media.sdp import AudioEndpoint, parse_audio_endpoint, sdp_of_body
from gossipper.media.settings import MediaSettings
from gossipper.media.streams import MediaAction, RtpStreamAction, StreamKind
from gossipper.stats.counters import MediaCounters

Failure = tuple[str, str]  # (failure class, reason)
QosSink = Callable[[str, dict[str, object]], None]  # (call id, the stream's report)
_NO_SDP = "the peer sent no SDP to take the RTP address from"
_RAW_PAYLOAD_TYPE = 0  # SIPp's -rtp_payload default: what raw files and patterns carry when unsaid
PATTERN_BYTES = (0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF)  # SIPp's apattern/vpattern ids 1..6
DEBUG_FILES = {False: "debugafile", True: "debugvfile"}  # -rtpcheck_debug, in the working directory, as SIPp


@dataclass
class _CallMedia:
    call_id: str
    media_port: int | None = None
    remote_sdp: bytes | None = None
    parsed_sdp: bytes | None = None  # the SDP that peer and sdp_error were taken from
    peer_found: AudioEndpoint | None = None
    sdp_error_found: str | None = None
    crypto_error: str | None = None
    offered: list[CryptoAttribute] = field(default_factory=list)  # the peer's a=crypto lines
    local_crypto: CryptoAttribute | None = None
    remote_crypto: CryptoAttribute | None = None
    session: MediaSession | None = None
    flag_echo: bool = False  # echoing because of -rtp_echo, so <rtp_echo value=0> silences it
    checks: dict[bool, EchoCheck] = field(default_factory=dict)  # video? -> its rtpcheck

    def _parse_remote_sdp(self) -> None:
        """Only when asked: most calls of a load test carry SDP but no classic media."""
        if self.parsed_sdp is self.remote_sdp:
            return
        self.parsed_sdp = self.remote_sdp
        if self.remote_sdp is None:
            self.peer_found, self.sdp_error_found = None, None
            return
        try:
            self.peer_found, self.sdp_error_found = parse_audio_endpoint(self.remote_sdp), None
        except ValueError as error:
            self.peer_found, self.sdp_error_found = None, str(error)

    @property
    def peer(self) -> AudioEndpoint | None:
        self._parse_remote_sdp()
        return self.peer_found

    @property
    def sdp_error(self) -> str | None:
        self._parse_remote_sdp()
        return self.sdp_error_found


class ClassicMedia:
    def __init__(
        self,
        settings: MediaSettings,
        loop: asyncio.AbstractEventLoop,
        *,
        qos_sink: QosSink | None = None,
    ) -> None:
        self.settings = settings
        self.totals = ClassicTotals()
        self.media_ip = "127.0.0.1"
        self._qos_sink = qos_sink
        self._loop = loop
        self._calls: dict[str, _CallMedia] = {}
        self._audio: dict[str, AudioFile] = {}
        self._pcaps: dict[str, PcapMedia] = {}
        self._reports: list[dict[str, object]] = []
        self._flag_echo_on = True  # SIPp's rtp_echo_state, which <rtp_echo value=...> sets
        self._debug: dict[bool, TextIO] = {}

    def start(self, media_ip: str) -> None:
        self.media_ip = media_ip

    def preload(self, actions: Iterable[MediaAction]) -> None:
        """Load every file the actions play, so a bad one fails the run before any call."""
        for action in actions:
            for path in (action.play_pcap_audio, action.play_pcap_video):
                if path:
                    self._pcap(path)
            if action.rtp is not None and action.rtp.kind in (StreamKind.FILE, StreamKind.PATTERN):
                try:
                    self._plan(action.rtp)
                except ValueError as error:
                    raise FileProblem(f"rtp_stream: {error}") from None

    # --- what calls ask -----------------------------------------------------------------------

    def action(
        self, call_id: str, media_port: int, remote_sdp: bytes | None, action: MediaAction
    ) -> Failure | None:
        call = self._call(call_id)
        call.media_port = media_port
        if remote_sdp is not None:
            self.remote_sdp_changed(call_id, remote_sdp)
        for path, video in ((action.play_pcap_audio, False), (action.play_pcap_video, True)):
            if path:
                failure = self._replay(call, path, video)
                if failure is not None:
                    return failure
        if action.rtp is not None:
            return self._rtp_stream(call, action.rtp)
        return None

    def call_started(self, call_id: str, media_port: int) -> None:
        """With -rtp_echo, RTP reaching [media_port] goes back where it came from."""
        if not self.settings.echo:
            return
        call = self._call(call_id)
        call.media_port = media_port
        session = self._open(call, "echo of every call")
        if isinstance(session, MediaSession):
            call.flag_echo = True
            session.echo = self._flag_echo_on

    def switch_flag_echo(self, on: bool) -> None:
        """<rtp_echo value=...>: SIPp's -rtp_echo echoes only while its switch is on, run-wide."""
        self._flag_echo_on = on
        for call in self._calls.values():
            if call.flag_echo and call.session is not None:
                call.session.echo = on

    def remote_sdp_changed(self, call_id: str, remote_sdp: bytes) -> None:
        """Learn the peer's RTP address and a=crypto lines; the same SDP again changes nothing."""
        remote_sdp = sdp_of_body(remote_sdp)  # a multipart body's application/sdp part
        call = self._call(call_id)
        if remote_sdp == call.remote_sdp:
            return
        call.remote_sdp = remote_sdp  # parsed when a stream, echo or replay needs the peer
        if self.settings.srtp:
            try:
                call.offered, call.crypto_error = audio_crypto_attributes(remote_sdp), None
            except ValueError as error:
                call.offered, call.crypto_error = [], str(error)
            if call.local_crypto is not None:
                call.remote_crypto = choose_remote(call.local_crypto, call.offered)
        self._apply_peer(call)

    def local_crypto_attribute(self, call_id: str) -> str:
        """With -media_srtp, our a=crypto line: an answer to the peer's offer if we have one.

        Without -media_srtp: the empty string (nothing to add to the SDP).
        """
        if not self.settings.srtp:
            return ""
        call = self._call(call_id)
        if call.local_crypto is None:
            if call.offered:
                call.remote_crypto = call.offered[0]
                call.local_crypto = call.offered[0].answer()
            else:
                call.local_crypto = CryptoAttribute.new()
            self._apply_peer(call)
        return str(call.local_crypto)

    def call_ended(self, call_id: str) -> list[dict[str, object]]:
        """Close the call's media; -> the reports of the streams it received."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return []
        reported = len(self._reports)
        if call.session is not None:
            call.session.close()
        for check in call.checks.values():
            if not check.finish():
                self.totals.rtp_check_failures += 1
        return self._reports[reported:]

    # --- what the run reads -------------------------------------------------------------------

    def snapshot_into(self, media: MediaCounters) -> None:
        self.totals.add_into(media)
        if self.totals.active and "classic" not in media.engine:
            media.engine = "classic" if media.engine == "none" else f"{media.engine}+classic"

    def stream_reports(self) -> list[dict[str, object]]:
        """Every received stream so far: ended ones, then those still live."""
        live = [
            stream_report(call_id, stats, source, call.session.local)
            for call_id, call in self._calls.items()
            if call.session is not None
            for stats, source in call.session.receivers()
        ]
        return [*self._reports, *live]

    def close(self) -> None:
        for call_id in list(self._calls):
            self.call_ended(call_id)
        for debug in self._debug.values():
            debug.close()
        self._debug.clear()

    # --- inside -------------------------------------------------------------------------------

    def _call(self, call_id: str) -> _CallMedia:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _CallMedia(call_id)
        return call

    def _open(self, call: _CallMedia, what: str) -> MediaSession | Failure:
        if call.session is not None:
            return call.session
        assert call.media_port is not None
        local = (self.media_ip, call.media_port)
        call_id = call.call_id
        session = MediaSession(
            self._loop,
            local,
            self.totals,
            cname=f"gossipper-{os.getpid()}@{self.media_ip}",
            on_receive_end=lambda stats, source: self._receive_ended(call_id, stats, source, local),
            rtcp_interval_s=self.settings.rtcp_interval_s,
            buffer_bytes=self.settings.socket_buffer_bytes,
            echo_limit=self.settings.echo_buffer_bytes,
        )
        try:
            session.open()
        except OSError as error:
            self.totals.send_error(error)
            return (
                "transport_error",
                f"{what}: cannot bind media ports {local[0]}:{local[1]}/{local[1] + 1} ({error.strerror})",
            )
        session.srtp_required = self.settings.srtp
        call.session = session
        self._apply_peer(call)
        return session

    def _apply_peer(self, call: _CallMedia) -> None:
        session = call.session
        if session is None:
            return
        if call.peer is not None:
            session.peer = (call.peer.address, call.peer.port)
        if call.remote_sdp is not None and b"m=video" in call.remote_sdp:
            try:
                video = _video_endpoint(call.remote_sdp)
                session.video_peer = (video.address, video.port)
            except ValueError:
                session.video_peer = None  # said when a video pattern asks for it
        if call.local_crypto is None or call.remote_crypto is None:
            return
        keys = (call.local_crypto, call.remote_crypto)
        if session.srtp is None or session.srtp.keys != keys:  # a new context would reset libsrtp's state
            session.srtp = SrtpContext(*keys)

    def _ready_to_send(self, call: _CallMedia, what: str) -> MediaSession | Failure:
        if call.peer is None:
            return ("parse_error", f"{what}: {call.sdp_error or _NO_SDP}")
        if self.settings.srtp:
            if call.local_crypto is None:
                return ("scenario_error", f"{what}: SRTP is on but our SDP carried no a=crypto line")
            if call.remote_crypto is None:
                missing = f"no a=crypto line for {call.local_crypto.suite} (usable: {', '.join(SUITES)})"
                return (
                    "parse_error",
                    f"{what}: SRTP is on but the peer's SDP has {call.crypto_error or missing}",
                )
        return self._open(call, what)

    def _rtp_stream(self, call: _CallMedia, stream: RtpStreamAction) -> Failure | None:
        if stream.kind.controls_a_stream:
            if call.session is not None:
                _control(call.session, stream)
            return None
        if stream.kind in (StreamKind.ECHO_START, StreamKind.ECHO_STOP):
            return self._rtp_echo(call, stream)
        if stream.kind is StreamKind.ECHO:
            opened = self._open(call, "rtp_stream echo")
        else:
            try:
                plan = self._plan(stream)
            except (FileProblem, ValueError) as error:
                return ("scenario_error", f"rtp_stream: {error}")
            opened = self._ready_to_send(call, "rtp_stream")
            if isinstance(opened, MediaSession):
                if stream.video and opened.video_peer is None:
                    return ("parse_error", "rtp_stream vpattern: the peer's SDP has no usable m=video line")
                check = self._check(call, stream.video) if plan.echo_checked else None
                opened.play(plan, video=stream.video, check=check)
        if not isinstance(opened, MediaSession):
            return opened
        opened.echo = opened.echo or stream.kind is StreamKind.ECHO
        return None

    def _rtp_echo(self, call: _CallMedia, stream: RtpStreamAction) -> Failure | None:
        """SIPp's exec rtp_echo: start (or update) echo on the call's port; stop fails on a broken echo."""
        what = f"rtp_echo {'video' if stream.video else 'audio'}"
        if stream.kind is StreamKind.ECHO_START:
            opened = self._open(call, what)
            if not isinstance(opened, MediaSession):
                return opened
            opened.echo = True
            return None
        session = call.session
        if session is None:
            return None
        session.echo = call.flag_echo and self._flag_echo_on  # -rtp_echo's echo is not this action's
        if session.echo_errors:
            self.totals.rtp_check_failures += 1
            errors, session.echo_errors = session.echo_errors, 0
            return ("transport_error", f"{what}: the echo hit {errors} socket error(s)")
        return None

    def _check(self, call: _CallMedia, video: bool) -> EchoCheck:
        check = call.checks.get(video)
        if check is None:
            tolerance = self.settings.video_tolerance if video else self.settings.audio_tolerance
            label = f"{call.call_id} {'video' if video else 'audio'}"
            check = call.checks[video] = EchoCheck(label, tolerance, self._debug_file(video))
        return check

    def _debug_file(self, video: bool) -> TextIO | None:
        if not self.settings.rtpcheck_debug:
            return None
        debug = self._debug.get(video)
        if debug is None:
            debug = self._debug[video] = open(DEBUG_FILES[video], "a", encoding="utf-8")  # noqa: SIM115
        return debug

    def _plan(self, stream: RtpStreamAction) -> FramePlan:
        """ValueError (a payload SIPp cannot play) or FileProblem (a bad file) if it cannot be sent."""
        if stream.kind is StreamKind.PATTERN:
            payload_type = self._payload_type(stream, None)
            sipp = self._packet_plan(stream, payload_type)
            pattern = bytes((PATTERN_BYTES[stream.pattern_id - 1],)) * sipp.payload_bytes
            return _sipp_frames(sipp, payload_type, lambda _index: pattern, 1, -1)
        if stream.kind is StreamKind.FILE and stream.file:
            audio = self._audio_file(stream.file)
            payload_type = self._payload_type(stream, audio.payload_type)
            sipp = self._packet_plan(stream, payload_type)
            size = sipp.payload_bytes
            return _sipp_frames(
                sipp,
                payload_type,
                lambda index: audio.frame(index, size, payload_type),
                audio.frame_count(size),
                stream.loops,
            )
        synthetic = self.settings.stream_defaults.synthetic(stream)
        codec, interval_ms = synthetic.codec, synthetic.interval_ms
        silence = bytes((codec.silence_byte,)) * codec.payload_bytes(interval_ms, synthetic.channels)
        return FramePlan(
            frame=lambda _index: silence,
            frame_count=1,
            loops=-1,
            slot_limit=(synthetic.duration_ms // interval_ms) if synthetic.duration_ms else 0,
            payload_type=synthetic.payload_type,
            clock_rate=codec.clock_rate,
            timestamp_step=codec.samples_per_packet(interval_ms),
            interval_s=interval_ms / 1000,
        )

    def _replay(self, call: _CallMedia, path: str, video: bool) -> Failure | None:
        what = "play_pcap_video" if video else "play_pcap_audio"
        try:
            pcap = self._pcap(path)
        except FileProblem as error:
            return ("scenario_error", f"{what}: {error}")
        destination: Address | None = None
        if call.peer is not None:
            destination = (call.peer.address, call.peer.port)
        if video and call.remote_sdp is not None:
            try:
                endpoint = _video_endpoint(call.remote_sdp)
            except ValueError as error:
                return ("parse_error", f"{what}: {error}")
            destination = (endpoint.address, endpoint.port)
        session = self._ready_to_send(call, what)
        if not isinstance(session, MediaSession):
            return session
        assert destination is not None  # _ready_to_send checked that the peer's SDP was read
        session.replay(pcap, destination)
        return None

    def _payload_type(self, stream: RtpStreamAction, file_payload_type: int | None) -> int:
        """The stream's own type, else -rtp_payload, else what a WAV says it holds, else SIPp's 0."""
        if stream.payload_type is not None:
            return stream.payload_type
        if self.settings.default_payload_type is not None:
            return self.settings.default_payload_type
        return _RAW_PAYLOAD_TYPE if file_payload_type is None else file_payload_type

    def _packet_plan(self, stream: RtpStreamAction, payload_type: int) -> PacketPlan:
        plan = packet_plan(payload_type, stream.payload_name)
        if plan.video != stream.video and stream.kind is StreamKind.PATTERN:
            kind = "vpattern" if stream.video else "apattern"
            raise ValueError(f"{kind} cannot carry {plan.payload_name}")
        return plan

    def _audio_file(self, path: str) -> AudioFile:
        audio = self._audio.get(path)
        if audio is None:
            audio = self._audio[path] = load_audio_file(path)
        return audio

    def _pcap(self, path: str) -> PcapMedia:
        pcap = self._pcaps.get(path)
        if pcap is None:
            pcap = self._pcaps[path] = load_pcap(path)
        return pcap

    def _receive_ended(
        self, call_id: str, stats: ReceiveStats, source: Address | None, local: Address
    ) -> None:
        report = stream_report(call_id, stats, source, local)
        self._reports.append(report)
        if self._qos_sink is not None:
            self._qos_sink(call_id, homer_qos_report(call_id, stats, source, local))


def _control(session: MediaSession, stream: RtpStreamAction) -> None:
    if stream.kind is StreamKind.PAUSE:
        session.pause(video=stream.video)
    elif stream.kind is StreamKind.RESUME:
        session.resume(video=stream.video)
    else:
        session.stop_stream(video=stream.video)


def _sipp_frames(
    sipp: PacketPlan, payload_type: int, frame: Callable[[int], bytes], frame_count: int, loops: int
) -> FramePlan:
    """A file or pattern stream paced as SIPp paces it: its payload type's interval, size and step."""
    return FramePlan(
        frame=frame,
        frame_count=frame_count,
        loops=loops,
        slot_limit=0,
        payload_type=payload_type,
        clock_rate=sipp.timestamp_step * 1000 // sipp.interval_ms,
        timestamp_step=sipp.timestamp_step,
        interval_s=sipp.interval_ms / 1000,
        echo_checked=True,
    )


def _video_endpoint(sdp: bytes) -> AudioEndpoint:
    """Where the peer wants video: the SDP parser reads the first m=audio, so show it m=video as that."""
    kept: list[bytes] = []
    in_audio = False
    for line in sdp.splitlines():
        if line.startswith(b"m="):
            in_audio = line.startswith(b"m=audio")
            if line.startswith(b"m=video"):
                line = b"m=audio" + line[len(b"m=video") :]
        if not in_audio:
            kept.append(line)
    try:
        return parse_audio_endpoint(b"\r\n".join(kept))
    except ValueError as error:
        raise ValueError(str(error).replace("m=audio", "m=video")) from None
