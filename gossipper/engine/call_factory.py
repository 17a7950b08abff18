"""New calls: numbered, given their context, registered with the dispatcher and started.

Client calls, server calls and 3PCC calls differ only in where their Call-ID, peer and
transport come from; the sequence that makes a call live (count it, route its Call-ID
to it, tell media, start it) is this module's alone.
"""

from __future__ import annotations

import random
import re
import secrets
import time
import uuid
from collections.abc import Callable

from gossipper.engine.call import Call, CallHost
from gossipper.engine.call_journal import CallJournal
from gossipper.engine.context import CallContext, RunContext
from gossipper.engine.dispatcher import Dispatcher
from gossipper.engine.settings import Address, KeywordSettings
from gossipper.sip.transport import SipTransport
from gossipper.stats.counters import RunCounters

_CALL_ID_CODES = re.compile(r"%(.?)", re.DOTALL)


class CallFactory:
    def __init__(
        self,
        host: CallHost,
        run: RunContext,
        keywords: KeywordSettings,
        dispatcher: Dispatcher,
        counters: RunCounters,
        media_call_started: Callable[[Call], None] | None,  # None: no media starts with a call
        numbered_by: CallFactory | None = None,
    ) -> None:
        self._host = host
        self._run = run
        self._keywords = keywords
        self._dispatcher = dispatcher
        self._counters = counters
        self._media_call_started = media_call_started
        self.keep_journals = False  # -call_records: each call notes what it does
        self.last_number = 0
        self._call_id_pieces: list[str | bool] | None = None  # -cid_str, compiled on first use
        # The factory whose numbers this one's calls take: call numbers are run-wide, as in SIPp.
        self._numbering = numbered_by or self

    def next_context(self, call_id: str | None, remote: Address) -> CallContext:
        """The next call's context: its number, its Call-ID (the peer's, or ours), -set variables."""
        self._numbering.last_number += 1
        number = self._keywords.call_number_base + self._numbering.last_number
        context = CallContext(
            run=self._run,
            number=number,
            call_id=call_id or self._keywords.call_id_prefix + self._format_call_id(number),
            remote=remote,
            user_id=number,
            cseq=self._keywords.base_cseq - 1,
        )
        if self._keywords.variables:
            context.variables.update(self._keywords.variables)
        if self._run.injection.files:
            context.injection_lines = self._run.injection.pick_lines(number)
        return context

    def _format_call_id(self, number: int) -> str:
        """-cid_type: SIPp's Call-ID modes; the default one expands -cid_str."""
        kind, local_ip = self._keywords.call_id_type, self._run.local_ip
        if kind == "uuid":
            return f"{uuid.uuid4()}@{local_ip}"
        if kind == "uuid-compact":
            return f"{uuid.uuid4().hex}@{local_ip}"
        if kind == "random":
            return f"{number}-{secrets.token_hex(16)}@{local_ip}"
        if kind == "timestamp":
            return f"{time.time_ns() // 1000}-{number}-{self._run.pid}@{local_ip}"
        if self._call_id_pieces is None:
            self._call_id_pieces = _call_id_pieces(self._keywords.call_id_format, self._run)
        parts = []
        for piece in self._call_id_pieces:
            if isinstance(piece, str):
                parts.append(piece)
            else:
                parts.append(str(number if piece else random.randrange(2**31)))
        return "".join(parts)

    def launch(
        self,
        context: CallContext,
        transport: SipTransport,
        *,
        is_server: bool,
        owns_transport: bool = False,
    ) -> Call:
        """Make the call live and run it until it first waits."""
        call = Call(self._host, context, transport, is_server=is_server, owns_transport=owns_transport)
        if self.keep_journals:
            call.journal = CallJournal(call.started_at)
        self._dispatcher.calls[call.call_id] = call
        self._counters.calls_created += 1
        self._counters.calls_active += 1
        if self._media_call_started is not None:
            self._media_call_started(call)
        call.start()
        return call


def _call_id_pieces(text: str, run: RunContext) -> list[str | bool]:
    """SIPp's -cid_str, worked out once: its text and the run's codes (%p, %s) as literal
    pieces, True where the call's number (%u) goes and False where a random number (%r)
    does; any other character after '%' (and '%%') stands for '%' alone."""
    pieces: list[str | bool] = []
    position = 0
    for match in _CALL_ID_CODES.finditer(text):
        pieces.append(text[position : match.start()])
        code = match.group(1)
        if code in ("u", "r"):
            pieces.append(code == "u")
        else:
            pieces.append({"p": str(run.pid), "s": run.local_ip}.get(code, "%"))
        position = match.end()
    pieces.append(text[position:])
    return pieces
