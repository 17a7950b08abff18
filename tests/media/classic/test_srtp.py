"""SDES a=crypto offer/answer and SRTP/SRTCP through libsrtp, both suites."""

from __future__ import annotations

import base64

import pytest

from gossipper.media.classic.rtcp import ReceiverReport
from gossipper.media.classic.srtp import (
    SUITE_32,
    SUITE_80,
    CryptoAttribute,
    SrtpContext,
    SrtpRejected,
    audio_crypto_attributes,
    choose_remote,
)
from tests.media.classic.helpers import rtp_packet, sdp


def test_attribute_round_trip() -> None:
    offer = CryptoAttribute.new(SUITE_32, tag=3)
    line = str(offer)
    assert line.startswith("a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:")
    assert len(base64.b64decode(line.split("inline:")[1])) == 30
    assert CryptoAttribute.parse(line) == offer
    assert CryptoAttribute.parse(line + "|2^31|1:1 UNENCRYPTED_SRTCP") == offer


def test_keys_differ_per_attribute() -> None:
    assert CryptoAttribute.new().key_salt != CryptoAttribute.new().key_salt


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80", "not 'tag suite inline:key'"),
        ("a=crypto:1 F8_128_HMAC_SHA1_80 inline:AAAA", "not supported"),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:http://x", "not inline"),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:***", "not base64"),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "3 bytes, expected 30"),
    ],
)
def test_bad_lines(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CryptoAttribute.parse(line)


def test_offer_answer_selection() -> None:
    offer = CryptoAttribute.new(SUITE_80, tag=1)
    other = CryptoAttribute.new(SUITE_32, tag=2)
    body = sdp(4000, f"{offer}\r\na=crypto:5 AEAD_AES_256_GCM inline:AAAA\r\n{other}")
    offered = audio_crypto_attributes(body)
    assert offered == [offer, other]  # the unsupported suite is skipped
    answer = offered[1].answer()
    assert (answer.tag, answer.suite) == (2, SUITE_32)
    assert choose_remote(answer, offered) == other
    assert choose_remote(CryptoAttribute.new(SUITE_80, tag=9), [other]) is None


@pytest.mark.parametrize("suite", [SUITE_80, SUITE_32])
def test_protect_unprotect_and_tamper(suite: str) -> None:
    a_key, b_key = CryptoAttribute.new(suite), CryptoAttribute.new(suite)
    alice, bob = SrtpContext(a_key, b_key), SrtpContext(b_key, a_key)
    packet = rtp_packet(10, 1600, 0xABCDEF, b"\x55" * 160)
    protected = alice.protect(packet)
    assert len(protected) == len(packet) + (10 if suite == SUITE_80 else 4)
    assert protected[12:172] != packet[12:]  # encrypted
    assert bob.unprotect(protected) == packet
    tampered = bytearray(alice.protect(rtp_packet(11, 1760, 0xABCDEF, b"\x55" * 160)))
    tampered[20] ^= 1
    with pytest.raises(SrtpRejected, match="authentication failure"):
        bob.unprotect(bytes(tampered))
    report = bytes(ReceiverReport(0xABCDEF))
    assert bob.unprotect_rtcp(alice.protect_rtcp(report)) == report


def test_suites_must_match() -> None:
    with pytest.raises(ValueError, match="suites differ"):
        SrtpContext(CryptoAttribute.new(SUITE_80), CryptoAttribute.new(SUITE_32))
