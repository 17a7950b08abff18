"""A loopback peer that sends every datagram straight back to its source, as an SBC's RTP
echo (or SIPp's -rtp_echo) does; shared by the media tests of several packages."""

from __future__ import annotations

import socket
import threading

from gossipper.cli.ports import LOOPBACK


class UdpEcho:
    def __init__(self, poll_s: float = 0.02) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(poll_s)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.port = self.address[1]
        self.echoed = 0  # datagrams already back in the sender's receive queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.sock.sendto(data, source)
            self.echoed += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
