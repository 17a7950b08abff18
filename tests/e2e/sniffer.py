"""A loopback packet counter for tests: `python -m tests.e2e.sniffer OUT.json PORT [PORT...]`.

Runs inside a test's network namespace (as root) and sees every UDP datagram on lo,
so it can tell where each RTP packet came from without taking the port the peer
itself has bound. Writes its counts as JSON when terminated.
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import sys
from collections import Counter, defaultdict

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33


def main(out_path: str, watched: set[int]) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
    sock.bind(("lo", 0))
    udp_total = 0
    per_source: Counter[str] = Counter()  # "src_port>dst_port" for watched destinations
    payload_sizes: Counter[int] = Counter()
    bad_rtp = 0
    sequences: dict[int, list[int]] = defaultdict(list)  # ssrc -> first/last seq and count
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    sock.settimeout(0.2)
    print("ready", flush=True)
    while not stopping:
        try:
            packet, address = sock.recvfrom(65535)
        except TimeoutError:
            continue
        except InterruptedError:
            continue
        if address[2] == PACKET_OUTGOING or len(packet) < 28 or packet[9] != 17:
            continue
        header_length = (packet[0] & 0x0F) * 4
        udp_total += 1
        source, destination = struct.unpack_from("!HH", packet, header_length)
        if destination not in watched:
            continue
        payload = packet[header_length + 8 :]
        per_source[f"{source}>{destination}"] += 1
        payload_sizes[len(payload)] += 1
        if len(payload) < 12 or payload[0] >> 6 != 2:
            bad_rtp += 1
            continue
        sequence, _timestamp, ssrc = struct.unpack_from("!HII", payload, 2)
        seen = sequences[ssrc]
        if not seen:
            seen.extend([sequence, sequence, 0, source])
        seen[1] = sequence
        seen[2] += 1
    with open(out_path, "w") as out:
        json.dump(
            {
                "udp_total": udp_total,
                "per_source": per_source,
                "payload_sizes": payload_sizes,
                "bad_rtp": bad_rtp,
                "streams": {str(ssrc): seen for ssrc, seen in sequences.items()},
            },
            out,
        )


if __name__ == "__main__":
    main(sys.argv[1], {int(port) for port in sys.argv[2:]})
