from __future__ import annotations

import hashlib

import pytest

from gossipper.sip.digest import digest_authorization, parse_challenge

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def _md5(text: str | bytes) -> str:
    return hashlib.md5(text.encode() if isinstance(text, str) else text).hexdigest()


def test_rfc2617_example() -> None:
    answer = digest_authorization(
        RFC2617_CHALLENGE, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b"
    )
    fields = parse_challenge(answer)
    assert fields["response"] == "6629fae49393a05397450978507c4ef1"
    assert fields == {
        "username": "Mufasa",
        "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html",
        "response": "6629fae49393a05397450978507c4ef1",
        "algorithm": "MD5",
        "cnonce": "0a4f113b",
        "nc": "00000001",
        "qop": "auth",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
    }
    assert answer.startswith('Digest username="Mufasa", realm="testrealm@host.com", ')


def test_auth_int_hashes_the_body() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    challenge = 'Digest realm="sip.example", nonce="n0nce", qop="auth-int", algorithm=MD5'
    answer = digest_authorization(challenge, "INVITE", "sip:bob@127.0.0.1", "alice", "secret", body)
    fields = parse_challenge(answer)
    ha1 = _md5("alice:sip.example:secret")
    ha2 = _md5(f"INVITE:sip:bob@127.0.0.1:{_md5(body)}")
    expected = _md5(f"{ha1}:n0nce:00000001:{fields['cnonce']}:auth-int:{ha2}")
    assert fields["qop"] == "auth-int"
    assert fields["response"] == expected
    other = digest_authorization(
        challenge, "INVITE", "sip:bob@127.0.0.1", "alice", "secret", body + b"x", cnonce=fields["cnonce"]
    )
    assert parse_challenge(other)["response"] != expected


def test_no_qop_uses_rfc2069_form_without_cnonce() -> None:
    answer = digest_authorization('Digest realm="r", nonce="n"', "REGISTER", "sip:r", "u", "p")
    fields = parse_challenge(answer)
    assert fields["response"] == _md5(f"{_md5('u:r:p')}:n:{_md5('REGISTER:sip:r')}")
    assert fields["algorithm"] == "MD5"
    assert "cnonce" not in fields and "qop" not in fields and "opaque" not in fields


def test_md5_sess_and_sha256() -> None:
    sess = parse_challenge(
        digest_authorization(
            'Digest realm="r", nonce="n", qop=auth, algorithm=MD5-sess', "BYE", "sip:x", "u", "p", cnonce="c"
        )
    )
    ha1 = _md5(f"{_md5('u:r:p')}:n:c")
    assert sess["response"] == _md5(f"{ha1}:n:00000001:c:auth:{_md5('BYE:sip:x')}")
    assert sess["algorithm"] == "MD5-sess"

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    sha_answer = parse_challenge(
        digest_authorization('Digest realm="r", nonce="n", algorithm=SHA-256', "BYE", "sip:x", "u", "p")
    )
    assert sha_answer["response"] == sha(f"{sha('u:r:p')}:n:{sha('BYE:sip:x')}")
    assert sha_answer["algorithm"] == "SHA-256"


def test_quoted_values_with_commas_and_escapes() -> None:
    params = parse_challenge('Digest realm="a, \\"b\\"", nonce=xyz,qop="auth"')
    assert params == {"realm": 'a, "b"', "nonce": "xyz", "qop": "auth"}
    answer = digest_authorization('Digest realm="a, \\"b\\"", nonce=xyz', "BYE", "sip:x", 'we"ird', "p")
    assert parse_challenge(answer)["username"] == 'we"ird'


@pytest.mark.parametrize(
    ("challenge", "message"),
    [
        ('Digest realm="r", nonce="n", algorithm=SHA-512', "unsupported digest algorithm 'SHA-512'"),
        ('Digest realm="r", nonce="n", algorithm=MD5-sessX', "unsupported digest algorithm"),
        ('Digest realm="r", nonce="n", qop="auth-conf"', "unsupported digest qop"),
        ('Basic realm="r"', "not a Digest challenge"),
        ("", "not a Digest challenge"),
        ('Digest realm="r"', "without a nonce"),
    ],
)
def test_unsupported_challenges(challenge: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        digest_authorization(challenge, "INVITE", "sip:x", "u", "p")


def test_both_qops_offered_answers_auth_int_as_sipp_does() -> None:
    answer = digest_authorization(
        'Digest realm="r", nonce="n", qop="auth,auth-int"', "INVITE", "sip:x", "u", "p", b"body"
    )
    assert parse_challenge(answer)["qop"] == "auth-int"


def test_nonce_count_is_the_answers_number_in_hex() -> None:
    challenge = 'Digest realm="r", nonce="n", qop=auth'
    answer = digest_authorization(challenge, "BYE", "sip:x", "u", "p", nonce_count=26, cnonce="c")
    fields = parse_challenge(answer)
    assert fields["nc"] == "0000001a"
    assert fields["response"] == _md5(f"{_md5('u:r:p')}:n:0000001a:c:auth:{_md5('BYE:sip:x')}")
