"""SRTP keyed by SDES (RFC 4568 a=crypto) and applied with libsrtp (pylibsrtp).

Each side sends its own master key in its SDP: the offerer proposes a tag and suite,
the answerer picks one it supports and answers with the same tag, suite and a key of
its own. We protect with our key and unprotect with the peer's, per call.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp

SUITE_80 = "AES_CM_128_HMAC_SHA1_80"
SUITE_32 = "AES_CM_128_HMAC_SHA1_32"
SUITES = {
    SUITE_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    SUITE_32: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
KEY_SALT_BYTES = 30  # 128-bit master key then 112-bit master salt (RFC 4568 section 6.2.1)
_PREFIX = "a=crypto:"


class SrtpRejected(Exception):
    """libsrtp refused a packet (authentication, replay, size); the packet is dropped."""


@dataclass(frozen=True)
class CryptoAttribute:
    tag: int
    suite: str
    key_salt: bytes

    @classmethod
    def new(cls, suite: str = SUITE_80, tag: int = 1) -> CryptoAttribute:
        return cls(tag, suite, secrets.token_bytes(KEY_SALT_BYTES))

    def answer(self) -> CryptoAttribute:
        """Our answer to this offer: same tag and suite, a fresh key."""
        return CryptoAttribute.new(self.suite, self.tag)

    def __str__(self) -> str:
        key = base64.b64encode(self.key_salt).decode("ascii")
        return f"{_PREFIX}{self.tag} {self.suite} inline:{key}"

    @classmethod
    def parse(cls, line: str) -> CryptoAttribute:
        """One a=crypto line; ValueError naming what is wrong (an unknown suite included)."""
        fields = line.strip().removeprefix(_PREFIX).split()
        if len(fields) < 3 or not fields[0].isdigit():
            raise ValueError(f"a=crypto line is not 'tag suite inline:key': {line.strip()!r}")
        tag, suite, key_params = int(fields[0]), fields[1], fields[2]
        if suite not in SUITES:
            raise ValueError(f"a=crypto suite {suite} is not supported (expected {' or '.join(SUITES)})")
        if not key_params.startswith("inline:"):
            raise ValueError(f"a=crypto key method is not inline: {key_params!r}")
        encoded = key_params.removeprefix("inline:").split("|")[0]  # lifetime and MKI ignored
        try:
            key_salt = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"a=crypto key is not base64: {encoded!r}") from None
        if len(key_salt) != KEY_SALT_BYTES:
            raise ValueError(f"a=crypto key is {len(key_salt)} bytes, expected {KEY_SALT_BYTES}")
        return cls(tag, suite, key_salt)


def audio_crypto_attributes(sdp: bytes) -> list[CryptoAttribute]:
    """The usable a=crypto lines of the first audio section (unsupported suites skipped)."""
    found: list[CryptoAttribute] = []
    in_audio = False
    for raw_line in sdp.decode("utf-8", errors="replace").splitlines():
        line = raw_line.strip()
        if line.startswith("m="):
            if in_audio:
                break
            in_audio = line.startswith("m=audio")
        elif in_audio and line.startswith(_PREFIX):
            fields = line.removeprefix(_PREFIX).split()
            if len(fields) > 1 and fields[1] in SUITES:
                found.append(CryptoAttribute.parse(line))
    return found


def choose_remote(local: CryptoAttribute, offered: list[CryptoAttribute]) -> CryptoAttribute | None:
    """The peer's attribute matching ours (same tag and suite), else any of the same suite."""
    for candidate in offered:
        if candidate.tag == local.tag and candidate.suite == local.suite:
            return candidate
    return next((candidate for candidate in offered if candidate.suite == local.suite), None)


class SrtpContext:
    """One call's two directions: outbound under our key, inbound under the peer's."""

    def __init__(self, local: CryptoAttribute, remote: CryptoAttribute) -> None:
        if local.suite != remote.suite:
            raise ValueError(f"SRTP suites differ: ours {local.suite}, the peer's {remote.suite}")
        self.suite = local.suite
        self.keys = (local, remote)
        self._outbound = pylibsrtp.Session(_policy(local, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self._inbound = pylibsrtp.Session(_policy(remote, pylibsrtp.Policy.SSRC_ANY_INBOUND))

    def protect(self, packet: bytes) -> bytes:
        return _apply(self._outbound.protect, packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return _apply(self._outbound.protect_rtcp, packet)

    def unprotect(self, packet: bytes) -> bytes:
        return _apply(self._inbound.unprotect, packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return _apply(self._inbound.unprotect_rtcp, packet)


def _apply(process: Callable[[bytes], bytes], packet: bytes) -> bytes:
    """libsrtp's verdict as SrtpRejected; pylibsrtp says "too long" (over ~1.4 kB) with ValueError."""
    try:
        return process(packet)
    except (pylibsrtp.Error, ValueError) as error:
        raise SrtpRejected(str(error)) from None


def _policy(attribute: CryptoAttribute, ssrc_type: int) -> pylibsrtp.Policy:
    policy = pylibsrtp.Policy(
        key=attribute.key_salt, ssrc_type=ssrc_type, srtp_profile=SUITES[attribute.suite]
    )
    # Echo and pcap loops send the same sequence numbers again under one SSRC; that is intended.
    policy.allow_repeat_tx = True
    return policy
