"""SIPp's trace files (-trace_msg, -trace_shortmsg, -trace_err, -trace_logs, -trace_calldebug,
-trace_screen): their names, their entries, and SIPp's rotation rules (logger.cpp rotatef, _trace).

Every entry is written through to the kernel as it happens, as SIPp flushes each one, so a
tail -f or a test reads a trace while the run goes on. A file is truncated when opened
unless its -*_overwrite flag says false, then appended to. -ringbuffer_size rotates a file
that grew past it, keeping -ringbuffer_files old ones named after their opening second;
-max_log_size instead stops writing a file that grew past it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from gossipper.errors import FileProblem
from gossipper.stats.sipp_time import format_time

MESSAGE_RULE = "-" * 47
CALLDEBUG_RULE = "-" * 79


def default_log_path(base: str, kind: str) -> str:
    """SIPp's <scenario file>_<pid>_<kind>.log."""
    return f"{base}_{os.getpid()}_{kind}.log"


@dataclass(frozen=True)
class LogLimits:
    """-ringbuffer_files, -ringbuffer_size and -max_log_size (bytes; 0: no limit)."""

    ringbuffer_files: int = 0
    ringbuffer_size: int = 0
    max_log_size: int = 0


class LogFile:
    """One trace file. `base` and `kind` name the rotated copies, which SIPp always names
    <scenario file>_<pid>_<kind>_<opening epoch second>[.<n>].log, even for a file given by name."""

    def __init__(
        self,
        path: str,
        base: str,
        kind: str,
        *,
        overwrite: bool = True,
        limits: LogLimits = LogLimits(),
        setting: str | None = None,
    ) -> None:
        self.path = path
        self._prefix = f"{base}_{os.getpid()}_{kind}"
        self._limits = limits
        self._rotated: list[tuple[int, int, str]] = []  # (opening second, same-second number, path)
        self._written = 0
        self._opened_at = int(time.time())
        try:
            self._fd: int | None = self._open(truncate=overwrite)
        except OSError as error:
            reason = error.strerror or error
            raise FileProblem(f"{path}: cannot open trace file: {reason}", setting=setting) from None

    def _open(self, truncate: bool) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        return os.open(self.path, flags, 0o666)

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def write(self, text: str) -> None:
        """Append one entry; entries after close or past -max_log_size are dropped, as in SIPp."""
        if self._fd is None:
            return
        data = text.encode("utf-8", errors="replace")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as error:
            print(f"gossipper: {self.path}: trace stopped: {error.strerror or error}", file=sys.stderr)
            self.close()
            return
        self._written += len(data)
        limits = self._limits
        if limits.max_log_size and self._written > limits.max_log_size:
            self.close()
        elif limits.ringbuffer_size and self._written > limits.ringbuffer_size:
            self._rotate()

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        keep = self._limits.ringbuffer_files
        try:
            if keep > 0:
                if len(self._rotated) >= keep:
                    _, _, oldest = self._rotated.pop(0)
                    if os.path.exists(oldest):
                        os.unlink(oldest)
                second = self._opened_at
                previous = self._rotated[-1] if self._rotated else None
                number = previous[1] + 1 if previous is not None and previous[0] == second else 0
                suffix = f"{second}.{number}" if number else f"{second}"
                target = f"{self._prefix}_{suffix}.log"
                os.replace(self.path, target)
                self._rotated.append((second, number, target))
            self._opened_at = int(time.time())
            self._fd = self._open(truncate=True)
        except OSError as error:
            print(f"gossipper: {self.path}: cannot rotate trace: {error.strerror or error}", file=sys.stderr)
            return
        self._written = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------- entries, as SIPp writes them
def message_entry(direction: str, transport: str, data: bytes, moment: float) -> str:
    """-trace_msg: current SIPp stamps these with RFC 3339 whatever -rfc3339 says (socket.cpp)."""
    return (
        f"{MESSAGE_RULE} {format_time(moment, rfc3339=True)}\n"
        f"{transport} message {direction} [{len(data)}] bytes:\n\n{data.decode('utf-8', errors='replace')}\n"
    )


def shortmessage_entry(direction: str, data: bytes, moment: float, rfc3339: bool, trim_call_id: bool) -> str:
    """-trace_shortmsg: time, S or R, Call-ID, CSeq and the first line, tab-separated."""
    first_line, call_id, cseq = _summary(data)
    if trim_call_id:
        call_id = call_id.rpartition("///")[2]
    mark = "S" if direction == "sent" else "R"
    return f"{format_time(moment, rfc3339)}\t{mark}\t{call_id}\tCSeq:{cseq}\t{first_line}\n"


def error_entry(text: str, moment: float, rfc3339: bool) -> str:
    return f"{format_time(moment, rfc3339)}: {text}\n"


ERRORS_PREAMBLE = "The following events occurred:\n"


def calldebug_line(text: str, moment: float, rfc3339: bool) -> str:
    """A line of a call's history; the history reaches the file only if the call is aborted."""
    return f"{format_time(moment, rfc3339)} {text}"


def calldebug_entry(call_id: str, history: list[str]) -> str:
    return f"{CALLDEBUG_RULE}\nCall debugging information for call {call_id}:\n" + "".join(history)


def _summary(data: bytes) -> tuple[str, str, str]:
    """First line, Call-ID and CSeq of a raw SIP message (compact 'i:' too), without a full parse."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    lines = head.replace("\r\n", "\n").split("\n")
    call_id = cseq = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        if key in ("call-id", "i") and not call_id:
            call_id = value.strip()
        elif key == "cseq" and not cseq:
            cseq = value.strip()
    return lines[0], call_id, cseq


def call_id_of(data: bytes) -> str:
    return _summary(data)[1]
