"""HTTP Digest answers to SIP 401/407 challenges ([authentication] in scenarios).

RFC 2617 with RFC 7616's SHA-256. As SIPp's auth.cpp does: when a challenge offers both
qop values, "auth-int" is chosen (it also covers the body), and the nonce count is the
number of answers given to the same challenge so far (1 for the first).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable

_HASHES: dict[str, Callable[[bytes], str]] = {
    "md5": lambda data: hashlib.md5(data).hexdigest(),
    "sha-256": lambda data: hashlib.sha256(data).hexdigest(),
}
_PARAM = re.compile(r'\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*(?:,|$)')
_ESCAPED = re.compile(r"\\(.)")


def parse_challenge(challenge: str) -> dict[str, str]:
    """The parameters of a `Digest k=v, k="v"` header value, names lower-cased."""
    scheme, _, text = challenge.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"not a Digest challenge: {challenge[:80]!r}")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(text):
        name, quoted, bare = match.groups()
        params[name.lower()] = _ESCAPED.sub(r"\1", quoted) if quoted is not None else bare
    return params


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def digest_authorization(
    challenge: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    *,
    nonce_count: int = 1,
    cnonce: str | None = None,
) -> str:
    """The Authorization/Proxy-Authorization value answering a WWW-/Proxy-Authenticate value.

    cnonce is normally random; it is a parameter so that published examples can be checked.
    """
    params = parse_challenge(challenge)
    algorithm = params.get("algorithm", "MD5")
    base, sess, suffix = algorithm.lower().partition("-sess")
    hash_hex = _HASHES.get(base)
    if hash_hex is None or suffix:
        raise ValueError(
            f"unsupported digest algorithm {algorithm!r} (supported: MD5, MD5-sess, SHA-256, SHA-256-sess)"
        )
    realm = params.get("realm", "")
    nonce = params.get("nonce")
    if not nonce:
        raise ValueError(f"Digest challenge without a nonce: {challenge[:80]!r}")
    offered = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
    if offered and not {"auth", "auth-int"} & set(offered):
        raise ValueError(f"unsupported digest qop {params['qop']!r} (supported: auth, auth-int)")
    qop = "auth-int" if "auth-int" in offered else ("auth" if offered else None)
    cnonce = cnonce or secrets.token_hex(8)
    nc = f"{nonce_count:08x}"

    def digest(*parts: str) -> str:
        return hash_hex(":".join(parts).encode("utf-8"))

    ha1 = digest(username, realm, password)
    if sess:
        ha1 = digest(ha1, nonce, cnonce)
    ha2 = digest(method, uri, hash_hex(body)) if qop == "auth-int" else digest(method, uri)
    response = digest(ha1, nonce, nc, cnonce, qop, ha2) if qop else digest(ha1, nonce, ha2)
    fields = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={algorithm}",
    ]
    if qop or sess:
        fields.append(f"cnonce={_quote(cnonce)}")
    if qop:
        fields.extend((f"nc={nc}", f"qop={qop}"))
    if "opaque" in params:
        fields.append(f"opaque={_quote(params['opaque'])}")
    return "Digest " + ", ".join(fields)
