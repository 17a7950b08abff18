"""SIPp XML scenario files to a model.Scenario, with errors that name file and line.

Everything that can be checked before the first call is checked here: elements,
attributes, keywords, label references, action arguments and rtp_stream values.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

from gossipper.errors import FileProblem
from gossipper.scenario import model
from gossipper.scenario.keywords import fill_arguments, keyword_problem
from gossipper.scenario.rtp_stream import parse_rtp_echo, parse_rtp_echo_switch, parse_rtp_stream
from gossipper.scenario.template import MessageTemplate
from gossipper.scenario.xmltree import Node, XmlSyntaxError, parse_xml

# What SIPp's scenario.cpp reads, element by element, split into what gossipper runs
# and what it refuses with a reason: a scenario never loads with a part that would do
# nothing here (docs/sipp-compatibility.md lists the same; tests keep the two equal).
MESSAGE_ELEMENTS = ("send", "recv", "pause", "timewait", "nop", "sendCmd", "recvCmd")
# Read for every message element by getCommonAttributes and getBookKeeping.
_COMMON = {
    "next",
    "test",
    "chance",
    "condexec",
    "condexec_inverse",
    "display",
    "crlf",
    "hide",
    "hiderest",
    "counter",
}
_RTD = {"start_rtd", "rtd", "repeat_rtd"}
_PAUSE = {"milliseconds", "variable", "distribution", "sanity_check"} | {
    "min", "max", "mean", "stdev", "value", "lambda", "k", "theta", "x_m", "n", "p",
    "normal", "exponential", "lognormal", "weibull", "pareto", "gamma",
}  # fmt: skip
STEP_ATTRIBUTES: dict[str, frozenset[str]] = {
    "send": frozenset(_COMMON | _RTD | {"retrans", "lost", "ontimeout"}),
    "recv": frozenset(
        _COMMON
        | _RTD
        | {"response", "request", "optional", "timeout", "ontimeout", "rrs", "auth", "regexp_match", "lost"}
    ),
    "pause": frozenset(_COMMON | _PAUSE),
    "timewait": frozenset(_COMMON - {"next"} | _PAUSE),
    "nop": frozenset(_COMMON),
    "label": frozenset({"id"}),
    "sendCmd": frozenset(_COMMON | {"dest"}),
    "recvCmd": frozenset(_COMMON | {"timeout", "ontimeout", "src"}),
}
_NOT_RUN = "gossipper does not implement it"
# (element, attribute) SIPp reads that gossipper refuses; "*" is every message element.
UNSUPPORTED_STEP_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("*", "ignoresdp"): "SDP of every received message is used",
    ("send", "start_txn"): "transaction-based response matching is not implemented",
    ("send", "ack_txn"): "transaction-based response matching is not implemented",
    ("recv", "response_txn"): "transaction-based response matching is not implemented",
    ("send", "timeout"): "sends never block, so there is no send timeout",
    ("recv", "advance_state"): _NOT_RUN,
    ("recvCmd", "optional"): "optional 3PCC commands are not implemented",
    ("timewait", "next"): "SIPp refuses next labels in <timewait> too",
    **{
        (element, attribute): "the generalized Pareto distribution is not implemented"
        for element in ("pause", "timewait")
        for attribute in ("shape", "scale", "location")
    },
    **{
        (element, attribute): "gossipper applies it only to <send> and <recv>"
        for element in ("pause", "timewait", "nop", "sendCmd", "recvCmd")
        for attribute in ("lost", *sorted(_RTD))
    },
    **{
        (element, "ontimeout"): "it acts only where a timeout can happen: <recv> and <recvCmd>"
        for element in ("pause", "timewait", "nop", "sendCmd")
    },
}
UNSUPPORTED_ELEMENTS: dict[str, str] = {
    "init": "the scenario initialization stanza is not implemented",
    "DefaultMessage": "scenario-defined default messages are not implemented",
}
DECLARATIONS = frozenset({"Global", "User", "Reference"})
# Each action's attributes as SIPp reads them.
ACTION_ATTRIBUTES: dict[str, frozenset[str]] = {
    "ereg": frozenset(
        {"regexp", "search_in", "header", "variable", "case_indep", "occurrence", "occurence", "start_line"}
        | {"check_it", "check_it_inverse", "assign_to"}
    ),
    "log": frozenset({"message"}),
    "warning": frozenset({"message"}),
    "error": frozenset({"message"}),
    "assign": frozenset({"assign_to", "value", "variable"}),
    "add": frozenset({"assign_to", "value", "variable"}),
    "subtract": frozenset({"assign_to", "value", "variable"}),
    "multiply": frozenset({"assign_to", "value", "variable"}),
    "divide": frozenset({"assign_to", "value", "variable"}),
    "assignstr": frozenset({"assign_to", "value"}),
    "gettimeofday": frozenset({"assign_to"}),
    "sample": frozenset({"assign_to", "distribution", "min", "max", "mean", "stdev", "value"})
    | frozenset({"lambda", "k", "theta", "x_m", "n", "p"}),
    "todouble": frozenset({"assign_to", "variable"}),
    "test": frozenset(
        {"assign_to", "variable", "variable2", "value", "compare", "check_it", "check_it_inverse"}
    ),
    "strcmp": frozenset({"assign_to", "variable", "variable2", "value", "check_it", "check_it_inverse"}),
    "trim": frozenset({"assign_to"}),
    "urlencode": frozenset({"variable"}),
    "urldecode": frozenset({"variable"}),
    "jump": frozenset({"value", "variable"}),
    "setdest": frozenset({"host", "port", "protocol"}),
    "exec": frozenset({"command", "int_cmd", "rtp_stream", "rtp_echo", "play_pcap_audio", "play_pcap_video"}),
    "rtp_echo": frozenset({"value", "variable"}),
}
UNSUPPORTED_ACTIONS: dict[str, str] = {
    "index": "gossipper does not number steps as SIPp's message index",
    "pauserestore": _NOT_RUN,
    "verifyauth": "gossipper does not verify credentials as a UAS",
    "lookup": "indexed injection files are not implemented",
    "insert": "injection files are read-only",
    "replace": "injection files are read-only",
    "closecon": _NOT_RUN,
}
UNSUPPORTED_ACTION_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("exec", "play_pcap_image"): "image (T.38) pcap play is not implemented",
    ("exec", "play_dtmf"): "DTMF play is not implemented",
    **{
        ("sample", attribute): "the generalized Pareto distribution is not implemented"
        for attribute in ("shape", "scale", "location")
    },
}
_COMPARES = {"equal", "not_equal", "greater_than", "less_than", "greater_than_equal", "less_than_equal"}
_INT_COMMANDS = {"stop_call", "stop_gracefully", "stop_now"}
# SIPp's get_bool: true/false in any case, else an integer.
_BOOL_WORDS = {"true": True, "false": False}
_FIELD = re.compile(r"^field\d+(?:\s|$)")
_FIELD_FILE = re.compile(r'\bfile="?([^"\s]+)"?')
_STATUS_CODE = re.compile(r"SIP/2\.0 +(\d+)(?:\s|$)")
_OLD_STYLE_DISTRIBUTIONS = ("normal", "exponential", "lognormal", "weibull", "pareto", "gamma")


class _Variables:
    """SIPp's guard against typos: every variable must be used at least twice.

    Each mention counts (assigned, read, or named in <Reference>), as the reference
    count of scenario.cpp's variable table does; "_" is exempt, as there.
    """

    def __init__(self, fail: Callable[[int, str], FileProblem]) -> None:
        self.fail = fail
        self.uses: dict[str, list[tuple[int, str]]] = {}  # name -> (line, where) of each use
        self.shared: dict[str, str] = {}  # <Global>/<User> names -> which declaration
        self.first_write: dict[str, tuple[int, str]] = {}

    def use(self, name: str, line: int, what: str, writes: bool = False) -> str:
        if not name:
            raise self.fail(line, f"{what}: a variable name may not be empty")
        if "$" in name or "," in name:
            raise self.fail(line, f"{what}: variable name {name!r} may not contain $ or ,")
        self.uses.setdefault(name, []).append((line, what))
        if writes:
            self.first_write.setdefault(name, (line, what))
        return name

    def declare(self, name: str, line: int, element: str) -> None:
        self.use(name, line, f"<{element}>")
        self.shared[name] = element

    def reference(self, name: str, line: int) -> None:
        if name not in self.uses:
            raise self.fail(line, f"<Reference> names variable {name!r}, which nothing before it uses")
        self.uses[name].append((line, "<Reference>"))

    def check(self) -> None:
        for name in (model.RETURN_ADDRESS, model.PAUSED_UNTIL):
            if name in self.uses:  # SIPp's loader looks them up once more (scenario.cpp find_var)
                self.uses[name].append((0, "the _unexp.main handling"))
        for name, (line, what) in self.first_write.items():
            if name in self.shared:
                raise self.fail(
                    line,
                    f"{what} writes <{self.shared[name]}> variable ${name}, which is not supported: "
                    "gossipper keeps every variable per call, never shared between calls",
                )
        for name in sorted(self.uses):  # SIPp reports the first by name
            uses = self.uses[name]
            if len(uses) < 2 and name != "_":
                line, what = uses[0]
                raise self.fail(
                    line,
                    f"{what}: variable ${name} is used only once (SIPp requires two uses; name it in "
                    f'<Reference variables="{name}"/> if that is meant)',
                )


class _Loader:
    def __init__(self, source: str, keys: frozenset[str], injection: frozenset[str] | None) -> None:
        self.source = source
        self.keys = keys
        self.injection = injection
        self.label_uses: list[tuple[str, int, str]] = []  # (label, line, attribute)
        self.variables = _Variables(self.fail)

    def fail(self, line: int, message: str) -> FileProblem:
        return FileProblem(f"{self.source}:{line}: {message}")

    # ------------------------------------------------------------ document
    def scenario(self, root: Node, default_name: str) -> model.Scenario:
        if root.tag != "scenario":
            raise self.fail(root.line, f"root element is <{root.tag}>, expected <scenario>")
        self.check_attributes(root, frozenset({"name"}))
        steps: list[model.Step] = []
        labels: dict[str, int] = {}
        rtt: tuple[int, ...] | None = None
        call_length: tuple[int, ...] | None = None
        global_variables: set[str] = set()
        optional_before: model.Recv | None = None  # the optional <recv> the last step was
        for node in root.children:
            if node.tag == "label":
                self.check_attributes(node, STEP_ATTRIBUTES["label"])
                name = self.required(node, "id")
                if name in labels:
                    raise self.fail(node.line, f"<label id={name!r}> defined twice")
                # A label names the index of the step after it; like SIPp's, it is no step itself.
                labels[name] = len(steps)
            elif node.tag in STEP_ATTRIBUTES:
                if steps and isinstance(steps[-1], model.Timewait):
                    raise self.fail(node.line, "<timewait> can only be the last step of a scenario")
                step = self.step(node)
                if optional_before is not None and not isinstance(step, model.Recv | model.RecvCmd):
                    # SIPp's checkOptionalRecv: optional receives must end in a mandatory one.
                    raise self.fail(
                        optional_before.line,
                        f"optional <recv> before <{node.tag}> (line {node.line}) without a mandatory "
                        "<recv> between them; remove one optional=",
                    )
                optional_before = step if isinstance(step, model.Recv) and step.optional else None
                steps.append(step)
            elif node.tag == "ResponseTimeRepartition":
                self.check_attributes(node, frozenset({"value"}))
                rtt = self.repartition(node)
            elif node.tag == "CallLengthRepartition":
                self.check_attributes(node, frozenset({"value"}))
                call_length = self.repartition(node)
            elif node.tag in DECLARATIONS:
                self.check_attributes(node, frozenset({"variables"}))
                for name in _names(self.required(node, "variables")):
                    if node.tag == "Reference":
                        self.variables.reference(name, node.line)
                    else:
                        self.variables.declare(name, node.line, node.tag)
                        if node.tag == "Global":
                            global_variables.add(name)
            elif node.tag in UNSUPPORTED_ELEMENTS:
                raise self.fail(node.line, f"<{node.tag}> is not supported: {UNSUPPORTED_ELEMENTS[node.tag]}")
            else:
                raise self.fail(node.line, f"unknown element <{node.tag}>")
        if not steps:
            raise self.fail(root.line, "scenario has no steps")
        for label, line, attribute in self.label_uses:
            if label not in labels:
                raise self.fail(line, f"{attribute}={label!r} names no <label id={label!r}>")
        self.variables.check()
        return model.Scenario(
            name=root.attrs.get("name", default_name) or default_name,
            steps=steps,
            labels=labels,
            response_time_repartition=rtt,
            call_length_repartition=call_length,
            global_variables=frozenset(global_variables),
        )

    def repartition(self, node: Node) -> tuple[int, ...]:
        text = self.required(node, "value")
        try:
            bounds = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise self.fail(
                node.line, f"<{node.tag}> value={text!r}: expected comma-separated integers"
            ) from None
        if not bounds or list(bounds) != sorted(bounds):
            raise self.fail(node.line, f"<{node.tag}> value={text!r}: expected increasing integers")
        return bounds

    # ------------------------------------------------------------ attributes
    def check_attributes(
        self,
        node: Node,
        allowed: frozenset[str],
        unsupported: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        """Every attribute is one gossipper acts on; SIPp's others are refused with the reason."""
        for name in node.attrs:
            if name in allowed:
                continue
            reason = unsupported(name)
            if reason is not None:
                raise self.fail(node.line, f"<{node.tag}> {name}= is not supported: {reason}")
            raise self.fail(node.line, f"<{node.tag}> has unknown attribute {name}=")

    def counter(self, node: Node) -> str | None:
        """SIPp's get_counter: a counter name is not empty and holds neither "$" nor ","."""
        name = node.attrs.get("counter")
        if name is not None and (not name or "$" in name or "," in name):
            raise self.fail(node.line, f'counter={name!r}: must be non-empty, without "$" or ","')
        return name

    def required(self, node: Node, name: str) -> str:
        value = node.attrs.get(name)
        if value is None or value == "":
            raise self.fail(node.line, f"<{node.tag}> needs the attribute {name}=")
        return value

    def integer(self, node: Node, name: str, default: int | None = None, minimum: int = 0) -> int | None:
        text = node.attrs.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise self.fail(node.line, f"<{node.tag}> {name}={text!r}: expected an integer") from None
        if value < minimum:
            raise self.fail(node.line, f"<{node.tag}> {name}={value}: must be at least {minimum}")
        return value

    def number(self, node: Node, name: str) -> float | None:
        text = node.attrs.get(name)
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            raise self.fail(node.line, f"<{node.tag}> {name}={text!r}: expected a number") from None

    def flag(self, node: Node, name: str, default: bool = False) -> bool:
        """SIPp's get_bool: true or false in any case, or an integer (non-zero is true)."""
        text = node.attrs.get(name)
        if text is None:
            return default
        word = _BOOL_WORDS.get(text.strip().lower())
        if word is not None:
            return word
        try:
            return int(text, 0) != 0
        except ValueError:
            raise self.fail(node.line, f"<{node.tag}> {name}={text!r}: expected true or false") from None

    def label_ref(self, node: Node, name: str) -> str | None:
        value = node.attrs.get(name)
        if value is not None:
            self.label_uses.append((value, node.line, name))
        return value

    def variable(self, node: Node, name: str) -> str:
        """A required attribute that names a variable, counted as one use of it."""
        writes = name == "assign_to" or node.tag in ("urlencode", "urldecode")
        return self.variables.use(self.required(node, name), node.line, f"<{node.tag}> {name}=", writes)

    def optional_variable(self, node: Node, name: str) -> str | None:
        return self.variable(node, name) if name in node.attrs else None

    def template(self, node: Node, text: str, sip: bool) -> MessageTemplate:
        template = MessageTemplate.compile(text, sip=sip)
        for token in template.tokens:
            problem = keyword_problem(token, self.keys)
            if problem is not None:
                raise self.fail(node.line, f"<{node.tag}>: {problem}")
            if self.injection is not None and _FIELD.match(token):
                self.check_injection(node, token)
            if token.startswith("$"):
                self.variables.use(token[1:].strip(), node.line, f"<{node.tag}> [{token}]")
            elif "[$" in token:  # [authentication password="[$pw]"], [field0 line="[$n]"]
                for inner in re.findall(r"\[\$([^\[\]]+)\]", token):
                    self.variables.use(inner.strip(), node.line, f"<{node.tag}> [{token}]")
            if token.startswith("fill "):
                filled = fill_arguments(token)["variable"]
                self.variables.use(filled, node.line, f"<{node.tag}> [fill variable=]")
        return template

    def check_injection(self, node: Node, token: str) -> None:
        """SIPp refuses [fieldN] without an -inf file, and file= naming none of them (message.cpp)."""
        assert self.injection is not None
        named = _FIELD_FILE.search(token)
        if named is None and not self.injection:
            raise self.fail(node.line, f"<{node.tag}>: [{token}] needs an injection file (-inf)")
        if (
            named is not None
            and named.group(1) not in self.injection
            and Path(named.group(1)).name not in self.injection
        ):
            raise self.fail(
                node.line, f"<{node.tag}>: [{token}] names {named.group(1)!r}, which is no -inf file"
            )

    # ------------------------------------------------------------ steps
    def step(self, node: Node) -> model.Step:
        tag = node.tag

        def unsupported(name: str) -> str | None:
            return UNSUPPORTED_STEP_ATTRIBUTES.get((tag, name), UNSUPPORTED_STEP_ATTRIBUTES.get(("*", name)))

        self.check_attributes(node, STEP_ATTRIBUTES[tag], unsupported)
        common = self.common(node)
        builders: dict[str, Callable[[Node, dict[str, object]], model.Step]] = {
            "send": self.send,
            "recv": self.recv,
            "pause": self.pause,
            "timewait": self.pause,
            "nop": lambda n, c: model.Nop(**c),  # type: ignore[arg-type]
            "sendCmd": self.send_cmd,
            "recvCmd": lambda n, c: model.RecvCmd(src=n.attrs.get("src"), **c),  # type: ignore[arg-type]
        }
        return builders[tag](node, common)

    def common(self, node: Node) -> dict[str, object]:
        next_label = self.label_ref(node, "next")
        # SIPp reads test= and chance= only with next=: without it they name no branch.
        test = self.optional_variable(node, "test") if next_label is not None else None
        chance = self.number(node, "chance")
        if chance is not None and not 0 <= chance <= 1:
            raise self.fail(node.line, f"<{node.tag}> chance={chance}: must be between 0 and 1")
        lost = self.number(node, "lost")
        if lost is not None and not 0 <= lost <= 100:
            raise self.fail(node.line, f"<{node.tag}> lost={lost}: must be a percentage 0..100")
        for screen_only in ("hide", "hiderest"):  # SIPp's get_bool refuses a value it cannot read
            self.flag(node, screen_only)
        rtd = _rtd_names(node.attrs.get("rtd"))
        if "repeat_rtd" in node.attrs and not rtd:
            raise self.fail(node.line, f"<{node.tag}> repeat_rtd= needs rtd=")
        return {
            "line": node.line,
            "actions": self.actions(node),
            "next": next_label,
            "test": test,
            "chance": chance,
            "condexec": self.optional_variable(node, "condexec"),
            "condexec_inverse": self.flag(node, "condexec_inverse"),
            "lost": lost,
            "start_rtd": _rtd_names(node.attrs.get("start_rtd")),
            "rtd": rtd,
            "repeat_rtd": self.flag(node, "repeat_rtd"),
            "timeout_ms": self.integer(node, "timeout", 0) or 0,
            "ontimeout": self.label_ref(node, "ontimeout"),
            "display": node.attrs.get("display"),
            "counter": self.counter(node),
        }

    def message_text(self, node: Node, what: str) -> str:
        """The first CDATA section, the only text SIPp takes as the message."""
        if node.cdata is None or not node.cdata.strip(" \t\r\n"):
            raise self.fail(node.line, f"<{node.tag}> has no {what} (CDATA)")
        return node.cdata

    def send(self, node: Node, common: dict[str, object]) -> model.Step:
        template = self.template(node, self.message_text(node, "message"), sip=True)
        first = template.first_line
        if template.method is None and not first.startswith("SIP/2.0 "):
            raise self.fail(node.line, f"<send>: first line {first!r} is neither a request nor a response")
        if template.method is None:
            # SIPp reads the code from the literal text: no keyword, 100..699 (message.cpp).
            code = _STATUS_CODE.match(template.head_lines[0][0])
            if code is None or not 100 <= int(code.group(1)) <= 699:
                raise self.fail(node.line, f"<send>: {first!r} needs a literal response code 100..699")
        retrans = self.integer(node, "retrans", 0, minimum=0) or 0
        return model.Send(message=template, retrans_ms=retrans, **common)  # type: ignore[arg-type]

    def recv(self, node: Node, common: dict[str, object]) -> model.Step:
        response_text, request = node.attrs.get("response"), node.attrs.get("request")
        if (response_text is None) == (request is None):
            raise self.fail(node.line, "<recv> needs exactly one of response= or request=")
        regexp_match = node.attrs.get("regexp_match") == "true"  # SIPp compares the word exactly
        response = None
        if response_text is not None and not regexp_match:
            response = self.integer(node, "response", minimum=100)
            if response is None or response > 699:
                raise self.fail(node.line, f"<recv> response={response_text!r}: expected a code 100..699")
        optional_text = node.attrs.get("optional", "false")
        if optional_text not in ("true", "false", "global"):  # SIPp's exact words
            raise self.fail(node.line, f"<recv> optional={optional_text!r}: expected true, false or global")
        step = model.Recv(
            response=response,
            request=request,
            response_regexp=response_text if regexp_match else None,
            optional=optional_text in ("true", "global"),
            optional_global=optional_text == "global",
            regexp_match=regexp_match,
            rrs=self.flag(node, "rrs"),
            auth=self.flag(node, "auth"),
            **common,  # type: ignore[arg-type]
        )
        if step.regexp_match:
            try:
                step.pattern()
            except re.error as error:
                attribute = "request" if request is not None else "response"
                text = request if request is not None else response_text
                raise self.fail(node.line, f"<recv> {attribute}={text!r}: bad regexp: {error}") from None
        return step

    def pause(self, node: Node, common: dict[str, object]) -> model.Step:
        if node.tag == "timewait" and common["next"] is not None:
            raise self.fail(
                node.line, "<timewait> next= is not supported: SIPp refuses next labels in <timewait> too"
            )
        variable = self.optional_variable(node, "variable")
        milliseconds, sampler = None, None
        if variable is None:
            milliseconds, sampler = self.duration(node)
        self.flag(node, "sanity_check", True)
        kind = model.Timewait if node.tag == "timewait" else model.Pause
        return kind(
            milliseconds=None if milliseconds is None else int(milliseconds),
            variable=variable,
            sampler=sampler,
            **common,  # type: ignore[arg-type]
        )

    def duration(self, node: Node) -> tuple[float | None, Callable[[], float] | None]:
        """A fixed pause in ms, or a sampler: SIPp's parse_distribution with its old-style forms
        (normal= etc. or min=/max= naming the distribution without distribution=)."""
        kind = node.attrs.get("distribution")
        if kind is None:
            kind = next((name for name in _OLD_STYLE_DISTRIBUTIONS if name in node.attrs), None)
            if kind is None and ("min" in node.attrs or "max" in node.attrs):
                kind = "uniform"
            if kind is None:
                return self.number(node, "milliseconds"), None
        return None, self.sampler(node, kind)

    def sampler(self, node: Node, kind: str) -> Callable[[], float]:
        params = {
            name: value
            for name in ("min", "max", "mean", "stdev", "value", "lambda", "k", "theta", "x_m", "n", "p")
            if (value := self.number(node, name)) is not None
        }
        try:
            return model.make_sampler(kind, params)
        except KeyError as missing:
            raise self.fail(
                node.line, f"<{node.tag} distribution={kind!r}> needs the attribute {missing.args[0]}="
            ) from None
        except ValueError as error:
            raise self.fail(node.line, f"<{node.tag}>: {error}") from None

    def send_cmd(self, node: Node, common: dict[str, object]) -> model.Step:
        if common["actions"]:
            raise self.fail(
                node.line, "<action> inside <sendCmd> is not supported: gossipper runs no actions there"
            )
        template = self.template(node, self.message_text(node, "command"), sip=True)
        return model.SendCmd(message=template, dest=node.attrs.get("dest"), **common)  # type: ignore[arg-type]

    # ------------------------------------------------------------ actions
    def actions(self, node: Node) -> tuple[model.Action, ...]:
        found: list[model.Action] = []
        for index, child in enumerate(node.children):
            if child.tag != "action":
                raise self.fail(child.line, f"unknown element <{child.tag}> inside <{node.tag}>")
            if index:
                raise self.fail(
                    child.line, f"a second <action> in <{node.tag}>: SIPp reads only the first; join them"
                )
            if child.attrs:
                raise self.fail(child.line, f"<action> has unknown attribute {next(iter(child.attrs))}=")
            for action in child.children:
                found.append(self.action(action))
        return tuple(found)

    def action(self, node: Node) -> model.Action:
        tag, line = node.tag, node.line
        if tag in UNSUPPORTED_ACTIONS:
            raise self.fail(line, f"action <{tag}> is not supported: {UNSUPPORTED_ACTIONS[tag]}")
        allowed = ACTION_ATTRIBUTES.get(tag)
        if allowed is None:
            raise self.fail(line, f"unknown action <{tag}>")
        self.check_attributes(node, allowed, lambda name: UNSUPPORTED_ACTION_ATTRIBUTES.get((tag, name)))
        # SIPp refuses both of a pair: the right-hand side is value= or the variable naming it.
        second_operand = "variable2" if tag in ("test", "strcmp") else "variable"
        for first, second in (("check_it", "check_it_inverse"), ("value", second_operand)):
            if first in node.attrs and second in node.attrs:
                raise self.fail(line, f"<{tag}> takes {first}= or {second}=, not both")
        if tag == "ereg":
            return self.ereg(node)
        if tag == "assign":
            return model.Assign(line, self.variable(node, "assign_to"), self.operand(node))
        if tag == "assignstr":
            assign_to = self.variable(node, "assign_to")
            return model.AssignStr(line, assign_to, self.template(node, self.required(node, "value"), False))
        if tag in ("add", "subtract", "multiply", "divide"):
            assign_to = self.variable(node, "assign_to")
            operand = self.operand(node)
            if tag == "divide" and operand.value == 0:
                raise self.fail(line, "<divide> value=0: cannot divide by zero")
            return model.Arith(line, assign_to, tag, operand)
        if tag == "todouble":
            return model.ToDouble(line, self.variable(node, "assign_to"), self.variable(node, "variable"))
        if tag in ("test", "strcmp"):
            return self.comparison(node)
        if tag == "gettimeofday":
            names = _names(self.required(node, "assign_to"))
            if len(names) != 2:
                raise self.fail(line, "<gettimeofday> assign_to= needs two variables (seconds,microseconds)")
            return model.GetTimeOfDay(
                line, *(self.variables.use(name, line, "<gettimeofday> assign_to=", True) for name in names)
            )
        if tag == "sample":
            assign_to = self.variable(node, "assign_to")
            return model.Sample(line, assign_to, self.sampler(node, self.required(node, "distribution")))
        if tag in ("trim", "urlencode", "urldecode"):
            return model.StringEdit(
                line, tag, self.variable(node, "assign_to" if tag == "trim" else "variable")
            )
        if tag in ("log", "warning", "error"):
            message = self.template(node, self.required(node, "message"), sip=False)
            kind = {"log": model.Log, "warning": model.Warning, "error": model.Error}[tag]
            return kind(line, message)
        if tag == "exec":
            return self.exec_action(node)
        if tag == "rtp_echo":
            return self.rtp_echo_switch(node)
        if tag == "jump":
            return model.Jump(line, self.operand(node))
        # setdest, the last of ACTION_ATTRIBUTES
        protocol = self.required(node, "protocol").lower()
        if protocol not in ("udp", "tcp"):
            raise self.fail(line, f"<setdest> protocol={protocol!r}: expected udp or tcp")
        return model.SetDest(
            line,
            self.template(node, self.required(node, "host"), sip=False),
            self.template(node, self.required(node, "port"), sip=False),
            protocol,
        )

    def operand(self, node: Node) -> model.Operand:
        """SIPp's right-hand side: value= is a number, variable= always names a variable."""
        if "value" in node.attrs:
            return model.Operand(value=self.number(node, "value"))
        if "variable" in node.attrs:
            return model.Operand(variable=self.variable(node, "variable"))
        raise self.fail(node.line, f"<{node.tag}> needs the attribute value= or variable=")

    def comparison(self, node: Node) -> model.Action:
        check_it, check_it_inverse = self.flag(node, "check_it"), self.flag(node, "check_it_inverse")
        # assign_to may go when check_it or check_it_inverse is there, as in SIPp.
        if "assign_to" in node.attrs or not ("check_it" in node.attrs or "check_it_inverse" in node.attrs):
            assign_to: str | None = self.variable(node, "assign_to")
        else:
            assign_to = None
        variable = self.variable(node, "variable")
        if node.tag == "test":
            compare = self.required(node, "compare")
            if compare not in _COMPARES:
                raise self.fail(
                    node.line, f"<test> compare={compare!r}: expected one of {', '.join(sorted(_COMPARES))}"
                )
            if "value" in node.attrs:
                operand = model.Operand(value=self.number(node, "value"))
            else:
                operand = model.Operand(variable=self.variable(node, "variable2"))
            return model.Test(node.line, assign_to, variable, compare, operand, check_it, check_it_inverse)
        value = node.attrs.get("value")
        variable2 = None if value is not None else self.variable(node, "variable2")
        return model.Strcmp(node.line, assign_to, variable, variable2, value, check_it, check_it_inverse)

    def ereg(self, node: Node) -> model.Action:
        line = node.line
        regexp = self.required(node, "regexp")
        search_in = node.attrs.get("search_in", "msg")
        if search_in not in ("msg", "hdr", "body", "var"):
            raise self.fail(line, f"<ereg> search_in={search_in!r}: expected msg, hdr, body or var")
        # SIPp reads these only for search_in="hdr" and silently drops them elsewhere.
        for name in ("header", "case_indep", "start_line", "occurrence", "occurence"):
            if name in node.attrs and search_in != "hdr":
                raise self.fail(line, f'<ereg> {name}= applies only to search_in="hdr"')
        if "variable" in node.attrs and search_in != "var":
            raise self.fail(line, '<ereg> variable= applies only to search_in="var"')
        if search_in == "hdr" and not node.attrs.get("header"):
            raise self.fail(line, "<ereg search_in='hdr'> needs the attribute header=")
        variable = self.variable(node, "variable") if search_in == "var" else None
        try:
            groups = model.compile_posix(regexp).groups
        except re.error as error:
            raise self.fail(line, f"<ereg> regexp={regexp!r}: {error}") from None
        occurrence_text = node.attrs.get("occurrence", node.attrs.get("occurence", "1"))
        try:
            occurrence = int(occurrence_text)
        except ValueError:
            raise self.fail(line, f"<ereg> occurrence={occurrence_text!r}: expected an integer") from None
        assign_to = tuple(
            self.variables.use(name, line, "<ereg> assign_to=", True)
            for name in _names(self.required(node, "assign_to"))
        )
        if len(assign_to) - 1 > min(groups, 9):
            raise self.fail(
                line,
                f"<ereg> assign_to= names {len(assign_to) - 1} sub-expression variables but the regexp "
                f"has {groups} groups" + (" (SIPp takes at most 9)" if groups > 9 else ""),
            )
        return model.Ereg(
            line=line,
            regexp=regexp,
            search_in=search_in,
            header=node.attrs.get("header"),
            case_indep=self.flag(node, "case_indep"),
            occurrence=occurrence,
            start_line=self.flag(node, "start_line"),
            check_it=self.flag(node, "check_it"),
            check_it_inverse=self.flag(node, "check_it_inverse"),
            assign_to=assign_to,
            variable=variable,
        )

    def exec_action(self, node: Node) -> model.Action:
        present = [name for name in ACTION_ATTRIBUTES["exec"] if name in node.attrs]
        if len(present) != 1:
            what = (
                "no attribute" if not present else f"{len(present)} commands ({', '.join(sorted(present))})"
            )
            raise self.fail(
                node.line,
                f"<exec> has {what}; SIPp runs exactly one of {', '.join(sorted(ACTION_ATTRIBUTES['exec']))}",
            )
        int_cmd = node.attrs.get("int_cmd")
        if int_cmd is not None and int_cmd not in _INT_COMMANDS:
            raise self.fail(
                node.line, f"<exec> int_cmd={int_cmd!r}: expected one of {', '.join(sorted(_INT_COMMANDS))}"
            )
        rtp_text = node.attrs.get("rtp_stream")
        echo_text = node.attrs.get("rtp_echo")
        rtp = None
        try:
            if rtp_text is not None:
                rtp = parse_rtp_stream(rtp_text)
            elif echo_text is not None:
                rtp, rtp_text = parse_rtp_echo(echo_text), f"rtp_echo={echo_text}"  # media's, like rtp_stream
        except ValueError as error:
            raise self.fail(node.line, str(error)) from None
        if rtp is not None and rtp.file is not None:
            rtp = dataclasses.replace(rtp, file=self.media_file(rtp.file))
        command = node.attrs.get("command")
        audio, video = node.attrs.get("play_pcap_audio"), node.attrs.get("play_pcap_video")
        return model.Exec(
            line=node.line,
            command=self.template(node, command, sip=False) if command is not None else None,
            int_cmd=int_cmd,
            rtp_stream=rtp_text,
            rtp=rtp,
            play_pcap_audio=None if audio is None else self.media_file(audio),
            play_pcap_video=None if video is None else self.media_file(video),
        )

    def rtp_echo_switch(self, node: Node) -> model.Action:
        """<rtp_echo value=|variable=>: carried to media as an exec, the path media actions take."""
        variable = self.optional_variable(node, "variable")
        try:
            rtp = parse_rtp_echo_switch(node.attrs.get("value"), variable)
        except ValueError as error:
            raise self.fail(node.line, str(error)) from None
        return model.Exec(line=node.line, rtp_stream=f"rtp_echo {rtp.switch_value}", rtp=rtp)

    def media_file(self, name: str) -> str:
        """SIPp's find_file: ~ expanded; a relative name beside the scenario file when it is
        there, else as given (from the working directory)."""
        expanded = os.path.expanduser(name)
        if os.path.isabs(expanded):
            return expanded
        beside = Path(self.source).parent / expanded
        return str(beside) if beside.is_file() else expanded


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _rtd_names(text: str | None) -> list[str]:
    """SIPp's get_rtd: "true" is the RTD named 1 (its ResponseTime1 columns), "false" none."""
    return [{"true": "1"}.get(name, name) for name in _names(text) if name != "false"]


def parse_scenario(
    data: bytes,
    source: str,
    keys: frozenset[str] = frozenset(),
    default_name: str = "",
    injection: frozenset[str] | None = None,
) -> model.Scenario:
    """Parse scenario XML; every problem is a FileProblem 'source:line: what'.

    `injection` holds the -inf files (paths and names) that [fieldN] may read; None skips
    that check, for scenarios parsed outside a run.
    """
    try:
        root = parse_xml(data)
    except XmlSyntaxError as error:
        raise FileProblem(f"{source}:{error.line}: XML error: {error}") from None
    return _Loader(source, keys, injection).scenario(root, default_name or Path(source).stem)


def load_scenario_file(
    path: str, keys: frozenset[str] = frozenset(), injection: frozenset[str] | None = None
) -> model.Scenario:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FileProblem(
            f"cannot read scenario {path}: {error.strerror or error}", setting="scenario_file"
        ) from None
    return parse_scenario(data, path, keys, injection=injection)
