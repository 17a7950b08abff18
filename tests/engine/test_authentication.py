"""[authentication] rendered and answered as SIPp does: arguments holding keywords, an -inf
field holding the whole keyword, the header named by the challenge, the nonce count."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gossipper.engine.authentication import authorize
from gossipper.engine.context import CallContext, RunContext
from gossipper.engine.injection import Injection
from gossipper.engine.keywords import resolve
from gossipper.engine.settings import KeywordSettings
from gossipper.scenario.keywords import keyword_problem
from gossipper.scenario.template import MessageTemplate
from gossipper.sip.digest import parse_challenge

CHALLENGE = 'Digest realm="r", nonce="n", qop="auth"'


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _call(tmp_path: Path, remote_host: tuple[str, int] | None = None) -> CallContext:
    users = tmp_path / "users.csv"
    users.write_text("SEQUENTIAL\nalice;s3cret;[authentication username=carol password=pw3]\n")
    run = RunContext(
        keywords=KeywordSettings(),
        local_ip="127.0.0.1",
        local_port=5070,
        transport_name="UDP",
        media_ip="127.0.0.1",
        media_base_port=6000,
        injection=Injection([str(users)]),
        remote_host=remote_host,
    )
    call = CallContext(run=run, number=1, call_id="1@h", remote=("127.0.0.2", 5060))
    call.variables["pw"] = "from-variable"
    return call


def _send(call: CallContext, text: str) -> tuple[bytes, str | None]:
    template = MessageTemplate.compile(f"REGISTER sip:x SIP/2.0\n{text}\nContent-Length: 0\n\n")
    return authorize(template.render(lambda token: resolve(call, token)), call, "service", "password")


def _answer(data: bytes, header: str = "Authorization") -> dict[str, str]:
    line = next(line for line in data.decode().split("\r\n") if line.startswith(f"{header}: "))
    return parse_challenge(line.partition(": ")[2])


def _expected_response(user: str, password: str, fields: dict[str, str], uri: str) -> str:
    ha1 = _md5(f"{user}:r:{password}")
    return _md5(f"{ha1}:n:{fields['nc']}:{fields['cnonce']}:auth:{_md5(f'REGISTER:{uri}')}")


def test_arguments_hold_keywords_bare_or_quoted(tmp_path: Path) -> None:
    call = _call(tmp_path)
    call.challenge = ("Authorization", CHALLENGE)
    data, problem = _send(call, '[authentication username=[field0] password="[$pw]"]')
    fields = _answer(data)
    assert problem is None and fields["username"] == "alice"
    assert fields["uri"] == "sip:127.0.0.2:5060"  # sip:[remote_ip]:[remote_port], as SIPp
    assert fields["response"] == _expected_response("alice", "from-variable", fields, "sip:127.0.0.2:5060")


def test_a_field_holding_the_whole_keyword_is_answered(tmp_path: Path) -> None:
    call = _call(tmp_path)
    call.challenge = ("Proxy-Authorization", CHALLENGE)
    data, problem = _send(call, "[field2]")
    fields = _answer(data, "Proxy-Authorization")
    assert problem is None and b"[authentication" not in data
    assert fields["response"] == _expected_response("carol", "pw3", fields, "sip:127.0.0.2:5060")


def test_defaults_and_hex_password_and_the_rsa_remote(tmp_path: Path) -> None:
    call = _call(tmp_path, remote_host=("192.0.2.7", 5062))
    call.challenge = ("Authorization", CHALLENGE)
    fields = _answer(_send(call, "[authentication]")[0])
    assert fields["username"] == "service" and fields["uri"] == "sip:192.0.2.7:5062"
    assert fields["response"] == _expected_response("service", "password", fields, "sip:192.0.2.7:5062")
    fields = _answer(_send(call, "[authentication username=u password=0x616263]")[0])
    assert fields["response"] == _expected_response("u", "abc", fields, "sip:192.0.2.7:5062")


def test_the_nonce_count_restarts_with_each_challenge(tmp_path: Path) -> None:
    call = _call(tmp_path)
    call.challenge = ("Authorization", CHALLENGE)
    counts = [_answer(_send(call, "[authentication]")[0])["nc"] for _ in range(2)]
    call.challenge = ("Authorization", CHALLENGE)  # a new 401, even with the same text
    counts.append(_answer(_send(call, "[authentication]")[0])["nc"])
    assert counts == ["00000001", "00000002", "00000001"]


def test_without_a_challenge_the_line_is_left_out_and_said_why(tmp_path: Path) -> None:
    data, problem = _send(_call(tmp_path), "[authentication username=a]")
    assert data == b"REGISTER sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    assert problem is not None and "no challenge" in problem


def test_keywords_inside_the_arguments_are_checked_at_load() -> None:
    assert keyword_problem("authentication username=[field0] password=[$pw]", frozenset()) is None
    assert keyword_problem('authentication username="[nope]"', frozenset()) == "unknown keyword [nope]"


def test_auth_uri_replaces_the_remote_in_the_digest_uri(tmp_path: Path) -> None:
    call = _call(tmp_path)
    call.challenge = ("Authorization", CHALLENGE)
    template = MessageTemplate.compile("REGISTER sip:x SIP/2.0\n[authentication]\nContent-Length: 0\n\n")
    data, _ = authorize(template.render(lambda token: resolve(call, token)), call, "u", "p", "realm.example")
    fields = _answer(data)
    assert fields["uri"] == "sip:realm.example"
    assert fields["response"] == _expected_response("u", "p", fields, "sip:realm.example")
