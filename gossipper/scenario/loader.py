"""SIPp XML scenario files to a model.Scenario, with errors that name file and line.

Everything that can be checked before the first call is checked here: elements,
attributes, keywords, label references, action arguments and rtp_stream values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from gossipper.errors import FileProblem
from gossipper.scenario import model
from gossipper.scenario.keywords import keyword_problem
from gossipper.scenario.rtp_stream import parse_rtp_echo, parse_rtp_echo_switch, parse_rtp_stream
from gossipper.scenario.template import MessageTemplate
from gossipper.scenario.xmltree import Node, XmlSyntaxError, parse_xml

_COMMON = {"next", "test", "chance", "condexec", "condexec_inverse", "display", "counter", "hide", "crlf"}
_RTD = {"start_rtd", "rtd", "repeat_rtd"}
_STEP_ATTRIBUTES: dict[str, set[str]] = {
    "send": _COMMON | _RTD | {"retrans", "lost", "start_txn", "ack_txn", "timeout", "ontimeout"},
    "recv": _COMMON
    | _RTD
    | {"response", "request", "optional", "timeout", "ontimeout", "rrs", "auth", "regexp_match", "lost"}
    | {"response_txn", "ignoresdp"},
    "pause": _COMMON
    | {"milliseconds", "variable", "distribution", "sanity_check"}
    | {"min", "max", "mean", "stdev", "value", "lambda", "k", "theta", "x_m", "n", "p"},
    "nop": _COMMON | _RTD,
    "label": {"id"},
    "sendCmd": _COMMON | {"dest"},
    "recvCmd": _COMMON | {"src", "timeout", "ontimeout"},
    "timewait": _COMMON | {"milliseconds"},
}
_DECLARATIONS = {"Global", "User", "Reference", "DefaultTransport"}
_COMPARES = {"equal", "not_equal", "greater_than", "less_than", "greater_than_equal", "less_than_equal"}
_INT_COMMANDS = {"stop_call", "stop_gracefully", "stop_now"}
_TRUE = {"true", "yes", "1"}


class _Loader:
    def __init__(self, source: str, keys: frozenset[str]) -> None:
        self.source = source
        self.keys = keys
        self.label_uses: list[tuple[str, int, str]] = []  # (label, line, attribute)

    def fail(self, line: int, message: str) -> FileProblem:
        return FileProblem(f"{self.source}:{line}: {message}")

    # ------------------------------------------------------------ document
    def scenario(self, root: Node, default_name: str) -> model.Scenario:
        if root.tag != "scenario":
            raise self.fail(root.line, f"root element is <{root.tag}>, expected <scenario>")
        steps: list[model.Step] = []
        labels: dict[str, int] = {}
        rtt: tuple[int, ...] | None = None
        call_length: tuple[int, ...] | None = None
        for node in root.children:
            if node.tag == "label":
                name = self.required(node, "id")
                if name in labels:
                    raise self.fail(node.line, f"<label id={name!r}> defined twice")
                labels[name] = len(steps)
                steps.append(model.Label(line=node.line, name=name))
            elif node.tag in _STEP_ATTRIBUTES:
                steps.append(self.step(node))
            elif node.tag == "ResponseTimeRepartition":
                rtt = self.repartition(node)
            elif node.tag == "CallLengthRepartition":
                call_length = self.repartition(node)
            elif node.tag not in _DECLARATIONS:
                raise self.fail(node.line, f"unknown element <{node.tag}>")
        if not any(not isinstance(step, model.Label) for step in steps):
            raise self.fail(root.line, "scenario has no steps")
        for label, line, attribute in self.label_uses:
            if label not in labels:
                raise self.fail(line, f"{attribute}={label!r} names no <label id={label!r}>")
        return model.Scenario(
            name=root.attrs.get("name", default_name) or default_name,
            steps=steps,
            labels=labels,
            response_time_repartition=rtt,
            call_length_repartition=call_length,
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

    @staticmethod
    def flag(node: Node, name: str) -> bool:
        return node.attrs.get(name, "false").strip().lower() in _TRUE

    def label_ref(self, node: Node, name: str) -> str | None:
        value = node.attrs.get(name)
        if value is not None:
            self.label_uses.append((value, node.line, name))
        return value

    def template(self, node: Node, text: str, sip: bool) -> MessageTemplate:
        template = MessageTemplate.compile(text, sip=sip)
        for token in template.tokens:
            problem = keyword_problem(token, self.keys)
            if problem is not None:
                raise self.fail(node.line, f"<{node.tag}>: {problem}")
        return template

    # ------------------------------------------------------------ steps
    def step(self, node: Node) -> model.Step:
        allowed = _STEP_ATTRIBUTES[node.tag]
        for name in node.attrs:
            if name not in allowed:
                raise self.fail(node.line, f"<{node.tag}> has unknown attribute {name}=")
        common = self.common(node)
        builders: dict[str, Callable[[Node, dict[str, object]], model.Step]] = {
            "send": self.send,
            "recv": self.recv,
            "pause": self.pause,
            "nop": lambda n, c: model.Nop(**c),  # type: ignore[arg-type]
            "sendCmd": self.send_cmd,
            "recvCmd": lambda n, c: model.RecvCmd(src=n.attrs.get("src"), **c),  # type: ignore[arg-type]
            "timewait": lambda n, c: model.Timewait(
                milliseconds=self.integer(n, "milliseconds", 0) or 0,
                **c,  # type: ignore[arg-type]
            ),
        }
        return builders[node.tag](node, common)

    def common(self, node: Node) -> dict[str, object]:
        chance = self.number(node, "chance")
        if chance is not None and not 0 <= chance <= 1:
            raise self.fail(node.line, f"<{node.tag}> chance={chance}: must be between 0 and 1")
        lost = self.number(node, "lost")
        if lost is not None and not 0 <= lost <= 100:
            raise self.fail(node.line, f"<{node.tag}> lost={lost}: must be a percentage 0..100")
        return {
            "line": node.line,
            "actions": self.actions(node),
            "next": self.label_ref(node, "next"),
            "test": node.attrs.get("test"),
            "chance": chance,
            "condexec": node.attrs.get("condexec"),
            "condexec_inverse": self.flag(node, "condexec_inverse"),
            "lost": lost,
            "start_rtd": _rtd_names(node.attrs.get("start_rtd")),
            "rtd": _rtd_names(node.attrs.get("rtd")),
            "repeat_rtd": self.flag(node, "repeat_rtd"),
            "timeout_ms": self.integer(node, "timeout", 0) or 0,
            "ontimeout": self.label_ref(node, "ontimeout"),
            "display": node.attrs.get("display"),
            "counter": self.counter(node),
        }

    def send(self, node: Node, common: dict[str, object]) -> model.Step:
        if not node.text.strip():
            raise self.fail(node.line, "<send> has no message (CDATA)")
        template = self.template(node, node.text, sip=True)
        first = template.first_line
        if template.method is None and not first.startswith("SIP/2.0 "):
            raise self.fail(node.line, f"<send>: first line {first!r} is neither a request nor a response")
        retrans = self.integer(node, "retrans", 0, minimum=0) or 0
        return model.Send(message=template, retrans_ms=retrans, **common)  # type: ignore[arg-type]

    def recv(self, node: Node, common: dict[str, object]) -> model.Step:
        response_text, request = node.attrs.get("response"), node.attrs.get("request")
        if (response_text is None) == (request is None):
            raise self.fail(node.line, "<recv> needs exactly one of response= or request=")
        regexp_match = self.flag(node, "regexp_match")
        response = None
        if response_text is not None and not regexp_match:
            response = self.integer(node, "response", minimum=100)
            if response is None or response > 699:
                raise self.fail(node.line, f"<recv> response={response_text!r}: expected a code 100..699")
        optional_text = node.attrs.get("optional", "false").strip().lower()
        if optional_text not in _TRUE | {"false", "no", "0", "global"}:
            raise self.fail(node.line, f"<recv> optional={optional_text!r}: expected true, false or global")
        step = model.Recv(
            response=response,
            request=request,
            response_regexp=response_text if regexp_match else None,
            optional=optional_text in _TRUE | {"global"},
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
        milliseconds = self.integer(node, "milliseconds")
        sampler = None
        distribution = node.attrs.get("distribution")
        if distribution is not None:
            params = {
                name: value
                for name in ("min", "max", "mean", "stdev", "value", "lambda", "k", "theta", "x_m", "n", "p")
                if (value := self.number(node, name)) is not None
            }
            try:
                sampler = model.make_sampler(distribution, params)
            except KeyError as missing:
                raise self.fail(
                    node.line, f"<pause distribution={distribution!r}> needs the attribute {missing.args[0]}="
                ) from None
            except ValueError as error:
                raise self.fail(node.line, f"<pause>: {error}") from None
        return model.Pause(
            milliseconds=milliseconds,
            variable=node.attrs.get("variable"),
            sampler=sampler,
            **common,  # type: ignore[arg-type]
        )

    def send_cmd(self, node: Node, common: dict[str, object]) -> model.Step:
        if not node.text.strip():
            raise self.fail(node.line, "<sendCmd> has no command (CDATA)")
        template = self.template(node, node.text, sip=True)
        return model.SendCmd(message=template, dest=node.attrs.get("dest"), **common)  # type: ignore[arg-type]

    # ------------------------------------------------------------ actions
    def actions(self, node: Node) -> tuple[model.Action, ...]:
        found: list[model.Action] = []
        for child in node.children:
            if child.tag != "action":
                raise self.fail(child.line, f"unknown element <{child.tag}> inside <{node.tag}>")
            for action in child.children:
                found.append(self.action(action))
        return tuple(found)

    def action(self, node: Node) -> model.Action:
        tag, line = node.tag, node.line
        if tag == "ereg":
            search_in = node.attrs.get("search_in", "msg")
            if search_in not in ("msg", "hdr", "body"):
                raise self.fail(line, f"<ereg> search_in={search_in!r}: expected msg, hdr or body")
            if search_in == "hdr" and not node.attrs.get("header"):
                raise self.fail(line, "<ereg search_in='hdr'> needs the attribute header=")
            regexp = self.required(node, "regexp")
            try:
                re.compile(regexp)
            except re.error as error:
                raise self.fail(line, f"<ereg> regexp={regexp!r}: {error}") from None
            occurrence = node.attrs.get("occurrence", node.attrs.get("occurence", "1"))
            return model.Ereg(
                line=line,
                regexp=regexp,
                search_in=search_in,
                header=node.attrs.get("header"),
                case_indep=self.flag(node, "case_indep"),
                occurrence=int(occurrence) if occurrence.isdigit() else 1,
                start_line=self.flag(node, "start_line"),
                check_it=self.flag(node, "check_it"),
                check_it_inverse=self.flag(node, "check_it_inverse"),
                assign_to=tuple(_names(self.required(node, "assign_to"))),
            )
        if tag == "assign":
            return model.Assign(line, self.required(node, "assign_to"), self.value_or_variable(node))
        if tag == "assignstr":
            return model.AssignStr(
                line,
                self.required(node, "assign_to"),
                self.template(node, self.required(node, "value"), False),
            )
        if tag in ("add", "subtract", "multiply", "divide"):
            return model.Arith(line, self.required(node, "assign_to"), tag, self.value_or_variable(node))
        if tag == "todouble":
            return model.ToDouble(line, self.required(node, "assign_to"), self.required(node, "variable"))
        if tag == "test":
            compare = self.required(node, "compare")
            if compare not in _COMPARES:
                raise self.fail(
                    line, f"<test> compare={compare!r}: expected one of {', '.join(sorted(_COMPARES))}"
                )
            value = node.attrs.get("value", node.attrs.get("variable2"))
            if value is None:
                raise self.fail(line, "<test> needs the attribute value= or variable2=")
            return model.Test(
                line, self.required(node, "assign_to"), self.required(node, "variable"), compare, value
            )
        if tag == "strcmp":
            variable2, value = node.attrs.get("variable2"), node.attrs.get("value")
            if variable2 is None and value is None:
                raise self.fail(line, "<strcmp> needs the attribute value= or variable2=")
            return model.Strcmp(
                line, self.required(node, "assign_to"), self.required(node, "variable"), variable2, value
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
            if "value" not in node.attrs and "variable" not in node.attrs:
                raise self.fail(line, "<jump> needs the attribute value= or variable=")
            return model.Jump(line, node.attrs.get("variable"), node.attrs.get("value"))
        if tag == "setdest":
            protocol = self.required(node, "protocol").lower()
            if protocol not in ("udp", "tcp"):
                raise self.fail(line, f"<setdest> protocol={protocol!r}: expected udp or tcp")
            return model.SetDest(
                line,
                self.template(node, self.required(node, "host"), sip=False),
                self.template(node, self.required(node, "port"), sip=False),
                protocol,
            )
        raise self.fail(line, f"unknown action <{tag}>")

    def value_or_variable(self, node: Node) -> str:
        value = node.attrs.get("value", node.attrs.get("variable"))
        if value is None:
            raise self.fail(node.line, f"<{node.tag}> needs the attribute value= or variable=")
        return value

    def exec_action(self, node: Node) -> model.Action:
        known = {"command", "int_cmd", "rtp_stream", "rtp_echo", "play_pcap_audio", "play_pcap_video"}
        unknown = set(node.attrs) - known
        if unknown or not node.attrs:
            what = f"unknown attribute {sorted(unknown)[0]}=" if unknown else "no attribute"
            raise self.fail(node.line, f"<exec> has {what} (expected one of {', '.join(sorted(known))})")
        int_cmd = node.attrs.get("int_cmd")
        if int_cmd is not None and int_cmd not in _INT_COMMANDS:
            raise self.fail(
                node.line, f"<exec> int_cmd={int_cmd!r}: expected one of {', '.join(sorted(_INT_COMMANDS))}"
            )
        rtp_text = node.attrs.get("rtp_stream")
        echo_text = node.attrs.get("rtp_echo")
        if rtp_text is not None and echo_text is not None:
            raise self.fail(node.line, "<exec> takes rtp_stream= or rtp_echo=, not both")
        rtp = None
        try:
            if rtp_text is not None:
                rtp = parse_rtp_stream(rtp_text)
            elif echo_text is not None:
                rtp, rtp_text = parse_rtp_echo(echo_text), f"rtp_echo={echo_text}"  # media's, like rtp_stream
        except ValueError as error:
            raise self.fail(node.line, str(error)) from None
        command = node.attrs.get("command")
        return model.Exec(
            line=node.line,
            command=self.template(node, command, sip=False) if command is not None else None,
            int_cmd=int_cmd,
            rtp_stream=rtp_text,
            rtp=rtp,
            play_pcap_audio=node.attrs.get("play_pcap_audio"),
            play_pcap_video=node.attrs.get("play_pcap_video"),
        )

    def rtp_echo_switch(self, node: Node) -> model.Action:
        """<rtp_echo value=|variable=>: carried to media as an exec, the path media actions take."""
        unknown = set(node.attrs) - {"value", "variable"}
        if unknown:
            raise self.fail(node.line, f"<rtp_echo> has unknown attribute {sorted(unknown)[0]}=")
        try:
            rtp = parse_rtp_echo_switch(node.attrs.get("value"), node.attrs.get("variable"))
        except ValueError as error:
            raise self.fail(node.line, str(error)) from None
        return model.Exec(line=node.line, rtp_stream=f"rtp_echo {rtp.switch_value}", rtp=rtp)


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _rtd_names(text: str | None) -> list[str]:
    """SIPp's get_rtd: "true" is the RTD named 1 (its ResponseTime1 columns), "false" none."""
    return [{"true": "1"}.get(name, name) for name in _names(text) if name != "false"]


def parse_scenario(
    data: bytes, source: str, keys: frozenset[str] = frozenset(), default_name: str = ""
) -> model.Scenario:
    """Parse scenario XML; every problem is a FileProblem 'source:line: what'."""
    try:
        root = parse_xml(data)
    except XmlSyntaxError as error:
        raise FileProblem(f"{source}:{error.line}: XML error: {error}") from None
    return _Loader(source, keys).scenario(root, default_name or Path(source).stem)


def load_scenario_file(path: str, keys: frozenset[str] = frozenset()) -> model.Scenario:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FileProblem(
            f"cannot read scenario {path}: {error.strerror or error}", setting="scenario_file"
        ) from None
    return parse_scenario(data, path, keys)
