"""Media as SIPp does it, against the real SIPp (Debian's 3.6.1) where it has the feature, and
against a scripted loopback peer reproducing SIPp's source where it does not: SIPp's rtpcheck
of echoed patterns and exit 253, exec rtp_echo, a media port pair in use, a multipart SDP,
and the codecs' own packet interval."""

from __future__ import annotations

import itertools
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from gossipper.scenario.builtins import dump_builtin
from tests.e2e.processes import SIPP, GossipperUas, SippUac, SippUas, gossipper_command, needs_sipp, read_json

HOLD_MS = 1000


def _uac_playing(tmp_path: Path, value: str) -> Path:
    """The uac built-in playing rtp_stream=`value` after its ACK, held HOLD_MS."""
    text = dump_builtin("uac").replace(
        "<pause/>",
        f'<nop><action><exec rtp_stream="{value}"/></action></nop>\n  <pause milliseconds="{HOLD_MS}"/>',
    )
    path = tmp_path / "uac_media.xml"
    path.write_text(text)
    return path


def _run_uac(
    tmp_path: Path, port: int, *extra: str, value: str = "apattern"
) -> subprocess.CompletedProcess[str]:
    """gossipper's UAC run to its end in tmp_path (where -rtpcheck_debug writes), its summary in uac.json."""
    command = gossipper_command(
        "-sf",
        str(_uac_playing(tmp_path, value)),
        f"{LOOPBACK}:{port}",
        "-i",
        LOOPBACK,
        "-m",
        "2",
        "-r",
        "10",
        "-summary_json",
        str(tmp_path / "uac.json"),
        "-nostdin",
        *extra,
    )
    if "-mp" not in extra:
        command += ["-mp", str(free_ports_below_ephemeral(4, start=26000))]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def _echoing_sipp(sipp_uas: SippUas, tmp_path: Path, *extra: str) -> int:
    return sipp_uas(
        "-sn", "uas", "-i", LOOPBACK, "-mp", str(free_ports_below_ephemeral(2)), *extra, cwd=tmp_path
    ).port


@needs_sipp
def test_a_pattern_echoed_by_sipp_passes_the_rtp_check(tmp_path: Path, sipp_uas: SippUas) -> None:
    port = _echoing_sipp(sipp_uas, tmp_path, "-rtp_echo")
    result = _run_uac(tmp_path, port, "-rtpcheck_debug")
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "uac.json")
    assert summary["success_calls"] == 2
    media = summary["media"]
    assert isinstance(media, dict) and media["rtp_packets_received"] >= 2 * 40
    verdicts = [line for line in (tmp_path / "debugafile").read_text().splitlines() if " rtpcheck " in line]
    assert len(verdicts) == 2 and all(" rtpcheck passed: " in line for line in verdicts)


@needs_sipp
def test_a_pattern_nobody_echoes_exits_253_though_every_call_succeeded(
    tmp_path: Path, sipp_uas: SippUas
) -> None:
    port = _echoing_sipp(sipp_uas, tmp_path)  # no -rtp_echo: SIPp's media port takes RTP and keeps it
    result = _run_uac(tmp_path, port)
    assert result.returncode == 253, result.stderr
    summary = read_json(tmp_path / "uac.json")
    assert (summary["success_calls"], summary["failed_calls"]) == (2, 0)


@pytest.fixture
def spoiling_peer() -> Iterator[Callable[[], int]]:
    """A loopback RTP peer that echoes as SIPp's echo does, with every even-numbered packet's
    payload inverted: what SIPp 3.6.1 cannot be made to do, as its echo never changes a byte."""
    stop = threading.Event()
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def serve(sock: socket.socket) -> None:
        while not stop.is_set():
            try:
                data, source = sock.recvfrom(2048)
            except TimeoutError:
                continue
            if len(data) > 12 and struct.unpack_from("!H", data, 2)[0] % 2 == 0:
                data = data[:12] + bytes(byte ^ 0xFF for byte in data[12:])
            sock.sendto(data, source)

    def start() -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.settimeout(0.1)
        sockets.append(sock)
        thread = threading.Thread(target=serve, args=(sock,), daemon=True)
        thread.start()
        threads.append(thread)
        return int(sock.getsockname()[1])

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=2)
    for sock in sockets:
        sock.close()


def _sipp_uas_pointing_media_at(tmp_path: Path, media_port: int) -> Path:
    """SIPp's own uas scenario, its SDP naming another port (the scripted media peer's)."""
    assert SIPP is not None
    text = subprocess.run([SIPP, "-sd", "uas"], capture_output=True, text=True).stdout
    assert "m=audio [media_port] " in text
    path = tmp_path / "uas_media_elsewhere.xml"
    path.write_text(text.replace("m=audio [media_port] ", f"m=audio {media_port} "))
    return path


@needs_sipp
@pytest.mark.parametrize(("tolerance", "status"), [("0.75", 0), ("0.25", 253)])
def test_audiotolerance_against_a_peer_spoiling_half_the_echoes(
    tmp_path: Path, sipp_uas: SippUas, spoiling_peer: Callable[[], int], tolerance: str, status: int
) -> None:
    scenario = _sipp_uas_pointing_media_at(tmp_path, spoiling_peer())
    port = sipp_uas(
        "-sf", str(scenario), "-i", LOOPBACK, "-mp", str(free_ports_below_ephemeral(2)), cwd=tmp_path
    ).port
    result = _run_uac(tmp_path, port, "-audiotolerance", tolerance, "-rtpcheck_debug")
    assert result.returncode == status, result.stderr
    assert read_json(tmp_path / "uac.json")["success_calls"] == 2
    lines = (tmp_path / "debugafile").read_text().splitlines()
    assert sum("payload differs" in line for line in lines) >= 2 * 15


def _wav(path: Path, seconds: float) -> Path:
    samples = bytes(index % 256 for index in range(int(8000 * seconds)))
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    data = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(data) + len(samples)) + data + samples)
    return path


def _echoed_by_gossipper_uas(
    tmp_path: Path,
    gossipper_uas: GossipperUas,
    sipp_uac: SippUac,
    before_ack: str,
    after_bye: str = "",
    *flags: str,
) -> int:
    """SIPp's UAC plays a file (rtp_stream, 3.6.1's form) toward gossipper's uas built-in with
    `before_ack` actions after its 200 OK and `after_bye` ones after the BYE; both ends must
    succeed. Returns how many packets gossipper echoed."""
    uas_scenario = dump_builtin("uas").replace(
        '<recv request="ACK"', f'<nop><action>{before_ack}</action></nop>\n  <recv request="ACK"'
    )
    if after_bye:
        uas_scenario = uas_scenario.replace(
            '<recv request="BYE"/>', f'<recv request="BYE"/>\n  <nop><action>{after_bye}</action></nop>'
        )
    (tmp_path / "uas_echo.xml").write_text(uas_scenario)
    uas = gossipper_uas(
        *flags,
        "-sf",
        str(tmp_path / "uas_echo.xml"),
        "-i",
        LOOPBACK,
        "-mp",
        str(free_ports_below_ephemeral(4, start=27000)),
        "-m",
        "1",
        "-summary_json",
        str(tmp_path / "uas.json"),
        "-trace_err",
        "-error_file",
        str(tmp_path / "uas_errors.log"),
    )
    assert SIPP is not None
    wav = _wav(tmp_path / "tone.wav", 1.0)
    text = subprocess.run([SIPP, "-sd", "uac"], capture_output=True, text=True).stdout
    text = text.replace(
        "<pause/>",
        f'<nop><action><exec rtp_stream="{wav},1,0"/></action></nop>\n<pause milliseconds="1500"/>',
    )
    (tmp_path / "sipp_uac.xml").write_text(text)
    sipp = sipp_uac(
        "-sf", str(tmp_path / "sipp_uac.xml"), f"{LOOPBACK}:{uas.port}",
        "-i", LOOPBACK, "-p", str(free_port()),
        "-mp", str(free_ports_below_ephemeral(2, start=28000)), "-m", "1", cwd=tmp_path,
    )  # fmt: skip
    assert sipp.wait(timeout=30) == 0
    errors = tmp_path / "uas_errors.log"
    assert uas.wait(timeout=30) == 0, errors.read_text() if errors.exists() else ""
    media = read_json(tmp_path / "uas.json")["media"]
    assert isinstance(media, dict)
    return int(media["receive"]["echoed_packets"])


@needs_sipp
def test_exec_rtp_echo_sends_back_sipps_rtp_stream(
    tmp_path: Path, gossipper_uas: GossipperUas, sipp_uac: SippUac
) -> None:
    """Echo between exec rtp_echo startaudio and stopaudio: 50 packets in the second, all but a few."""
    echoed = _echoed_by_gossipper_uas(
        tmp_path,
        gossipper_uas,
        sipp_uac,
        '<exec rtp_echo="startaudio,0,PCMU/8000"/>',
        '<exec rtp_echo="stopaudio"/>',
    )
    assert echoed >= 40


@needs_sipp
@pytest.mark.parametrize(
    ("switch", "echoes"),
    [
        ('<rtp_echo value="0"/>', False),
        ('<assign assign_to="on" value="1"/><rtp_echo variable="on"/>', True),
        ('<assign assign_to="on" value="0"/><rtp_echo variable="on"/>', False),
    ],
)
def test_rtp_echo_action_switches_the_runs_rtp_echo(
    tmp_path: Path, gossipper_uas: GossipperUas, sipp_uac: SippUac, switch: str, echoes: bool
) -> None:
    echoed = _echoed_by_gossipper_uas(tmp_path, gossipper_uas, sipp_uac, switch, "", "-rtp_echo")
    assert (echoed >= 40) if echoes else (echoed == 0)


@needs_sipp
def test_a_media_port_pair_in_use_moves_the_call_to_the_next_pair(tmp_path: Path, sipp_uas: SippUas) -> None:
    port = _echoing_sipp(sipp_uas, tmp_path, "-rtp_echo")
    base = free_ports_below_ephemeral(6, start=29000)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((LOOPBACK, base + 1))  # the first call's RTCP port: its pair is taken
    try:
        result = _run_uac(
            tmp_path, port, "-mp", str(base), "-trace_msg", "-message_file", str(tmp_path / "messages.log"),
            "-trace_err", "-error_file", str(tmp_path / "errors.log"),
        )  # fmt: skip
    finally:
        squatter.close()
    assert result.returncode == 0, result.stderr
    assert read_json(tmp_path / "uac.json")["success_calls"] == 2
    offers = (tmp_path / "messages.log").read_text()
    assert f"m=audio {base + 2} RTP/AVP" in offers and f"m=audio {base} RTP/AVP" not in offers
    assert f"media ports {base}/{base + 1} are in use" in (tmp_path / "errors.log").read_text()


def _sipp_uas_answering_multipart(tmp_path: Path) -> Path:
    """SIPp's uas scenario whose 200 OK carries its SDP beside a PIDF, in a multipart/mixed body."""
    assert SIPP is not None
    text = subprocess.run([SIPP, "-sd", "uas"], capture_output=True, text=True).stdout
    start = text.index("Content-Type: application/sdp")
    sdp_start = text.index("v=0", start)
    sdp_end = text.index("]]>", sdp_start)
    sdp = text[sdp_start:sdp_end].rstrip()
    body = (
        "--xyz42\nContent-Type: application/pidf+xml\n\n<presence/>\n"
        f"--xyz42\nContent-Type: application/sdp\n\n{sdp}\n--xyz42--\n"
    )
    path = tmp_path / "uas_multipart.xml"
    header_end = text.index("\n", start)
    path.write_text(
        text[:start] + 'Content-Type: multipart/mixed;boundary="xyz42"' + text[header_end:sdp_start] + body
        + "    " + text[sdp_end:]
    )  # fmt: skip
    return path


@needs_sipp
def test_an_sdp_in_a_multipart_body_is_where_the_rtp_goes(tmp_path: Path, sipp_uas: SippUas) -> None:
    scenario = _sipp_uas_answering_multipart(tmp_path)
    port = sipp_uas(
        "-sf",
        str(scenario),
        "-i",
        LOOPBACK,
        "-mp",
        str(free_ports_below_ephemeral(2)),
        "-rtp_echo",
        cwd=tmp_path,
    ).port
    result = _run_uac(tmp_path, port)
    assert result.returncode == 0, result.stderr


def test_ilbc_and_h264_keep_their_own_interval_without_rtp_freq(tmp_path: Path) -> None:
    """-rtp_send: ILBC packets 30 ms apart, stepping 240; H264 33 ms, stepping 3000."""
    for codec, interval, step in (("ILBC/8000", 0.030, 240), ("H264/90000", 0.033, 3000)):
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((LOOPBACK, 0))
        sink.settimeout(5)
        try:
            command = gossipper_command(
                "-rtp_send", "-rtp_addr", f"{LOOPBACK}:{sink.getsockname()[1]}", "-rtp_codec", codec,
                "-rtp_dur", "600", "-mp", str(free_ports_below_ephemeral(2, start=30000)), "-nostdin",
            )  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, result.stderr
            sink.settimeout(0.5)
            packets = []
            try:
                while True:
                    packets.append(sink.recv(4096))
            except TimeoutError:
                pass
        finally:
            sink.close()
        assert round(0.6 / interval) - 2 <= len(packets) <= round(0.6 / interval) + 1
        stamps = [struct.unpack_from("!I", packet, 4)[0] for packet in packets]
        assert all((b - a) % (1 << 32) == step for a, b in itertools.pairwise(stamps))
