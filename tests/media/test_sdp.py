import pytest

from gossipper.media.sdp import parse_audio_endpoint, sdp_of_body

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_session_level_connection_and_first_audio_port() -> None:
    endpoint = parse_audio_endpoint(OFFER)
    assert (endpoint.address, endpoint.port, endpoint.payload_types) == ("127.0.0.2", 6000, (0, 8))


def test_media_level_connection_wins_and_only_first_audio_counts() -> None:
    sdp = OFFER + b"c=IN IP4 127.0.0.3\r\nm=audio 7000 RTP/AVP 0\r\nc=IN IP4 127.0.0.9\r\n"
    endpoint = parse_audio_endpoint(sdp)
    assert (endpoint.address, endpoint.port) == ("127.0.0.3", 6000)


def test_ipv6_connection() -> None:
    sdp = b"v=0\r\nc=IN IP6 ::1\r\nm=audio 4000 RTP/AVP 0\r\n"
    assert parse_audio_endpoint(sdp).address == "::1"


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        (b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n", "no m=audio"),
        (b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n", "port is 0"),
        (b"v=0\r\nc=IN IP4 not-an-ip\r\nm=audio 5000 RTP/AVP 0\r\n", "not an IP address"),
        (b"v=0\r\nc=garbage\r\nm=audio 5000 RTP/AVP 0\r\n", "connection line"),
        (b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n", "no c="),
        (b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio x RTP/AVP 0\r\n", "not a port"),
    ],
)
def test_bad_sdp_names_the_problem(sdp: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_audio_endpoint(sdp)


def _multipart(boundary: str, *parts: tuple[str, bytes], crlf: bytes = b"\r\n") -> bytes:
    body = b""
    for content_type, content in parts:
        body += b"--" + boundary.encode() + crlf + b"Content-Type: " + content_type.encode() + crlf + crlf
        body += content + crlf
    return body + b"--" + boundary.encode() + b"--" + crlf


PIDF = b'<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf"/>'


@pytest.mark.parametrize("crlf", [b"\r\n", b"\n"])
@pytest.mark.parametrize("content_type", [None, 'multipart/mixed;boundary="unique-42"'])
def test_sdp_found_in_a_multipart_body(content_type: str | None, crlf: bytes) -> None:
    body = _multipart("unique-42", ("application/pidf+xml", PIDF), ("application/sdp", OFFER), crlf=crlf)
    sdp = sdp_of_body(body, content_type)
    assert sdp.startswith(b"v=0") and b"unique-42" not in sdp and b"presence" not in sdp
    endpoint = parse_audio_endpoint(sdp)
    assert (endpoint.address, endpoint.port) == ("127.0.0.2", 6000)


def test_plain_sdp_and_sdp_less_multipart_bodies_pass_through() -> None:
    assert sdp_of_body(OFFER) is OFFER
    assert sdp_of_body(OFFER, "application/sdp") is OFFER
    no_sdp = _multipart("b1", ("application/pidf+xml", PIDF))
    assert sdp_of_body(no_sdp) is no_sdp
    with pytest.raises(ValueError, match="no m=audio"):
        parse_audio_endpoint(sdp_of_body(no_sdp))
