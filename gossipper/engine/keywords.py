"""Values of [keyword]s for one call (SPEC section 2), as SIPp computes them.

The scenario layer checks keyword names at load and splits messages into literal
text and tokens; this module answers each token for a live call.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from gossipper.engine import authentication
from gossipper.engine.context import CallContext, RunContext, format_variable
from gossipper.scenario.keywords import fill_arguments
from gossipper.scenario.template import MessageTemplate
from gossipper.sip.message import canonical_header_name

AUTH_PLACEHOLDER = authentication.MARK  # in a rendered message: it needs the authentication step

_OFFSET = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<offset>[+-]\d+)?$")
_LEADING_DIGITS = re.compile(r"\d+")
_ARGUMENT = re.compile(r'(\w+)=("([^"]*)"|\S+)')


def _arguments(text: str) -> dict[str, str]:
    return {
        m.group(1): m.group(3) if m.group(3) is not None else m.group(2) for m in _ARGUMENT.finditer(text)
    }


def _ip_type(ip: str) -> str:
    return "6" if ":" in ip else "4"


def _bracket_ip(ip: str) -> str:
    """IPv6 addresses appear bracketed in SIP URIs, as [local_ip] does in SIPp with -i ::1."""
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def _last_header(spec: str) -> Callable[[CallContext], str]:
    """[last_Name:] copies the header lines of the last received message, [last_Name:value]
    their values only. The header's key and label are worked out once: a UAS's every answer
    copies four or five of them."""
    if spec == "Request_URI":
        return to_uri
    value_only = spec.endswith(":value")
    name = spec[: -len(":value")] if value_only else spec.rstrip(":")
    key = canonical_header_name(name)
    prefix = ("Call-ID" if name.lower() == "call-id" else name) + ": "

    def last(call: CallContext) -> str:
        message = call.last_message
        if message is None:
            return ""
        values = message.indexed_values(key)
        if value_only:
            return ", ".join(values)
        if len(values) == 1:
            return prefix + values[0]
        return "\r\n".join([prefix + value for value in values])

    return last


def resolve(call: CallContext, token: str) -> str:
    """The text that replaces [token] in a message sent by this call."""
    return resolver(call.run, token)(call)


def resolver(run: RunContext, token: str) -> Callable[[CallContext], str]:
    """The function that answers [token] for any call of the run, compiled on first use."""
    answer = run.token_resolvers.get(token)
    if answer is None:
        answer = run.token_resolvers[token] = _compile(token.strip(), run.keywords.keys)
    return answer


def render_message(call: CallContext, template: MessageTemplate) -> bytes:
    """The wire bytes of a <send> for this call; each template is bound to the run's
    resolvers once, since every call renders the same few templates again and again."""
    run = call.run
    bound = run.bound_templates.get(id(template))
    if bound is None:
        bound = run.bound_templates[id(template)] = template.bind(
            lambda token: resolver(run, token), lambda token: run_constant(run, token)
        )
    return bound.render(call)


# Keywords whose value is the run's, never a call's: [local_ip], [service], [transport], ...
_RUN_WIDE = frozenset(
    {"service", "local_ip", "local_ip_type", "media_ip", "media_ip_type", "transport", "pid", "sipp_version"}
)


def run_constant(run: RunContext, token: str) -> str | None:
    """[token]'s text when every call of the run gets the same (None otherwise), so that a
    template can hold it as literal text. [local_port] is one unless calls have sockets of
    their own; a -key value always is."""
    token = token.strip()
    if token in run.keywords.keys:
        return run.keywords.keys[token]
    match = _OFFSET.match(token)
    if match is None:
        return None
    name = match.group("name")
    if name in _RUN_WIDE or (name == "local_port" and run.calls_share_port):
        return resolver(run, token)(CallContext(run=run, number=0, call_id="", remote=("", 0)))
    return None


def _compile(token: str, keys: Mapping[str, str]) -> Callable[[CallContext], str]:
    """What [token] means, worked out once: every message of every call asks again."""
    if token.startswith("$"):
        name = token[1:]

        def variable(call: CallContext) -> str:
            value = call.variables.get(name)
            if value is None or (isinstance(value, float) and value == 0):
                return ""  # SIPp prints only a set variable, and a zero double counts as unset
            return format_variable(value)

        return variable
    plain = _OFFSET.match(token)
    own_keyword = plain is not None and plain.group("name") in _NUMERIC.keys() | _TEXT.keys()
    if token.startswith("last_") and not own_keyword:
        return _last_header(token[5:])  # [last_Header:]; [last_message] and [last_cseq_number] are keywords
    head, _, rest = token.partition(" ")
    if head.startswith("field"):
        arguments = _arguments(rest)
        line = MessageTemplate.compile(arguments["line"], sip=False) if "line" in arguments else None
        return lambda call: _field(call, head, arguments.get("file"), line)
    if head == "authentication":
        return _authentication(rest)
    if head == "fill":
        return _fill(fill_arguments(rest))
    if head in keys:
        value = keys[head]
        return lambda _call: value
    name, offset = _split_offset(token)
    numeric = _NUMERIC.get(name)
    if numeric is not None:
        return lambda call: str(numeric(call) + offset)
    if name == "branch":
        return lambda call: f"z9hG4bK-{call.run.pid}-{call.number}-{call.send_index - 1 + offset}"
    text = _TEXT.get(name)
    if text is None:
        raise KeyError(name)
    return text


def _split_offset(token: str) -> tuple[str, int]:
    """'cseq+1' -> ('cseq', 1)."""
    match = _OFFSET.match(token)
    if match is None:
        raise KeyError(token)
    return match.group("name"), int(match.group("offset") or 0)


def to_uri(call: CallContext) -> str:
    """SIPp's [last_Request_URI]: the URI of the last received message's To header, the
    text inside its <> (SIPp's only form); an addr-spec To without <> gives its URI too,
    where SIPp would give nothing and a request line would come out as 'ACK  SIP/2.0'."""
    message = call.last_message
    to = message.header("To") if message is not None else None
    if not to:
        return ""
    start = to.find("<")
    if start >= 0:
        end = to.find(">", start)
        return to[start + 1 : end] if end > start else ""
    return to.split(";", 1)[0].strip()


def _last_cseq_number(call: CallContext) -> int:
    """SIPp's [last_cseq_number]: the number of the last received CSeq, 0 without one."""
    message = call.last_message
    digits = _LEADING_DIGITS.match((message.header("CSeq") or "").strip()) if message is not None else None
    return int(digits.group()) if digits else 0


def _last_message(call: CallContext) -> str:
    """SIPp's [last_message]: the last received message as it came."""
    message = call.last_message
    if message is None:
        return ""
    return (message.raw or bytes(message)).decode("utf-8", errors="replace")


def next_url(call: CallContext) -> str:
    """[next_url]: the remote target learned by a recv with rrs="true" (its Contact, or a
    strict router), else [last_Request_URI] as in SIPp."""
    return call.next_url or to_uri(call)


def _field(call: CallContext, head: str, file: str | None, line: MessageTemplate | None) -> str:
    injection = call.run.injection
    source = injection.file(file)
    if source is None:
        return ""
    index = int(head[len("field") :] or 0)
    if line is None:
        number = call.injection_lines.get(source.path, 0)
    else:  # line="N" or line="[$var]"; like SIPp's atoi, what is not a number is line 0
        digits = _LEADING_DIGITS.match(line.render_text(lambda token: resolve(call, token)).strip())
        number = int(digits.group()) if digits else 0
    value = source.field(number, index)
    return authentication.embedded_markers(value, lambda text: _render_text(call, text))


def _authentication(arguments: str) -> Callable[[CallContext], str]:
    """[authentication username=... password=...]: the values may hold keywords ([field0], [$v])."""
    given = authentication.arguments(arguments)
    username = MessageTemplate.compile(given.get("username", ""), sip=False)
    password = MessageTemplate.compile(given.get("password", ""), sip=False)
    return lambda call: authentication.marker(
        username.render_text(lambda token: resolve(call, token)),
        password.render_text(lambda token: resolve(call, token)),
    )


def _fill(arguments: dict[str, str]) -> Callable[[CallContext], str]:
    """SIPp's [fill]: text= (default X) repeated to the length the variable holds."""
    text, name = arguments.get("text") or "X", arguments["variable"]

    def fill(call: CallContext) -> str:
        value = call.variables.get(name)
        length = int(value) if isinstance(value, float) and value > 0 else 0  # a string reads 0
        return (text * (length // len(text) + 1))[:length]

    return fill


def _render_text(call: CallContext, text: str) -> str:
    return MessageTemplate.compile(text, sip=False).render_text(lambda token: resolve(call, token))


_NUMERIC: dict[str, Callable[[CallContext], int]] = {
    "call_number": lambda call: call.number,
    "cseq": lambda call: call.cseq,
    "local_port": lambda call: call.local_port if call.local_port is not None else call.run.local_port,
    "remote_port": lambda call: call.shown_remote[1],
    "media_port": lambda call: call.media_port,
    "auto_media_port": lambda call: call.media_port,
    "rtpstream_audio_port": lambda call: call.media_port,
    "pid": lambda call: call.run.pid,
    "users": lambda call: call.run.keywords.users,
    "userid": lambda call: call.user_id,
    "last_cseq_number": lambda call: _last_cseq_number(call),
}
_TEXT: dict[str, Callable[[CallContext], str]] = {
    "service": lambda call: call.run.keywords.service,
    "remote_ip": lambda call: _bracket_ip(call.shown_remote[0]),
    "remote_ip_type": lambda call: _ip_type(call.shown_remote[0]),
    "local_ip": lambda call: _bracket_ip(call.run.local_ip),
    "local_ip_type": lambda call: _ip_type(call.run.local_ip),
    "media_ip": lambda call: call.run.media_ip,
    "media_ip_type": lambda call: _ip_type(call.run.media_ip),
    "transport": lambda call: call.run.transport_name,
    "call_id": lambda call: call.call_id,
    "peer_tag_param": lambda call: f";tag={call.peer_tag}" if call.peer_tag else "",
    "routes": lambda call: f"Route: {', '.join(call.route_set)}" if call.route_set else "",
    "next_url": next_url,
    "date": lambda _call: time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
    "timestamp": lambda _call: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
    "clock_tick": lambda _call: str(int(time.monotonic() * 1000)),
    "dynamic_id": lambda call: str(call.run.next_dynamic_id()),
    "sipp_version": lambda _call: "3.6.1-gossipper",
    "crypto_attribute": lambda call: call.run.crypto_attribute(call.call_id),
    "last_message": lambda call: _last_message(call),
}
