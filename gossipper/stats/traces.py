"""Trace files (-trace_msg, -trace_err, -trace_logs, -trace_screen) named and laid out as SIPp's.

Message tracing runs for every packet, so entries go through a large write buffer and
reach the disk on flush() (once a second from the views) or close().
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import TextIO

from gossipper.errors import FileProblem

ENTRY_RULE = "-" * 47
BUFFER_BYTES = 256 * 1024


def default_trace_path(scenario_name: str, kind: str) -> str:
    return f"{scenario_name}_{os.getpid()}_{kind}.log"


def _timestamp(moment: float) -> str:
    local = datetime.fromtimestamp(moment)
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond:06d}"


class TraceFile:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            # Appending, like SIPp, so a file shared between runs keeps the earlier runs' entries.
            self._file: TextIO = open(path, "a", encoding="utf-8", buffering=BUFFER_BYTES)  # noqa: SIM115
        except OSError as error:
            raise FileProblem(f"{path}: cannot open trace file: {error.strerror or error}") from None

    def write(self, text: str) -> None:
        # Transports may still deliver a packet while the run shuts down; drop it quietly.
        if self._file.closed:
            return
        ending = "" if text.endswith("\n") else "\n"
        self._file.write(f"{ENTRY_RULE} {_timestamp(time.time())}\n{text}{ending}")

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        self._file.close()
