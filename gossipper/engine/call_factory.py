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
        media_call_started: Callable[[Call], None],
        numbered_by: CallFactory | None = None,
    ) -> None:
        self._host = host
        self._run = run
        self._keywords = keywords
        self._dispatcher = dispatcher
        self._counters = counters
        self._media_call_started = media_call_started
        self.last_number = 0
        # The factory whose numbers this one's calls take: call numbers are run-wide, as in SIPp.
        self._numbering = numbered_by or self

    def next_context(self, call_id: str | None, remote: Address) -> CallContext:
        """The next call's context: its number, its Call-ID (the peer's, or ours), -set variables."""
        self._numbering.last_number += 1
        number = self._numbering.last_number
        context = CallContext(
            run=self._run,
            number=number,
            call_id=call_id or self._format_call_id(number),
            remote=remote,
            user_id=number,
            cseq=self._keywords.base_cseq - 1,
        )
        context.variables.update(self._keywords.variables)
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
        text = self._keywords.call_id_format
        return _CALL_ID_CODES.sub(lambda match: self._expand(match.group(1), number), text)

    def _expand(self, code: str, number: int) -> str:
        """SIPp's -cid_str codes; any other character after '%' (and '%%') stands for '%' alone."""
        values = {"u": number, "p": self._run.pid, "s": self._run.local_ip, "r": random.randrange(2**31)}
        return str(values.get(code, "%"))

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
        self._dispatcher.calls[call.call_id] = call
        self._counters.calls_created += 1
        self._counters.calls_active += 1
        self._media_call_started(call)
        call.start()
        return call
