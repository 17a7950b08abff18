"""`gossipper demo`: the whole product on loopback in one command.

gossipper's own UAS (with -rtp_echo) plays the SBC in a child process; this process
runs the invite_media_scale UAC against it and prints the summary. Options after
`demo` are passed to the UAC, so `gossipper demo -m 50 -d 3000` works as expected.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from gossipper.cli.dispatch import load_run_scenario, run
from gossipper.cli.options import parse_args
from gossipper.cli.ports import free_port
from gossipper.cli.validate import validate
from gossipper.errors import GossipperError

DEMO_CALLS = 200
DEMO_RATE = 100
DEMO_HOLD_MS = 5000
UAS_MEDIA_BASE = 20000
UAC_MEDIA_BASE = 30000


def _wait_for_uas(port: int, uas: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if uas.poll() is not None:
            raise GossipperError(f"demo: the UAS exited early with code {uas.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return  # the UAS holds the port: it is up
        time.sleep(0.05)
    raise GossipperError(f"demo: the UAS did not bind 127.0.0.1:{port} within {timeout_s:.0f} s")


def run_demo(extra: Sequence[str]) -> int:
    port = free_port()
    uas_command = [
        sys.executable,
        "-m",
        "gossipper",
        "sipp",
        "-sn",
        "uas",
        "-rtp_echo",
        "-bg",
        "-nostdin",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mp",
        str(UAS_MEDIA_BASE),
        "-cp",
        str(free_port()),
    ]
    uac_words = [
        "-sn",
        "invite_media_scale",
        f"127.0.0.1:{port}",
        "-i",
        "127.0.0.1",
        "-nostdin",
        "-m",
        str(DEMO_CALLS),
        "-l",
        str(DEMO_CALLS),
        "-r",
        str(DEMO_RATE),
        "-d",
        str(DEMO_HOLD_MS),
        "-mp",
        str(UAC_MEDIA_BASE),
        *extra,
    ]
    config = parse_args(uac_words)
    validate(config)
    print(f"demo: UAS (the SBC) on 127.0.0.1:{port}; UAC: gossipper sipp {' '.join(uac_words)}")
    uas = subprocess.Popen(uas_command, stdout=subprocess.DEVNULL)
    try:
        _wait_for_uas(port, uas)
        return run(config, load_run_scenario(config))
    finally:
        uas.terminate()
        try:
            uas.wait(timeout=5)
        except subprocess.TimeoutExpired:
            uas.kill()
