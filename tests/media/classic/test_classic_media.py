"""ClassicMedia end to end on loopback: real sockets, both event loops, two managers or a raw peer."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from pathlib import Path

import pytest

from gossipper.cli.compile import run_settings
from gossipper.cli.config import Config
from gossipper.cli.ports import LOOPBACK, free_port
from gossipper.errors import FileProblem
from gossipper.media.classic.manager import ClassicMedia
from gossipper.media.classic.rtcp import (
    Bye,
    ReceiverReport,
    SenderReport,
    SourceDescription,
    ntp_middle,
    ntp_timestamp,
    ntp_to_unix,
    parse_compound,
)
from gossipper.media.classic.session import SOCKET_BUFFER_BYTES, bind_media_socket
from gossipper.media.classic.srtp import SUITE_32, SUITE_80, CryptoAttribute, SrtpContext
from gossipper.media.rtp import parse_rtp
from gossipper.scenario import model
from gossipper.stats.counters import MediaCounters, RunCounters
from gossipper.stats.summary import summary_dict
from tests.media.classic.helpers import (
    RUNNERS,
    Peer,
    Runner,
    manager,
    open_peer,
    rtp_packet,
    rtp_stream,
    sdp,
    until,
    write_pcap,
    write_wav,
)


def rtcp_of(peer: Peer) -> list[list[object]]:
    return [list(parse_compound(data)) for data in peer.datagrams]


@RUNNERS
def test_wav_stream_echoed_back(run: Runner, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "hello.wav", bytes(range(256)) * 10)  # 2560 bytes: 16 frames
    port = free_port(count=4)

    async def scenario() -> None:
        uac, uas = manager(), manager(rtp_echo=True)
        uac.start(LOOPBACK)
        uas.start(LOOPBACK)
        uas.call_started("uas-call", port + 2)
        uas.remote_sdp_changed("uas-call", sdp(port))
        assert uac.action("uac-call", port, sdp(port + 2), rtp_stream(f"{wav},2")) is None
        await until(lambda: uac.totals.rtp_packets_received == 32)
        await until(lambda: uas.totals.rtcp_packets_received > 0)
        assert uac.totals.rtp_packets_sent == 32 and uac.totals.rtp_octets_sent == 32 * 160
        assert uas.totals.echoed_packets == 32
        [back] = uac.stream_reports()
        assert (back["packets"], back["expected"], back["lost"], back["duplicates"]) == (32, 32, 0, 0)
        assert back["payload_type"] == 0
        assert 0.0 <= float(back["jitter_ms"]) < 20.0  # type: ignore[arg-type]
        [there] = uas.stream_reports()
        assert (there["packets"], there["lost"], there["out_of_order"]) == (32, 0, 0)

        probe = await open_peer(port + 4)  # what comes back is byte for byte what went
        assert probe.transport is not None
        packet = rtp_packet(7, 1120, 0x5151, b"echo me" * 20)
        probe.transport.sendto(packet, (LOOPBACK, port + 2))
        await until(lambda: probe.datagrams == [packet])
        probe.close()

        media = MediaCounters()
        uac.snapshot_into(media)
        uac.snapshot_into(media)  # adds, never replaces
        assert media.rtp_packets_sent == 64 and media.rtp_packets_received == 64
        assert media.engine == "classic"
        uac.call_ended("uac-call")
        uas.call_ended("uas-call")
        assert len(uac.stream_reports()) == 1  # the ended stream's report stays
        uac.close()
        uas.close()

    run(scenario())


@RUNNERS
def test_rtcp_reports_match_what_was_sent(run: Runner) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager(interval_s=0.15)
        media.start(LOOPBACK)
        rtp_peer, rtcp_peer = await open_peer(port + 2), await open_peer(port + 3)
        assert rtp_peer.transport is not None and rtcp_peer.transport is not None
        assert media.action("c1", port, sdp(port + 2), rtp_stream("synthetic,0,0,PCMU/8000,20,600")) is None
        # Once our port is bound the peer sends too (0..9 without 5, then an SR): blocks to report.
        for sequence in (0, 1, 2, 3, 4, 6, 7, 8, 9):
            rtp_peer.transport.sendto(
                rtp_packet(sequence, sequence * 160, 0xFEED, bytes(160)), (LOOPBACK, port)
            )
        peer_sr_ntp = ntp_timestamp(time.time())
        rtcp_peer.transport.sendto(bytes(SenderReport(0xFEED, peer_sr_ntp, 0, 9, 1440)), (LOOPBACK, port + 1))

        await until(lambda: any(isinstance(p, Bye) for c in rtcp_of(rtcp_peer) for p in c))
        await until(lambda: any(isinstance(c[0], ReceiverReport) for c in rtcp_of(rtcp_peer)[-1:]))

        rtp = [(parse_rtp(data), at) for data, at, _ in rtp_peer.items]
        assert len(rtp) == 30
        ssrc = rtp[0][0].ssrc
        compounds = list(zip(rtcp_peer.items, rtcp_of(rtcp_peer), strict=True))
        reports = [(c[0], item[1]) for item, c in compounds if isinstance(c[0], SenderReport)]
        assert len(reports) >= 3  # two periodic and the last one with BYE
        for report, arrived in reports:
            assert isinstance(report, SenderReport) and report.ssrc == ssrc
            seen = sum(1 for _, at in rtp if at <= arrived)
            assert seen - 2 <= report.packet_count <= seen + 1
            assert report.octet_count == 160 * report.packet_count
            last_ts = rtp[report.packet_count - 1][0].timestamp
            assert 0 <= (report.rtp_timestamp - last_ts) % (1 << 32) <= 3 * 160
            assert abs(ntp_to_unix(report.ntp_timestamp) - time.time()) < 5
            [block] = report.reports
            assert (block.ssrc, block.highest_sequence, block.cumulative_lost) == (0xFEED, 9, 1)
            assert block.last_sr == ntp_middle(peer_sr_ntp)
        for _, compound in compounds:
            assert isinstance(compound[1], SourceDescription)
            assert compound[1].cnames[0][0] == compound[0].ssrc  # type: ignore[attr-defined]
        final = next(c for _, c in compounds if isinstance(c[-1], Bye))
        assert isinstance(final[0], SenderReport) and final[0].packet_count == 30
        assert final[-1] == Bye((ssrc,))
        after = rtcp_of(rtcp_peer)[-1][0]
        assert isinstance(after, ReceiverReport) and after.ssrc != ssrc  # a new source after BYE
        assert media.totals.rtcp_sender_reports >= 3 and media.totals.rtcp_receiver_reports >= 1
        media.close()
        rtp_peer.close()
        rtcp_peer.close()

    run(scenario())


@RUNNERS
def test_pause_resume_stop(run: Runner) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager()
        media.start(LOOPBACK)
        peer = await open_peer(port + 2)
        remote = sdp(port + 2)
        assert media.action("c", port, remote, rtp_stream("synthetic,0,8,PCMA/8000,20")) is None
        await until(lambda: len(peer.items) >= 10)
        assert media.action("c", port, remote, rtp_stream("pause")) is None
        paused_at = len(peer.items)
        await asyncio.sleep(0.3)
        assert len(peer.items) <= paused_at + 1
        before_resume = len(peer.items)
        assert media.action("c", port, remote, rtp_stream("resume")) is None
        await until(lambda: len(peer.items) >= before_resume + 10)
        assert media.action("c", port, remote, rtp_stream("stop")) is None
        stopped_at = len(peer.items)
        await asyncio.sleep(0.1)
        assert len(peer.items) == stopped_at
        headers = [parse_rtp(data) for data in peer.datagrams]
        assert {h.payload_type for h in headers} == {8}
        assert all(data[12:] == b"\xd5" * 160 for data in peer.datagrams)
        for previous, current in itertools.pairwise(headers):
            assert current.sequence == (previous.sequence + 1) & 0xFFFF
        markers = [index for index, h in enumerate(headers) if h.marker]
        assert markers == [0, before_resume]
        jump = (headers[before_resume].timestamp - headers[before_resume - 1].timestamp) % (1 << 32)
        assert 0.25 * 8000 <= jump <= 1.0 * 8000  # the pause moved the timestamp on, by whole slots
        assert jump % 160 == 0
        media.close()
        peer.close()

    run(scenario())


@RUNNERS
@pytest.mark.parametrize("link", ["ethernet", "sll", "vlan"])
def test_pcap_replay_keeps_payloads_and_timing(run: Runner, tmp_path: Path, link: str) -> None:
    offsets = [0.0, 0.020, 0.040, 0.140, 0.160, 0.400]
    packets = [(o, rtp_packet(100 + i, i * 160, 0x77, bytes([i]) * 160, pt=8)) for i, o in enumerate(offsets)]
    capture = write_pcap(tmp_path / f"{link}.pcap", link, packets)
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager()
        media.start(LOOPBACK)
        peer = await open_peer(port + 2)
        action = model.Exec(line=1, play_pcap_audio=str(capture))
        assert media.action("c", port, sdp(port + 2), action) is None
        await until(lambda: len(peer.items) == len(packets))
        assert peer.datagrams == [data for _, data in packets]
        assert {source for _, _, source in peer.items} == {(LOOPBACK, port)}  # from the call's port
        # Paced as captured: against the schedule anchored where it fits best, no packet is
        # more than 60 ms late (all at once would put the first 400 ms behind the last). The
        # peer reads on the same loop, so one late read delays one arrival and not the rest.
        arrivals = [at for _, at, _ in peer.items]
        base = min(at - offset for at, offset in zip(arrivals, offsets, strict=True))
        lateness = [at - offset - base for at, offset in zip(arrivals, offsets, strict=True)]
        assert max(lateness) <= 0.060, lateness
        await until(lambda: media.totals.streams_active == 0)
        assert media.totals.rtp_packets_sent == 6 and media.totals.rtp_octets_sent == 6 * 160
        media.close()
        peer.close()

    run(scenario())


@RUNNERS
def test_pcap_video_goes_to_the_video_port(run: Runner, tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "v.pcap", "sll2", [(0.0, rtp_packet(1, 0, 9, b"v" * 50, pt=96))])
    port = free_port(count=6)

    async def scenario() -> None:
        media = manager()
        media.start(LOOPBACK)
        video = await open_peer(port + 4)
        action = model.Exec(line=1, play_pcap_video=str(capture))
        assert media.action("c", port, sdp(port + 2, video_port=port + 4), action) is None
        await until(lambda: len(video.items) == 1)
        failure = media.action("d", port + 2, sdp(port), action)  # no m=video in that SDP
        assert failure == ("parse_error", "play_pcap_video: SDP has no m=video line")
        media.close()
        video.close()

    run(scenario())


@RUNNERS
def test_srtp_between_two_managers(run: Runner, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", b"\x11" * 1600, format_tag=6)  # PCMA, 10 frames
    port = free_port(count=6)

    async def scenario() -> None:
        uac, uas = (
            manager(media_srtp=True, interval_s=0.1),
            manager(media_srtp=True, rtp_echo=True, interval_s=0.1),
        )
        uac.start(LOOPBACK)
        uas.start(LOOPBACK)
        offer = uac.local_crypto_attribute("A")
        assert offer.startswith("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
        assert uac.local_crypto_attribute("A") == offer  # one key per call
        assert uac.local_crypto_attribute("other call") != offer
        uas.call_started("B", port + 2)
        uas.remote_sdp_changed("B", sdp(port, offer))
        answer = uas.local_crypto_attribute("B")
        assert answer.split(" inline:")[0] == offer.split(" inline:")[0] and answer != offer

        assert uac.action("A", port, sdp(port + 2, answer), rtp_stream(f"{wav},1")) is None
        await until(lambda: uac.totals.rtp_packets_received == 10)  # through the far side and back
        await until(lambda: uas.totals.rtcp_packets_received > 0)  # SRTCP authenticated too
        assert not uac.totals.srtp_rejected and not uas.totals.srtp_rejected
        [report] = uac.stream_reports()
        assert (report["packets"], report["lost"], report["payload_type"]) == (10, 0, 8)

        # A packet under the UAC's key, one bit flipped: counted, not delivered, not echoed.
        as_uac = SrtpContext(CryptoAttribute.parse(offer), CryptoAttribute.parse(answer))
        tampered = bytearray(as_uac.protect(rtp_packet(40000, 0, 0x4242, b"\x22" * 160, pt=8)))
        tampered[30] ^= 0x01
        received, echoed = uas.totals.rtp_packets_received, uas.totals.echoed_packets
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind((LOOPBACK, port + 4))
            raw.sendto(bytes(tampered), (LOOPBACK, port + 2))
            raw.sendto(rtp_packet(40001, 0, 0x4242, b"\x22" * 160, pt=8), (LOOPBACK, port + 2))  # cleartext
        await until(lambda: sum(uas.totals.srtp_rejected.values()) == 2)
        assert uas.totals.srtp_rejected["authentication failure"] == 2
        assert (uas.totals.rtp_packets_received, uas.totals.echoed_packets) == (received, echoed)
        uac.close()
        uas.close()

    run(scenario())


@RUNNERS
@pytest.mark.parametrize("suite", [SUITE_80, SUITE_32])
def test_srtp_answer_to_a_peer_offer(run: Runner, suite: str) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager(media_srtp=True, rtp_echo=True)
        media.start(LOOPBACK)
        offer = CryptoAttribute.new(suite, tag=4)
        media.call_started("B", port)
        media.remote_sdp_changed("B", sdp(port + 2, str(offer)))
        answer = CryptoAttribute.parse(media.local_crypto_attribute("B"))
        assert (answer.tag, answer.suite) == (4, suite)
        peer = await open_peer(port + 2)
        assert peer.transport is not None
        context = SrtpContext(offer, answer)
        sent = [rtp_packet(i, i * 160, 0x99, bytes([i]) * 160) for i in range(5)]
        for packet in sent:
            peer.transport.sendto(context.protect(packet), (LOOPBACK, port))
        await until(lambda: len(peer.items) == 5)
        assert [context.unprotect(data) for data in peer.datagrams] == sent
        media.close()
        peer.close()

    run(scenario())


@RUNNERS
def test_failures_are_reported_not_raised(run: Runner, tmp_path: Path) -> None:
    not_wav = tmp_path / "song.wav"
    not_wav.write_bytes(b"ID3 mp3 data")
    cut = write_pcap(tmp_path / "cut.pcap", "ethernet", [(0.0, rtp_packet(1, 0, 1, bytes(160)))])
    cut.write_bytes(cut.read_bytes()[:-10])
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager()
        media.start(LOOPBACK)
        synthetic = rtp_stream("synthetic")
        assert media.action("a", port, None, synthetic) == (
            "parse_error",
            "rtp_stream: the peer sent no SDP to take the RTP address from",
        )
        assert media.action("b", port, b"v=0\r\n", synthetic) == (
            "parse_error",
            "rtp_stream: SDP has no m=audio line",
        )
        failure = media.action("c", port, sdp(port + 2), rtp_stream(str(not_wav)))
        assert failure is not None and failure[0] == "scenario_error"
        assert f"{not_wav}: not a WAV file" in failure[1]
        failure = media.action("d", port, sdp(port + 2), model.Exec(line=1, play_pcap_audio=str(cut)))
        assert failure is not None and "cut.pcap: pcap record 1 is truncated" in failure[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind((LOOPBACK, port + 3))
            failure = media.action("e", port + 2, sdp(port), synthetic)
        assert failure is not None and failure[0] == "transport_error" and f":{port + 2}/" in failure[1]
        assert media.action("never-started", port, None, rtp_stream("stop")) is None
        media.close()

        srtp = manager(media_srtp=True)
        srtp.local_crypto_attribute("s")
        failure = srtp.action("s", port, sdp(port + 2), synthetic)
        assert failure is not None and failure[0] == "parse_error" and "no a=crypto line" in failure[1]
        srtp.close()

    run(scenario())


@RUNNERS
def test_call_ended_before_the_sockets_are_served(run: Runner) -> None:
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager()
        media.start(LOOPBACK)
        assert media.action("c", port, sdp(port + 2), rtp_stream("synthetic")) is None
        media.call_ended("c")  # same loop iteration: nothing handed to the loop yet
        await asyncio.sleep(0.05)
        for offset in (0, 1):  # both ports are free again
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((LOOPBACK, port + offset))
        assert media.totals.rtp_packets_sent == 0 and media.totals.streams_active == 0
        media.close()

    run(scenario())


def test_preload_fails_on_bad_files(tmp_path: Path) -> None:
    stereo = write_wav(tmp_path / "stereo.wav", bytes(320), channels=2)

    loop = asyncio.new_event_loop()
    try:
        media = ClassicMedia(run_settings(Config()).media, loop)
        with pytest.raises(FileProblem, match=r"stereo\.wav: WAV has 2 channels"):
            media.preload([rtp_stream(f"{stereo},1")])
        with pytest.raises(FileProblem, match=r"nothere\.pcap: cannot read"):
            media.preload([model.Exec(line=1, play_pcap_audio=str(tmp_path / "nothere.pcap"))])
        media.preload([rtp_stream("synthetic")])  # nothing to load
    finally:
        loop.close()


def _proc_udp_drops(port: int) -> int:
    """The kernel's own count, /proc/net/udp's "drops" column, for the sockets bound to this port."""
    drops = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            drops += int(fields[-1])
    return drops


@RUNNERS
def test_malformed_rtcp_reaches_the_run_counters_and_summary(run: Runner) -> None:
    """Counted by the session all along, it used to stop there: never in JSON, screen or CSV."""
    port = free_port(count=4)

    async def scenario() -> None:
        media = manager(rtp_echo=True)
        media.start(LOOPBACK)
        media.call_started("c1", port)
        peer = await open_peer(port + 3)
        assert peer.transport is not None
        for junk in (b"\x00not RTCP", b"\x81\xc9\x00\x07short"):
            peer.transport.sendto(junk, (LOOPBACK, port + 1))
        peer.transport.sendto(bytes(ReceiverReport(0xFEED, ())), (LOOPBACK, port + 1))
        await until(lambda: media.totals.malformed_rtcp == 2 and media.totals.rtcp_packets_received == 1)
        counters = RunCounters()
        media.snapshot_into(counters.media)
        assert counters.media.malformed_rtcp == 2
        assert summary_dict(counters, "x")["media"]["malformed_rtcp"] == 2  # type: ignore[index]
        media.close()
        peer.close()

    run(scenario())


@RUNNERS
def test_datagrams_the_kernel_drops_at_a_full_media_socket_are_counted(run: Runner) -> None:
    """A burst bigger than the receive buffer (-rtp_buffsize 4096) while the loop is busy: what
    the kernel dropped is counted when the call's media closes, as /proc/net/udp counts it,
    so that every datagram sent is either received or counted as dropped."""
    port = free_port(count=2)
    burst = 300

    async def scenario() -> None:
        media = manager(rtp_echo=True, rtp_buffer_bytes=4096)
        media.start(LOOPBACK)
        media.call_started("c1", port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind((LOOPBACK, 0))
            peer.sendto(rtp_packet(0, 0, 0xD0D0, bytes(160)), (LOOPBACK, port))
            await until(lambda: media.totals.rtp_packets_received == 1)  # the socket is being read
            for sequence in range(1, burst + 1):  # the loop reads none of these meanwhile
                peer.sendto(rtp_packet(sequence, sequence * 160, 0xD0D0, bytes(1000)), (LOOPBACK, port))
            dropped = _proc_udp_drops(port)
            assert dropped > 0
            await until(lambda: media.totals.rtp_packets_received + dropped == burst + 1)  # the rest is read
            media.call_ended("c1")
        totals = media.totals
        assert totals.kernel_drops == dropped
        assert totals.rtp_packets_received + totals.kernel_drops == burst + 1
        counters = RunCounters()
        media.snapshot_into(counters.media)
        assert counters.media.rtp_kernel_drops == dropped
        assert summary_dict(counters, "x")["media"]["rtp_kernel_drops"] == dropped  # type: ignore[index]
        media.close()

    run(scenario())


def test_media_sockets_get_large_receive_buffers_unless_told() -> None:
    """The kernel's default (about 208 kB) dropped bursts: as the scale engine's, 1 MiB is asked
    (the kernel caps it at net.core.rmem_max and reports twice what it grants)."""
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    with bind_media_socket((LOOPBACK, 0)) as sock:
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert granted == 2 * min(SOCKET_BUFFER_BYTES, rmem_max)
    with bind_media_socket((LOOPBACK, 0), 4096) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 4096
