"""One call's media: RTP on [media_port], RTCP on [media_port]+1, on the event loop.

Sockets are bound at once (so a taken port fails the action that asked for it) and
handed to datagram endpoints; streams start once the RTP endpoint is up. The session
receives and measures every source (RFC 3550 A.1-A.8), echoes if asked, sends one
file/synthetic stream and any pcap replays, and reports over RTCP every interval:
SR while our stream has sent, RR otherwise, always with SDES CNAME; a stream that
ends sends a last SR and BYE, and the next stream is a new source (fresh SSRC).
A video pattern (SIPp's vpattern) is a second stream, from the same port to the
peer's m=video port; RTCP reports the audio stream only. Streams that SIPp checks
(files, patterns) hand what they send and what comes back to their EchoCheck.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from gossipper.media.classic.pcap import PcapMedia
from gossipper.media.classic.receive_stats import ReceiveStats
from gossipper.media.classic.rtcp import (
    MAX_REPORT_BLOCKS,
    Bye,
    ReceiverReport,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    encode_compound,
    ntp_timestamp,
    parse_compound,
)
from gossipper.media.classic.rtpcheck import EchoCheck
from gossipper.media.classic.sender import FramePlan, FrameStream, PcapReplay, RtpSource
from gossipper.media.classic.srtp import SrtpContext, SrtpRejected
from gossipper.media.classic.totals import ClassicTotals
from gossipper.media.codecs import CODECS
from gossipper.media.rtp import parse_rtp

_CLOCK_BY_PAYLOAD_TYPE = {codec.payload_type: codec.clock_rate for codec in CODECS.values()}
SOCKET_BUFFER_BYTES = 1 << 20  # as the scale engine's (media/scale/api.py); -rtp_buffsize overrides
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # <asm-generic/socket.h>; Python does not name it
_MEMINFO_DROPS = 8  # SK_MEMINFO_DROPS in <linux/sock_diag.h>: the last of its nine u32 fields
_MEMINFO_BYTES = (_MEMINFO_DROPS + 1) * 4
_DEFAULT_CLOCK_HZ = 8000
_NO_SRTP_KEYS = "no SRTP keys from the peer yet"

Address = tuple[str, int]
ReceiveEnded = Callable[[ReceiveStats, Address | None], None]


class SocketLike(Protocol):
    """A socket, or the stand-in an event loop's transport gives for its own (uvloop's)."""

    def getsockopt(self, level: int, option: int, buflen: int, /) -> bytes: ...


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(
        self,
        on_datagram: Callable[[bytes, Address], None],
        on_up: Callable[[asyncio.DatagramTransport], None],
        totals: ClassicTotals,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._on_datagram = on_datagram
        self._on_up = on_up
        self._totals = totals
        self._on_error = on_error

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._on_up(cast(asyncio.DatagramTransport, transport))  # uvloop's is not asyncio's class

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self._totals.send_error(exc)
            if self._on_error is not None:
                self._on_error()


class MediaSession:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        local: Address,
        totals: ClassicTotals,
        *,
        cname: str,
        on_receive_end: ReceiveEnded,
        rtcp_interval_s: float,
        buffer_bytes: int | None = None,
        echo_limit: int = 2048,
    ) -> None:
        self.local = local
        self._buffer_bytes = buffer_bytes  # -rtp_buffsize
        self._echo_limit = echo_limit  # -mb: SIPp echoes what its buffer of this size received
        self.peer: Address | None = None  # where our RTP goes; RTCP goes to the next port
        self.video_peer: Address | None = None  # where a video pattern goes (the peer's m=video)
        self.echo = False
        self.echo_errors = 0  # socket errors while echoing: SIPp's rtp_echo stop fails the call
        self.srtp: SrtpContext | None = None
        self.srtp_required = False  # drop what arrives until self.srtp is known
        self.ssrc = secrets.randbits(32)
        self._loop = loop
        self._totals = totals
        self._cname = cname
        self._on_receive_end = on_receive_end
        self._rtcp_interval_s = rtcp_interval_s
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._waiting: list[Callable[[], None]] = []
        self._unserved: list[socket.socket] = []  # bound, not yet handed to an endpoint
        self._connecting: asyncio.Task[None] | None = None  # held: the loop keeps only weak references
        self._rtcp_timer: asyncio.TimerHandle | None = None
        self._stream: FrameStream | None = None
        self._video_stream: FrameStream | None = None
        self._checks: dict[bool, EchoCheck] = {}  # video? -> the check its streams feed
        self._replays: list[PcapReplay] = []
        self._receivers: dict[int, ReceiveStats] = {}
        self._sources: dict[int, Address] = {}
        self.closed = False

    # --- opening and closing ----------------------------------------------------------------

    def open(self) -> None:
        """Bind RTP and RTCP now (OSError if taken); the endpoints come up on the loop."""
        rtp = bind_media_socket(self.local, self._buffer_bytes)
        try:
            rtcp = bind_media_socket((self.local[0], self.local[1] + 1), self._buffer_bytes)
        except OSError:
            rtp.close()
            raise
        self._unserved = [rtp, rtcp]
        self._connecting = self._loop.create_task(self._connect(rtp, rtcp))

    async def _connect(self, rtp: socket.socket, rtcp: socket.socket) -> None:
        await self._serve(rtp, _Endpoint(self._on_rtp, self._rtp_up, self._totals, self._rtp_error))
        await self._serve(rtcp, _Endpoint(self._on_rtcp, self._rtcp_up, self._totals))

    async def _serve(self, sock: socket.socket, endpoint: _Endpoint) -> None:
        if self.closed:  # close() has closed the socket already
            return
        self._unserved.remove(sock)
        try:
            await self._loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
        except OSError as error:
            self._totals.send_error(error)
            sock.close()

    def _rtp_up(self, transport: asyncio.DatagramTransport) -> None:
        """Called before the first datagram can arrive, so echo always has its transport."""
        if self.closed:
            transport.close()
            return
        self._rtp = transport
        waiting, self._waiting = self._waiting, []
        for run in waiting:
            run()

    def _rtcp_up(self, transport: asyncio.DatagramTransport) -> None:
        if self.closed:
            transport.close()
            return
        self._rtcp = transport
        self._rtcp_timer = self._loop.call_later(self._rtcp_interval_s, self._rtcp_tick)

    def _when_open(self, run: Callable[[], None]) -> None:
        if self._rtp is not None:
            run()
        else:
            self._waiting.append(run)

    def close(self) -> None:
        """End everything: our stream with SR+BYE, replays, receive reports; counts stay."""
        if self.closed:
            return
        self.stop_stream()
        self.stop_stream(video=True)
        for replay in self._replays:
            replay.stop()
        self._replays.clear()
        self.closed = True
        self._waiting.clear()
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
        for ssrc in list(self._receivers):
            self._end_receive(ssrc)
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                self._totals.kernel_drops += kernel_drops(transport.get_extra_info("socket"))
                transport.close()
        for sock in self._unserved:
            self._totals.kernel_drops += kernel_drops(sock)
            sock.close()
        self._unserved.clear()

    # --- sending ----------------------------------------------------------------------------

    def play(self, plan: FramePlan, *, video: bool = False, check: EchoCheck | None = None) -> None:
        """Start a stream (audio, or SIPp's video pattern), replacing (and ending) that kind's current one."""
        self.stop_stream(video=video)
        if check is not None:
            self._checks[video] = check
        stream = FrameStream(
            self._loop,
            plan,
            RtpSource(secrets.randbits(32) if video else self.ssrc, plan.clock_rate),
            self._send_to_video_peer if video else self._send_to_peer,
            self._stream_ended,
            self._totals,
            check,
        )
        if video:
            self._video_stream = stream
        else:
            self._stream = stream
        self._totals.stream_started()
        self._when_open(lambda: None if stream.finished else stream.start())

    def pause(self, *, video: bool = False) -> None:
        stream = self._video_stream if video else self._stream
        if stream is not None:
            stream.pause()

    def resume(self, *, video: bool = False) -> None:
        stream = self._video_stream if video else self._stream
        if stream is not None:
            stream.resume()

    def stop_stream(self, *, video: bool = False) -> None:
        stream = self._video_stream if video else self._stream
        if stream is not None:
            stream.stop()
            self._stream_ended(stream)

    def replay(self, pcap: PcapMedia, destination: Address) -> None:
        def send(packet: bytes, octets: int) -> None:
            self._send_rtp(packet, octets, destination)

        replay = PcapReplay(self._loop, pcap.packets, send, self._replay_ended, self._totals)
        self._replays.append(replay)
        self._totals.stream_started()
        self._when_open(lambda: None if replay.finished else replay.start())

    def _replay_ended(self, replay: PcapReplay) -> None:
        self._replays.remove(replay)
        self._totals.stream_ended()

    def _stream_ended(self, stream: FrameStream) -> None:
        if stream is self._video_stream:
            self._video_stream = None
            self._totals.stream_ended()
            return
        if stream is not self._stream:
            return
        self._stream = None
        self._totals.stream_ended()
        if stream.source.packets:
            self._send_rtcp(stream.source, bye=True)
            self.ssrc = secrets.randbits(32)  # a source that said BYE does not come back

    def _send_to_peer(self, packet: bytes, octets: int) -> None:
        if self.peer is not None:
            self._send_rtp(packet, octets, self.peer)

    def _send_to_video_peer(self, packet: bytes, octets: int) -> None:
        if self.video_peer is not None:
            self._send_rtp(packet, octets, self.video_peer)

    def _send_rtp(self, packet: bytes, octets: int, destination: Address) -> bool:
        if self._rtp is None:
            return False
        protected = self._protect(packet, rtcp=False)
        if protected is None:
            return False
        self._rtp.sendto(protected, destination)
        self._totals.rtp_packets_sent += 1
        self._totals.rtp_octets_sent += octets
        return True

    def _protect(self, packet: bytes, *, rtcp: bool) -> bytes | None:
        if self.srtp is None:
            return packet
        try:
            return self.srtp.protect_rtcp(packet) if rtcp else self.srtp.protect(packet)
        except SrtpRejected as rejected:
            self._totals.send_errors[f"SRTP: {rejected}"] += 1
            return None

    # --- receiving --------------------------------------------------------------------------

    def _on_rtp(self, data: bytes, source: Address) -> None:
        plain = self._unprotect(data, rtcp=False)
        if plain is None:
            return
        try:
            header = parse_rtp(plain)
        except ValueError:
            self._totals.malformed_rtp += 1
            return
        octets = len(plain) - header.header_length - header.padding_bytes
        self._totals.rtp_packets_received += 1
        self._totals.rtp_octets_received += octets
        stats = self._receivers.get(header.ssrc)
        if stats is None:
            clock = _CLOCK_BY_PAYLOAD_TYPE.get(header.payload_type, _DEFAULT_CLOCK_HZ)
            stats = self._receivers[header.ssrc] = ReceiveStats(header.ssrc, clock, header.payload_type)
            self._sources[header.ssrc] = source
        stats.record(header.sequence, header.timestamp, octets, self._loop.time())
        if self._checks:
            start = header.header_length
            self._check_echo(header.ssrc, header.sequence, plain[start : start + octets])
        if self.echo and self._send_rtp(plain[: self._echo_limit], octets, source):
            self._totals.echoed_packets += 1

    def _check_echo(self, ssrc: int, sequence: int, payload: bytes) -> None:
        """An echo of the video pattern carries its SSRC back; anything else checks the audio."""
        video = self._video_stream is not None and self._video_stream.source.ssrc == ssrc
        check = self._checks.get(video)
        if check is not None:
            check.echo_arrived(sequence, payload)

    def _rtp_error(self) -> None:
        if self.echo:
            self.echo_errors += 1

    def _on_rtcp(self, data: bytes, _source: Address) -> None:
        plain = self._unprotect(data, rtcp=True)
        if plain is None:
            return
        try:
            packets = parse_compound(plain)
        except ValueError:
            self._totals.malformed_rtcp += 1
            return
        self._totals.rtcp_packets_received += 1
        now = self._loop.time()
        for packet in packets:
            if isinstance(packet, SenderReport) and packet.ssrc in self._receivers:
                self._receivers[packet.ssrc].note_sender_report(packet.ntp_timestamp, now)
            elif isinstance(packet, Bye):
                for ssrc in packet.sources:
                    self._end_receive(ssrc)

    def _unprotect(self, data: bytes, *, rtcp: bool) -> bytes | None:
        if self.srtp is None:
            if self.srtp_required:
                self._totals.srtp_rejected[_NO_SRTP_KEYS] += 1
                return None
            return data
        try:
            return self.srtp.unprotect_rtcp(data) if rtcp else self.srtp.unprotect(data)
        except SrtpRejected as rejected:
            self._totals.srtp_rejected[str(rejected)] += 1
            return None

    def _end_receive(self, ssrc: int) -> None:
        stats = self._receivers.pop(ssrc, None)
        if stats is not None:
            self._on_receive_end(stats, self._sources.pop(ssrc, None))

    def receivers(self) -> list[tuple[ReceiveStats, Address | None]]:
        return [(stats, self._sources.get(ssrc)) for ssrc, stats in self._receivers.items()]

    # --- RTCP -------------------------------------------------------------------------------

    def _rtcp_tick(self) -> None:
        stream = self._stream
        self._send_rtcp(stream.source if stream is not None and stream.source.packets else None, bye=False)
        self._rtcp_timer = self._loop.call_later(self._rtcp_interval_s, self._rtcp_tick)

    def _send_rtcp(self, source: RtpSource | None, *, bye: bool) -> None:
        """One compound: SR (if source has sent) or RR, SDES CNAME, and BYE when asked."""
        if self._rtcp is None or self.peer is None:
            return
        now = self._loop.time()
        blocks = tuple(
            stats.report_block(now) for stats in list(self._receivers.values())[:MAX_REPORT_BLOCKS]
        )
        ssrc = source.ssrc if source is not None else self.ssrc
        packets: list[RtcpPacket] = []
        if source is not None:
            packets.append(
                SenderReport(
                    ssrc=ssrc,
                    ntp_timestamp=ntp_timestamp(time.time()),
                    rtp_timestamp=source.timestamp_at(now),
                    packet_count=source.packets,
                    octet_count=source.octets,
                    reports=blocks,
                )
            )
            self._totals.rtcp_sender_reports += 1
        else:
            packets.append(ReceiverReport(ssrc, blocks))
            self._totals.rtcp_receiver_reports += 1
        packets.append(SourceDescription(((ssrc, self._cname),)))
        if bye:
            packets.append(Bye((ssrc,)))
        data = self._protect(encode_compound(packets), rtcp=True)
        if data is not None:
            self._rtcp.sendto(data, (self.peer[0], self.peer[1] + 1))


def bind_media_socket(address: Address, buffer_bytes: int | None = None) -> socket.socket:
    """-rtp_buffsize's buffers when given; else large ones, as the scale engine's, so that a
    burst waits in the kernel instead of being dropped there (the kernel caps the size at
    net.core.rmem_max / wmem_max)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            if buffer_bytes is not None:
                sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)
            else:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def kernel_drops(sock: SocketLike | None) -> int:
    """How many datagrams the kernel dropped at this socket because its receive buffer was
    full (sk_drops, as /proc/net/udp's "drops" column shows it): SO_MEMINFO's last field,
    read in one call for any event loop's socket. 0 where the kernel cannot say (not Linux,
    before 4.6)."""
    if sock is None or not sys.platform.startswith("linux"):
        return 0
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO_BYTES)
    except (OSError, ValueError):
        return 0
    if len(raw) < _MEMINFO_BYTES:
        return 0
    return int(struct.unpack_from("=I", raw, _MEMINFO_DROPS * 4)[0])
