"""Every transport end to end on loopback: TLS, WebSocket (ws/wss), SCTP, IPv6, and -p for -t ?1.

Calls carry media (a WAV stream echoed by the far end) so a transport is shown to carry a
whole call, SDP included, not only the INVITE. TLS material is made per test by the
openssl CLI; the UAS takes SIPp's default file names (cacert.pem, cakey.pem in its working
directory) and the UAC names its files with -tls_cert/-tls_key and verifies the UAS
with -tls_ca. Debian's SIPp is built without TLS and this machine's kernel may lack
SCTP: those interop tests run where the peer can, and say why they skip elsewhere.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from gossipper.cli.ports import LOOPBACK, free_port, free_ports_below_ephemeral
from tests.e2e.processes import SIPP, Processes, gossipper_command, needs_sipp, read_json
from tests.e2e.test_classic_media import CALLS, PACKETS, _wav_scenario
from tests.sip.test_sctp import kernel_has_sctp
from tests.sip.tls_material import TlsMaterial, make_tls_material, needs_openssl

IPV6 = "::1"
SCTP = socket.IPPROTO_SCTP


def _host(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _held(ip: str, port: int, proto: int) -> bool:
    """Whether some socket holds ip:port for this protocol (a bind of our own fails)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == socket.IPPROTO_UDP else socket.SOCK_STREAM
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return True
    return False


def _wait_held(process: subprocess.Popen[str], ip: str, port: int, proto: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _held(ip, port, proto):
            return
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr is not None else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}: {stderr}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing holds {ip}:{port}")


def _proto(transport: str) -> int:
    if transport.startswith("u"):
        return socket.IPPROTO_UDP
    return SCTP if transport.startswith("s") else socket.IPPROTO_TCP


def _start_uas(
    processes: Processes, cwd: Path, transport: str, ip: str, *extra: str, sipp: bool = False
) -> int:
    """A UAS echoing RTP (gossipper, or SIPp with sipp=True) on a free port; the port."""
    port = free_port()
    media = str(free_ports_below_ephemeral(2 * CALLS))
    args = ["-sn", "uas", "-t", transport, "-i", ip, "-p", str(port), "-rtp_echo", "-mp", media, *extra]
    if sipp:
        assert SIPP is not None
        command = [SIPP, *args, "-nostdin"]
    else:
        command = gossipper_command(*args, "-m", str(CALLS), "-nostdin")
    process = processes.start(command, stdout=subprocess.DEVNULL, cwd=cwd)
    _wait_held(process, ip, port, _proto(transport))
    return port


def _run_uac(cwd: Path, target: str, transport: str, ip: str, *extra: str) -> dict[str, object]:
    """gossipper's UAC playing a WAV stream per call, run to its end; its summary."""
    summary, errors = cwd / "uac.json", cwd / "uac_errors.log"
    result = subprocess.run(
        gossipper_command(
            "-sf",
            str(_wav_scenario(cwd)),
            target,
            "-t",
            transport,
            "-i",
            ip,
            "-m",
            str(CALLS),
            "-r",
            "10",
            "-mp",
            str(free_ports_below_ephemeral(2 * CALLS, start=24000)),
            "-nostdin",
            "-summary_json",
            str(summary),
            "-trace_err",
            "-error_file",
            str(errors),
            "-trace_msg",
            "-message_file",
            str(cwd / "uac_messages.log"),
            *extra,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert result.returncode == 0, errors.read_text() if errors.exists() else result.stderr
    return read_json(summary)


def _assert_echoed(data: dict[str, object]) -> None:
    """Every call succeeded and its stream came back whole. A sender whose loop was held up
    skips whole missed slots (media/classic/sender.py), so on a loaded machine a stream may
    be a few packets short: what was sent must come back, none lost."""
    assert data["success_calls"] == CALLS
    media = data["media"]
    assert isinstance(media, dict)
    sent, received = int(media["rtp_packets_sent"]), int(media["rtp_packets_received"])
    assert CALLS * PACKETS * 0.95 <= sent <= CALLS * PACKETS
    assert received == sent
    receive = media["receive"]
    assert receive["streams"] == CALLS and receive["lost"] == 0 and receive["duplicates"] == 0


def _uas_certificates(material: TlsMaterial, cwd: Path, leaf: str = "good") -> None:
    """The UAS's certificate under SIPp's default names, in its working directory."""
    chosen = getattr(material, leaf)
    shutil.copy(chosen.cert, cwd / "cacert.pem")
    shutil.copy(chosen.key, cwd / "cakey.pem")


def _uac_tls_flags(material: TlsMaterial) -> list[str]:
    good = material.good
    return ["-tls_cert", str(good.cert), "-tls_key", str(good.key), "-tls_ca", str(material.ca)]


@pytest.mark.parametrize(
    ("transport", "ip"),
    [
        ("l1", LOOPBACK),
        ("ln", LOOPBACK),
        ("ws1", LOOPBACK),
        ("wsn", LOOPBACK),
        ("wss1", LOOPBACK),
        ("wssn", LOOPBACK),
        ("t1", IPV6),
        ("l1", IPV6),
        ("wss1", IPV6),
    ],
)
def test_calls_with_media(transport: str, ip: str, tmp_path: Path, processes: Processes) -> None:
    secure = transport.startswith(("l", "wss"))
    extra: list[str] = []
    if secure:
        if shutil.which("openssl") is None:
            pytest.skip("the openssl CLI (Debian openssl) is not installed")
        material = make_tls_material(tmp_path / "pki")
        _uas_certificates(material, tmp_path)
        extra = _uac_tls_flags(material)
    port = _start_uas(processes, tmp_path, transport, ip)
    data = _run_uac(tmp_path, _host(ip, port), transport, ip, *extra)
    _assert_echoed(data)
    name = {"l": "TLS", "t": "TCP", "ws": "WS", "wss": "WSS"}[transport[:-1]]
    messages = (tmp_path / "uac_messages.log").read_text()
    bracketed = f"[{ip}]" if ":" in ip else ip
    assert f"Via: SIP/2.0/{name} {bracketed}:" in messages
    assert f"c=IN IP{6 if ':' in ip else 4} {ip}" in messages


@needs_openssl
def test_an_untrusted_tls_uas_stops_the_uac_with_one_line(tmp_path: Path, processes: Processes) -> None:
    material = make_tls_material(tmp_path / "pki")
    _uas_certificates(material, tmp_path, "rogue")
    port = _start_uas(processes, tmp_path, "l1", LOOPBACK)
    result = subprocess.run(
        gossipper_command(
            "-sn", "uac", f"{LOOPBACK}:{port}", "-t", "l1", "-m", "1", "-nostdin", *_uac_tls_flags(material)
        ),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 255
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "cannot connect to" in result.stderr and "TLS certificate verify failed" in result.stderr


def test_tls_without_its_default_certificate_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        gossipper_command("-sn", "uas", "-t", "l1", "-p", str(free_port()), "-m", "1", "-nostdin"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 255
    assert result.stderr.strip() == "gossipper: -tls_cert: cacert.pem: no such file"


@pytest.mark.parametrize("transport", ["t1", "l1", "ws1"])
def test_the_one_connection_leaves_from_local_port(
    transport: str, tmp_path: Path, processes: Processes
) -> None:
    """SIPp binds its -t ?1 connection to -p, where its listener then listens (socket.cpp):
    once the connection is ready, which over TLS or WebSocket (the peer here never answers
    the handshake) it never is."""
    if transport == "l1":
        if shutil.which("openssl") is None:
            pytest.skip("the openssl CLI (Debian openssl) is not installed")
        _uas_certificates(make_tls_material(tmp_path / "pki"), tmp_path)
    with socket.create_server((LOOPBACK, 0)) as peer:
        peer.settimeout(15)
        local_port = free_port()
        command = gossipper_command(
            "-sn",
            "uac",
            f"{LOOPBACK}:{peer.getsockname()[1]}",
            "-t",
            transport,
            "-i",
            LOOPBACK,
            "-p",
            str(local_port),
            "-m",
            "1",
            "-nostdin",
        )
        processes.start(command, cwd=tmp_path)
        connection, source = peer.accept()
        with connection:
            assert source[1] == local_port
            if transport == "t1":
                _connects_within((LOOPBACK, local_port), seconds=10)  # and the UAC listens there too


def _connects_within(address: tuple[str, int], seconds: float) -> None:
    """The UAC listens on its port only after its connection is up, a moment after the peer
    accepted it: keep trying until it does."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(address, timeout=5):
                return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_sctp_where_the_kernel_lacks_it_is_one_line(tmp_path: Path) -> None:
    if kernel_has_sctp():
        pytest.skip("this kernel has SCTP: see the SIPp interop tests below")
    result = subprocess.run(
        gossipper_command("-sn", "uas", "-t", "s1", "-p", str(free_port()), "-m", "1", "-nostdin"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 255
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gossipper: -t: SCTP is not available"), result.stderr


def _sipp_uac(cwd: Path, target: str, transport: str, ip: str) -> None:
    """SIPp's UAC playing the same WAV stream per call (its scenario without gossipper's
    [crypto_attribute]), run to its end."""
    assert SIPP is not None
    scenario = cwd / "sipp_uac_wav.xml"
    scenario.write_text(
        "".join(
            line
            for line in _wav_scenario(cwd).read_text().splitlines(keepends=True)
            if "[crypto_attribute]" not in line
        )
    )
    result = subprocess.run(
        [
            SIPP,
            "-sf",
            str(scenario),
            target,
            "-t",
            transport,
            "-i",
            ip,
            "-m",
            str(CALLS),
            "-r",
            "10",
            "-mp",
            str(free_ports_below_ephemeral(2 * CALLS, start=24000)),
            "-nostdin",
            "-trace_err",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr


def _assert_uas_echoed(summary: Path) -> None:
    data = read_json(summary)
    assert data["success_calls"] == CALLS
    media = data["media"]
    assert isinstance(media, dict)
    receive = media["receive"]
    assert receive["streams"] == CALLS and receive["lost"] == 0
    assert receive["echoed_packets"] == receive["packets"] >= CALLS * PACKETS * 0.95


def _sipp_uac_against_gossipper(tmp_path: Path, processes: Processes, transport: str, ip: str) -> None:
    summary = tmp_path / "uas.json"
    port = _start_uas(processes, tmp_path, transport, ip, "-summary_json", str(summary))
    _sipp_uac(tmp_path, _host(ip, port), transport, ip)
    deadline = time.monotonic() + 30
    while not summary.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    _assert_uas_echoed(summary)


@needs_sipp
def test_ipv6_gossipper_uac_against_sipp_uas_with_rtp_echo(tmp_path: Path, processes: Processes) -> None:
    port = _start_uas(processes, tmp_path, "u1", IPV6, sipp=True)
    data = _run_uac(tmp_path, _host(IPV6, port), "u1", IPV6)
    _assert_echoed(data)
    messages = (tmp_path / "uac_messages.log").read_text()
    assert f"INVITE sip:service@[{IPV6}]:{port} SIP/2.0" in messages
    assert "c=IN IP6 ::1" in messages


@needs_sipp
def test_ipv6_sipp_uac_against_gossipper_uas_with_rtp_echo(tmp_path: Path, processes: Processes) -> None:
    _sipp_uac_against_gossipper(tmp_path, processes, "u1", IPV6)


def test_ipv6_scale_engine_streams_echoed(tmp_path: Path, processes: Processes) -> None:
    port = _start_uas(processes, tmp_path, "u1", IPV6)
    summary = tmp_path / "uac.json"
    result = subprocess.run(
        gossipper_command(
            "-sn",
            "invite_media_scale",
            _host(IPV6, port),
            "-i",
            IPV6,
            "-m",
            str(CALLS),
            "-d",
            "2000",
            "-mp",
            str(free_ports_below_ephemeral(2 * CALLS, start=24000)),
            "-nostdin",
            "-summary_json",
            str(summary),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = read_json(summary)
    media = data["media"]
    assert isinstance(media, dict) and data["success_calls"] == CALLS
    sent, received = int(media["rtp_packets_sent"]), int(media["rtp_packets_received"])
    assert abs(sent - CALLS * 100) <= CALLS * 2
    assert sent * 0.99 <= received <= sent


# ------------------------------------------------------------ where Debian's SIPp or the kernel can
def _sipp_has_tls() -> bool:
    if SIPP is None:
        return False
    probe = subprocess.run(
        [SIPP, "-t", "l1", "-sn", "uas", "-p", str(free_port()), "-m", "1", "-timeout", "1", "-nostdin"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return "must compile SIPp with OpenSSL" not in probe.stdout + probe.stderr


needs_sipp_tls = pytest.mark.skipif(
    not _sipp_has_tls(),
    reason="this SIPp is built without TLS ('To use a TLS transport you must compile "
    "SIPp with OpenSSL'; Debian's sip-tester is)",
)
needs_kernel_sctp = pytest.mark.skipif(
    not kernel_has_sctp(), reason="this kernel has no SCTP (socket(IPPROTO_SCTP): Protocol not supported)"
)


@needs_sipp
@needs_sipp_tls
@needs_openssl
def test_tls_interop_with_sipp_both_ways(tmp_path: Path, processes: Processes) -> None:
    material = make_tls_material(tmp_path / "pki")
    _uas_certificates(material, tmp_path)
    port = _start_uas(processes, tmp_path, "l1", LOOPBACK, sipp=True)
    _assert_echoed(_run_uac(tmp_path, _host(LOOPBACK, port), "l1", LOOPBACK, *_uac_tls_flags(material)))
    other = tmp_path / "sipp_uac"
    other.mkdir()
    _uas_certificates(material, other)
    _sipp_uac_against_gossipper(other, processes, "l1", LOOPBACK)


@needs_sipp
@needs_kernel_sctp
@pytest.mark.parametrize("transport", ["s1", "sn"])
def test_sctp_interop_with_sipp_both_ways(transport: str, tmp_path: Path, processes: Processes) -> None:
    port = _start_uas(processes, tmp_path, transport, LOOPBACK, sipp=True)
    _assert_echoed(_run_uac(tmp_path, _host(LOOPBACK, port), transport, LOOPBACK))
    other = tmp_path / "sipp_uac"
    other.mkdir()
    _sipp_uac_against_gossipper(other, processes, transport, LOOPBACK)


@needs_sipp
def test_tcp_from_local_port_against_sipp_uas(tmp_path: Path, processes: Processes) -> None:
    """SIPp answers over the connection that arrived from -p, and the calls succeed."""
    port = _start_uas(processes, tmp_path, "t1", LOOPBACK, sipp=True)
    _assert_echoed(_run_uac(tmp_path, _host(LOOPBACK, port), "t1", LOOPBACK, "-p", str(free_port())))


@pytest.mark.parametrize("transport", ["t1", "ws1"])
def test_a_refused_connection_stops_the_uac_with_one_line(transport: str) -> None:
    with socket.socket() as idle:
        idle.bind((LOOPBACK, 0))
        port = idle.getsockname()[1]
        result = subprocess.run(
            gossipper_command("-sn", "uac", f"{LOOPBACK}:{port}", "-t", transport, "-m", "1", "-nostdin"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 255
    name = "TCP" if transport == "t1" else "WS"
    expected = f"gossipper: remote host: cannot connect to {LOOPBACK}:{port} over {name}: Connection refused"
    assert result.stderr.strip() == expected
