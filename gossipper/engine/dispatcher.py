"""Routing of incoming SIP to calls by Call-ID, with SIPp's out-of-call handling.

Malformed input is counted and logged here, once, for every transport; a message for
a call that just ended is answered from the dead-call record (so a retransmitted BYE
still gets its 200) instead of being treated as a new call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gossipper.engine.call import Call
from gossipper.engine.default_messages import ok_for
from gossipper.sip.message import SipMessage, SipParseError
from gossipper.sip.transport import INCOMPLETE_AT_CLOSE, TOO_LARGE, Address, SipTransport
from gossipper.stats.counters import RunCounters

DEAD_CALL_WAIT_S = 33.0  # SIPp's -deadcall_wait default
PONG = b"\r\n"  # RFC 5626 section 4.4.1: the answer to a CRLF CRLF ping on a connection
_KEEPALIVE_BYTES = b"\r\n"
_NUL_KEEPALIVE = b"\x00\x00\x00\x00"  # a datagram SIPp also takes for a keep-alive


def is_keepalive(data: bytes) -> bool:
    """Line ends only (RFC 5626's ping and pong, as a datagram or between stream messages),
    or the four NUL bytes some devices send instead (SIPp ignores both)."""
    return (bool(data) and not data.strip(_KEEPALIVE_BYTES)) or data == _NUL_KEEPALIVE


class DeadCall:
    def __init__(
        self, last_sent: bytes | None, remote: Address, transport: SipTransport, expires_at: float
    ) -> None:
        self.last_sent = last_sent
        self.remote = remote
        self.transport = transport
        self.expires_at = expires_at


class Dispatcher:
    def __init__(
        self,
        counters: RunCounters,
        new_server_call: Callable[[SipMessage, Address, SipTransport], Call | None],
        trace_error: Callable[[str], None],
        trace_message: Callable[[str, bytes, Address, SipTransport], None],
        ping_reply: bool,
        trim_call_id: bool = True,
        dead_call_wait_s: float = DEAD_CALL_WAIT_S,
    ) -> None:
        self.calls: dict[str, Call] = {}
        self.dead_calls: dict[str, DeadCall] = {}
        self._counters = counters
        self._new_server_call = new_server_call
        self._trace_error = trace_error
        self._trace_message = trace_message
        self._ping_reply = ping_reply
        self._trim_call_id = trim_call_id
        self._dead_call_wait_s = dead_call_wait_s

    def call_key(self, call_id: str) -> str:
        """The Call-ID that names the call: SIPp lets a sender prefix [call_id] with any text
        and '///' (its get_trimmed_call_id, the first '///'), unless -callid_slash_ign."""
        if self._trim_call_id:
            marker = call_id.find("///")
            if marker >= 0:
                return call_id[marker + 3 :]
        return call_id

    def on_data(self, data: bytes, source: Address, transport: SipTransport) -> None:
        try:
            message = SipMessage.parse(data)
            call_id = message.call_id
        except SipParseError as error:
            if is_keepalive(data):
                self.on_keepalive(data, source, transport)
            else:
                self.on_malformed(str(error), data, source)
            return
        if not call_id:
            self.on_malformed("message without Call-ID", data, source)
            return
        call_id = self.call_key(call_id)
        call = self.calls.get(call_id)
        if call is not None:
            call.on_message(message, data, source, transport)
            return
        dead = self.dead_calls.get(call_id)
        if dead is not None:
            self._dead_call_message(message, data, source, dead)
            return
        if message.is_request and message.method != "ACK":
            call = self._new_server_call(message, source, transport)
            if call is not None:
                call.on_message(message, data, source, transport)
                return
        self._out_of_call(message, data, source, transport)

    def on_malformed(self, reason: str, data: bytes, source: Address) -> None:
        counters = self._counters
        counters.malformed_messages += 1
        if reason.startswith(INCOMPLETE_AT_CLOSE):
            counters.truncated_messages += 1
        preview = data[:200].decode("utf-8", errors="replace")
        if reason.startswith(TOO_LARGE):
            counters.messages_too_large += 1
            self._trace_error(
                f"SIP from {source[0]}:{source[1]} dropped unread: {reason} bytes "
                f"(-buff_size sets the limit)\n{preview}"
            )
            return
        self._trace_error(
            f"malformed SIP from {source[0]}:{source[1]} ({len(data)} bytes): {reason}\n{preview}"
        )

    def on_keepalive(self, data: bytes, source: Address, transport: SipTransport) -> None:
        """RFC 5626: counted, never malformed. On a connection a double-CRLF ping is answered
        with a single-CRLF pong (section 4.4.1); a pong, or any keep-alive over UDP (where
        RFC 5626 keeps alive with STUN, and SIPp ignores CRLFs), is not answered."""
        self._counters.keepalives_received += 1
        if transport.is_reliable and (b"\n\r\n" in data or b"\n\n" in data):  # a ping: CRLF CRLF
            transport.send(PONG, source)

    def on_refused(self, listener: str, refused: int, reason: str, first_of_burst: bool) -> None:
        """A listener refused connections (past -max_socket, or at the open-files limit):
        each counted, each burst logged."""
        self._counters.connections_refused += refused
        if first_of_burst:
            self._trace_error(
                f"{listener}: cannot accept connections: {reason}; they are refused, each counted "
                "in connections_refused, until it can again (raise -max_socket, or ulimit -n at "
                "the open-files limit)"
            )

    def on_quiet_closed(self, listener: str, peer: Address, reason: str) -> None:
        """A listener closed a connection that went quiet: counted and logged, each."""
        self._counters.connections_closed_quiet += 1
        self._trace_error(f"{listener}: closed the connection from {peer[0]}:{peer[1]}: {reason}")

    def _dead_call_message(self, message: SipMessage, data: bytes, source: Address, dead: DeadCall) -> None:
        self._counters.dead_call_messages += 1
        self._trace_message("received", data, source, dead.transport)
        if message.is_request and message.method != "ACK" and dead.last_sent is not None:
            dead.transport.send(dead.last_sent, source)
            self._counters.retransmissions += 1

    def _out_of_call(
        self, message: SipMessage, data: bytes, source: Address, transport: SipTransport
    ) -> None:
        """SIPp's ooc_default: answer any out-of-call request but ACK with 200 OK."""
        self._counters.out_of_call_messages += 1
        self._trace_message("received", data, source, transport)
        if message.is_request and message.method != "ACK":
            if message.method == "OPTIONS" and not self._ping_reply:
                return
            reply = bytes(ok_for(message))
            transport.send(reply, source)
            self._counters.messages_sent += 1
            self._trace_message("sent", reply, source, transport)
        else:
            self._trace_error(f"out-of-call message from {source[0]}:{source[1]}: {message.first_line}")

    def bury(self, call: Call) -> None:
        """Forget a finished call but keep enough to answer its retransmissions."""
        self.calls.pop(call.call_id, None)
        last = call.last_sent.data if call.last_sent is not None else None
        if call.call_id in self.dead_calls:  # re-buried: to the end, where its expiry belongs
            del self.dead_calls[call.call_id]  # (`in` is compiled inline; pop is a method call)
        if not self._dead_call_wait_s:
            return  # -deadcall_wait 0: SIPp keeps no dead calls, late messages are out of call
        self.dead_calls[call.call_id] = DeadCall(
            last, call.context.remote, call.transport, time.monotonic() + self._dead_call_wait_s
        )

    def expire_dead_calls(self, now: float) -> None:
        """Calls are buried in order and wait alike, so the expired ones lead the dict."""
        expired = []
        for call_id, dead in self.dead_calls.items():
            if dead.expires_at > now:
                break
            expired.append(call_id)
        for call_id in expired:
            del self.dead_calls[call_id]
