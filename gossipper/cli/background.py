"""-bg: SIPp's background mode, where the command returns at once and the run goes on.

SIPp forks and its parent prints `Background mode - PID=[n]` and exits 99. Here the
parent also waits the few milliseconds until the child's sockets are open, so a
command that follows (the UAC after a -bg UAS) finds them, and a child that fails to
start (a port in use, a bad scenario) reports its one-line error and exit status
through the parent instead of into /dev/null.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from gossipper.cli.exit_codes import EXIT_NO_CALLS

_READY = b"\0"  # what the child writes on its error pipe once its sockets are open


def detach(run: Callable[[Callable[[], None]], int]) -> int:
    """Fork; the child runs run(ready) with no terminal, the parent returns 99 once it is ready.

    Returns in both processes: the child's value is its run's exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.setsid()  # out of the shell's session: closing the terminal does not end the run
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(write_end, 2)  # until ready, errors reach the parent's stderr
        os.close(write_end)

        def ready() -> None:
            sys.stderr.flush()
            os.write(2, _READY)
            os.dup2(null, 2)  # the pipe's last write end closes: the parent returns

        return run(ready)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    output = b"".join(chunks)
    started = output.endswith(_READY)
    sys.stderr.write(output.removesuffix(_READY).decode("utf-8", errors="replace"))
    if not started:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    print(f"Background mode - PID=[{pid}]")
    return EXIT_NO_CALLS
