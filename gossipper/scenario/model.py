"""The loaded scenario: steps (send, recv, pause, ...) and the actions they carry.

Plain data, built once by the loader and shared read-only by every call; the call
state machine in gossipper.engine interprets it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gossipper.media.streams import RtpStreamAction
from gossipper.scenario.template import MessageTemplate

__all__ = ["MessageTemplate"]


# ---------------------------------------------------------------- actions
@dataclass(frozen=True)
class Action:
    line: int  # where the action sits in its file, for run-time messages


# POSIX bracket classes (SIPp's regexps are POSIX extended) in Python's spelling.
_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "xdigit": "0-9A-Fa-f",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "cntrl": r"\x00-\x1f\x7f",
    "print": r"\x20-\x7e",
    "graph": r"\x21-\x7e",
}
_POSIX_CLASS = re.compile(r"\[:([a-z]+):\]")


def compile_posix(regexp: str) -> re.Pattern[str]:
    """A SIPp regexp (POSIX extended, as regcomp reads it) as a Python pattern.

    "." crosses line ends and ^/$ anchor the whole text, as without REG_NEWLINE;
    [[:digit:]] and the other bracket classes become their ranges. Raises re.error.
    """

    def posix_class(match: re.Match[str]) -> str:
        ranges = _POSIX_CLASSES.get(match.group(1))
        if ranges is None:
            raise re.error(f"unknown character class [:{match.group(1)}:]")
        return ranges

    return re.compile(_POSIX_CLASS.sub(posix_class, regexp), re.DOTALL)


# SIPp's handler of unexpected messages: the label they jump to, and the variables that keep
# where the call was (its step, and the end of the pause it was in, on [clock_tick]'s clock).
UNEXPECTED_LABEL = "_unexp.main"
RETURN_ADDRESS = "_unexp.retaddr"
PAUSED_UNTIL = "_unexp.pausedaddr"


@dataclass(frozen=True)
class Ereg(Action):
    regexp: str
    search_in: str  # "msg", "hdr", "body" or "var"
    header: str | None  # search_in="hdr": the text searched for, e.g. "From" or "From:"
    case_indep: bool  # search_in="hdr": the header text matches in any case (never the regexp)
    occurrence: int  # search_in="hdr": which match of the header text
    start_line: bool  # search_in="hdr": the header text matches only at a line start
    check_it: bool
    check_it_inverse: bool
    assign_to: tuple[str, ...]
    variable: str | None = None  # search_in="var": the variable searched

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compiled(self.regexp, posix=True)


@dataclass(frozen=True)
class Operand:
    """SIPp's right-hand side: a literal double (value=) or a variable's double (variable=)."""

    value: float | None = None
    variable: str | None = None


@dataclass(frozen=True)
class Assign(Action):
    assign_to: str
    operand: Operand


@dataclass(frozen=True)
class AssignStr(Action):
    assign_to: str
    value: MessageTemplate


@dataclass(frozen=True)
class Arith(Action):
    assign_to: str
    op: str  # add, subtract, multiply, divide
    operand: Operand


@dataclass(frozen=True)
class ToDouble(Action):
    assign_to: str
    variable: str


@dataclass(frozen=True)
class Test(Action):
    assign_to: str | None  # optional with check_it / check_it_inverse, as in SIPp
    variable: str
    compare: str
    operand: Operand  # value= or variable2=
    check_it: bool = False
    check_it_inverse: bool = False


@dataclass(frozen=True)
class Strcmp(Action):
    assign_to: str | None
    variable: str
    variable2: str | None
    value: str | None
    check_it: bool = False
    check_it_inverse: bool = False


@dataclass(frozen=True)
class GetTimeOfDay(Action):
    seconds_to: str
    microseconds_to: str


@dataclass(frozen=True)
class Sample(Action):
    assign_to: str
    sampler: Callable[[], float]


@dataclass(frozen=True)
class StringEdit(Action):
    """trim (of assign_to), urlencode and urldecode (of variable): a variable rewritten in place."""

    op: str
    variable: str


@dataclass(frozen=True)
class Log(Action):
    message: MessageTemplate


@dataclass(frozen=True)
class Warning(Action):  # SIPp's action name, shadowing the builtin only inside this module
    message: MessageTemplate


@dataclass(frozen=True)
class Error(Action):
    message: MessageTemplate


@dataclass(frozen=True)
class Exec(Action):
    command: MessageTemplate | None = None
    int_cmd: str | None = None
    rtp_stream: str | None = None
    rtp: RtpStreamAction | None = None
    play_pcap_audio: str | None = None
    play_pcap_video: str | None = None


@dataclass(frozen=True)
class Jump(Action):
    operand: Operand


@dataclass(frozen=True)
class SetDest(Action):
    host: MessageTemplate
    port: MessageTemplate
    protocol: str


# ---------------------------------------------------------------- steps
@dataclass
class Step:
    line: int
    actions: tuple[Action, ...] = ()
    next: str | None = None
    test: str | None = None
    chance: float | None = None
    condexec: str | None = None
    condexec_inverse: bool = False
    lost: float | None = None
    start_rtd: list[str] = field(default_factory=list)
    rtd: list[str] = field(default_factory=list)
    repeat_rtd: bool = False
    timeout_ms: int = 0
    ontimeout: str | None = None
    display: str | None = None
    counter: str | None = None  # counter="name": SIPp's generic counter of the messages that pass

    def label(self) -> str:
        """The row title of SIPp's scenario screen."""
        return type(self).__name__


@dataclass
class Send(Step):
    message: MessageTemplate = field(default_factory=lambda: MessageTemplate.compile("", sip=False))
    retrans_ms: int = 0

    def label(self) -> str:
        first = self.message.first_line.split(" ")
        word = (first[1] if first[0].startswith("SIP/") and len(first) > 1 else first[0]) or "message"
        return f"{word:>10} ---------->"


@dataclass
class Recv(Step):
    response: int | None = None
    request: str | None = None
    # regexp_match="true" on a response: the response= text, a regexp SIPp searches the
    # status code's digits with (so "^18.$" takes 180 and 183); `response` is then None.
    response_regexp: str | None = None
    optional: bool = False
    optional_global: bool = False
    regexp_match: bool = False
    rrs: bool = False
    auth: bool = False

    def pattern(self) -> re.Pattern[str]:
        """The regexp of regexp_match="true": over the method, or over the status code."""
        return _compiled(
            self.request if self.request is not None else self.response_regexp or "", posix=False
        )

    @property
    def expects_response(self) -> bool:
        return self.response is not None or self.response_regexp is not None

    def accepts_request(self, method: str) -> bool:
        """SIPp's matches_scenario for a request: regexp_match is a search (POSIX regexec,
        no implicit anchors) over the method."""
        if self.request is None:
            return False
        if self.regexp_match:
            return self.pattern().search(method) is not None
        return method == self.request

    def label(self) -> str:
        if self.response_regexp is not None:
            what = self.response_regexp
        else:
            what = str(self.response) if self.response is not None else (self.request or "")
        return f"<---------- {what:<10}" + (" (opt)" if self.optional else "")


@dataclass
class Pause(Step):
    milliseconds: int | None = None
    variable: str | None = None
    default_ms: int | None = None  # a built-in's default hold when neither -d nor milliseconds
    sampler: Callable[[], float] | None = None

    def sample_ms(self) -> float | None:
        return None if self.sampler is None else max(0.0, self.sampler())

    def label(self) -> str:
        if self.milliseconds is not None:
            return f"[{self.milliseconds:>7} ms]"
        return "[  Pause  ]"


@dataclass
class Timewait(Pause):
    """SIPp's <timewait>: a pause in every respect (length, variable, distribution, -d), the
    last step, kept for the peer's late retransmissions."""

    def label(self) -> str:
        return f"{super().label()} timewait"


@dataclass
class Nop(Step):
    def label(self) -> str:
        return "[   NOP   ]"


@dataclass
class SendCmd(Step):
    message: MessageTemplate = field(default_factory=lambda: MessageTemplate.compile("", sip=False))
    dest: str | None = None

    def label(self) -> str:
        return "3PCC ----------> cmd"


@dataclass
class RecvCmd(Step):
    src: str | None = None

    def label(self) -> str:
        return "3PCC <---------- cmd"


# ---------------------------------------------------------------- scenario
@dataclass
class Scenario:
    name: str
    steps: list[Step]
    labels: dict[str, int]
    response_time_repartition: tuple[int, ...] | None = None
    call_length_repartition: tuple[int, ...] | None = None
    global_variables: frozenset[str] = frozenset()  # <Global variables=...>: the names -set may set
    _rtd_names: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def creation_mode(self) -> str | None:
        """'client' or 'server' from the first message step, pauses and nops skipped, as
        SIPp's computeSippMode decides; None when the scenario has no message step."""
        for step in self.steps:
            if isinstance(step, Send | SendCmd):
                return "client"
            if isinstance(step, Recv | RecvCmd):
                return "server"
        return None

    @property
    def is_uac(self) -> bool:
        """A client scenario starts by sending a SIP message."""
        for step in self.steps:
            if isinstance(step, Send | SendCmd):
                return isinstance(step, Send)
            if isinstance(step, Recv | RecvCmd):
                return False
        return False

    def starts_with(self, method: str) -> bool:
        """Whether a request of this method starts a call of this (server) scenario: the first
        receive, or an optional one before it, takes it. Anything else that comes with a new
        Call-ID (an SBC's OPTIONS ping, a stray NOTIFY) is out of call, not a call."""
        for step in self.steps:
            if not isinstance(step, Recv):
                return False
            if step.accepts_request(method):
                return True
            if not step.optional:
                return False
        return False

    @property
    def uses_3pcc(self) -> bool:
        return any(isinstance(step, SendCmd | RecvCmd) for step in self.steps)

    @property
    def rtd_names(self) -> list[str]:
        """Response-time timers, in order of first mention; each starts with the call unless restarted."""
        if self._rtd_names is None:  # every new call asks
            names: dict[str, None] = {}
            for step in self.steps:
                names.update(dict.fromkeys([*step.start_rtd, *step.rtd]))
            self._rtd_names = list(names)
        return self._rtd_names

    def media_actions(self) -> list[Exec]:
        """The <exec> actions that open media sockets for a call (rtp_stream, pcap play)."""
        return [
            action
            for step in self.steps
            for action in step.actions
            if isinstance(action, Exec)
            and (action.rtp is not None or action.play_pcap_audio or action.play_pcap_video)
        ]

    def step_labels(self) -> list[str]:
        return [step.display or step.label() for step in self.steps]


# ---------------------------------------------------------------- pause distributions
def make_sampler(kind: str, params: dict[str, float]) -> Callable[[], float]:
    """SIPp's pause distributions; parameters in milliseconds. Raises KeyError/ValueError."""
    rng = random.random
    if kind == "fixed":
        value = params["value"]
        return lambda: value
    if kind == "uniform":
        low, high = params["min"], params["max"]
        return lambda: low + (high - low) * rng()
    if kind == "normal":
        mean, stdev = params["mean"], params["stdev"]
        return lambda: random.gauss(mean, stdev)
    if kind == "exponential":
        mean = params["mean"]
        return lambda: random.expovariate(1.0 / mean) if mean > 0 else 0.0
    if kind == "lognormal":
        mean, stdev = params["mean"], params["stdev"]
        return lambda: random.lognormvariate(mean, stdev)
    if kind == "weibull":
        lam, k = params["lambda"], params["k"]
        return lambda: random.weibullvariate(lam, k)
    if kind == "pareto":
        k, x_m = params["k"], params["x_m"]
        return lambda: x_m * random.paretovariate(k)
    if kind == "gamma":
        k, theta = params["k"], params["theta"]
        return lambda: random.gammavariate(k, theta)
    if kind == "negbin":
        n, p = params["n"], params["p"]
        return lambda: _negative_binomial(n, p)
    raise ValueError(f"unknown distribution {kind!r}")


def _negative_binomial(n: float, p: float) -> float:
    """Failures before n successes with success probability p (Poisson-gamma mixture)."""
    rate = random.gammavariate(n, (1 - p) / p) if 0 < p < 1 else 0.0
    # Knuth's Poisson sampler is fine at the small means pause scenarios use.
    limit, count, product = math.exp(-rate), 0, random.random()
    while product > limit:
        count += 1
        product *= random.random()
    return float(count)


# Each regexp compiled once per run: a property of a frozen step cannot keep it, and the
# compiled engine would work a cached_property out again on every read.
_PATTERNS: dict[tuple[str, bool], re.Pattern[str]] = {}


def _compiled(regexp: str, posix: bool) -> re.Pattern[str]:
    pattern = _PATTERNS.get((regexp, posix))
    if pattern is None:
        pattern = _PATTERNS[(regexp, posix)] = compile_posix(regexp) if posix else re.compile(regexp)
    return pattern
