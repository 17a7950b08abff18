"""-call_records FILE: one JSON object per ended call, written as the call ends.

A lab reads a run's calls one by one (`jq`, a notebook, a CI artifact) without the message
log. Each record is written when its call ends and kept only in the file's buffer, flushed
once a second, so a 100,000-call run holds no more memory for its records than a 10-call
run, and a reader following the file sees each call within about a second.
"""

from __future__ import annotations

import json
from typing import Protocol, TextIO

from gossipper.errors import FileProblem


class RecordSink(Protocol):
    """Where ended calls' records go: this file, or a cluster node's buffer the driver empties."""

    def write(self, record: dict[str, object]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class CallRecordWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self.written = 0
        try:
            self._file: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115  # closed by close()
        except OSError as error:
            raise FileProblem(
                f"cannot write {path}: {error.strerror or error}", setting="call_records"
            ) from None

    def write(self, record: dict[str, object]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.written += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
