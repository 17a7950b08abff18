"""Per-run and per-call state that keywords and actions read and write.

Kept apart from the call state machine so that keyword resolution and action
execution are plain functions over data, testable without sockets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from gossipper.engine.injection import Injection
from gossipper.engine.settings import KeywordSettings
from gossipper.scenario.template import BoundTemplate
from gossipper.sip.message import SipMessage

VariableValue = str | float | bool


@dataclass
class RunContext:
    """What every call of the run shares."""

    keywords: KeywordSettings
    local_ip: str
    local_port: int
    transport_name: str  # "UDP" or "TCP", as [transport] prints it
    media_ip: str
    media_base_port: int
    injection: Injection
    pid: int = field(default_factory=os.getpid)
    media_port_span: int = 1  # number of distinct per-call media ports in the range
    crypto_attribute: Callable[[str], str] = field(default=lambda _call_id: "")  # SRTP a=crypto line
    # (call id, its slot's port) -> the port it gets: media moves it off a pair in use.
    choose_media_port: Callable[[str, int], int] = field(default=lambda _call_id, slot: slot)
    remote_host: tuple[str, int] | None = None  # with -rsa: what [remote_ip]/[remote_port] print
    # Each [token] compiled once per run into the function that answers it for a call
    # (engine.keywords); a run's -key values decide what some tokens mean.
    token_resolvers: dict[str, Callable[[CallContext], str]] = field(default_factory=dict)
    # Each <send> template bound to those resolvers, by id: the scenario holds them all run long.
    bound_templates: dict[int, BoundTemplate] = field(default_factory=dict)
    dynamic_id: int | None = None  # [dynamic_id]'s next value, shared by every call (None: not used yet)
    calls_share_port: bool = True  # False when calls may send from sockets of their own (-t un, tn, ui)

    def next_dynamic_id(self) -> int:
        """SIPp's [dynamic_id]: -dynamicStart, then up by -dynamicStep, back to the start past -dynamicMax."""
        keywords = self.keywords
        value = keywords.dynamic_start if self.dynamic_id is None else self.dynamic_id
        following = value + keywords.dynamic_step
        self.dynamic_id = keywords.dynamic_start if following > keywords.dynamic_max else following
        return value

    def media_port_for(self, call_number: int) -> int:
        """-mp base + 2 x (call_number - 1), wrapped so live calls do not share a port."""
        slot = (call_number - 1) % self.media_port_span
        return self.media_base_port + 2 * slot


class CallContext:
    """One call's variables, addresses and memory of the last messages.

    A plain class, not a dataclass: one is made per call, and a dataclass's generated
    __init__ stays interpreted Python even where this module is compiled."""

    def __init__(
        self,
        run: RunContext,
        number: int,
        call_id: str,
        remote: tuple[str, int],
        user_id: int = 0,
        cseq: int = 0,
    ) -> None:
        self.run = run
        self.number = number
        self.call_id = call_id
        self.remote = remote
        self.user_id = user_id
        self.cseq = cseq  # [cseq]: incremented before each new request (not ACK, CANCEL)
        self.send_index = 0  # scenario index of the message being rendered ([branch])
        self.variables: dict[str, VariableValue] = {}
        self.last_message: SipMessage | None = None
        self.peer_tag: str | None = None
        self.route_set: list[str] | None = None
        self.next_url: str | None = None
        self.remote_sdp: bytes | None = None  # the peer's last SDP body: where its RTP goes
        self.challenge: tuple[str, str] | None = None  # (header name to answer with, challenge value)
        self.answered_challenge: tuple[str, str] | None = None  # the challenge nonce_count counts answers to
        self.nonce_count = 0
        self.injection_lines: dict[str, int] = {}
        self.local_port: int | None = None  # per-call socket (-t un/tn), else the run's port

    @property
    def shown_remote(self) -> tuple[str, int]:
        """The peer [remote_ip]/[remote_port] name: -rsa moves only where packets go."""
        return self.run.remote_host or self.remote

    @property
    def media_port(self) -> int:
        return self.run.choose_media_port(self.call_id, self.run.media_port_for(self.number))


def format_variable(value: VariableValue) -> str:
    """Variables print as SIPp prints them: doubles with six decimals, booleans as words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"
    return value
