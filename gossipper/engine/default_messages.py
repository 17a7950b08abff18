"""Messages the engine sends on its own: ACK, CANCEL and BYE when a call is aborted,
200 OK to unexpected BYE/CANCEL/OPTIONS, as SIPp's default behaviours do (RFC 3261
sections 9.1, 15.1.1 and 17.1.1.3 for what each must copy).
"""

from __future__ import annotations

from gossipper.sip.message import SipMessage, generate_branch, make_response

_COPIED_FOR_CANCEL = ("From", "To", "Call-ID")


def _request(method: str, uri: str, via: str, headers: list[tuple[str, str]], cseq: int) -> SipMessage:
    lines = [("Via", via), ("Max-Forwards", "70"), *headers, ("CSeq", f"{cseq} {method}")]
    lines.append(("Content-Length", "0"))
    return SipMessage(first_line=f"{method} {uri} SIP/2.0", headers=lines, body=b"")


def _same_via_without_received(invite: SipMessage) -> str:
    return invite.header_values("Via")[0]


def ack_for_failure(invite: SipMessage, response: SipMessage) -> SipMessage:
    """ACK for a non-2xx final response: same branch and URI as the INVITE (17.1.1.3)."""
    headers = [
        ("From", invite.header("From") or ""),
        ("To", response.header("To") or invite.header("To") or ""),
        ("Call-ID", invite.call_id),
    ]
    return _request(
        "ACK", invite.request_uri or "", _same_via_without_received(invite), headers, invite.cseq_number
    )


def cancel_for(invite: SipMessage) -> SipMessage:
    """CANCEL of a pending INVITE: same URI, Via branch, From, To, Call-ID (9.1)."""
    headers = [(name, invite.header(name) or "") for name in _COPIED_FOR_CANCEL]
    return _request(
        "CANCEL", invite.request_uri or "", _same_via_without_received(invite), headers, invite.cseq_number
    )


def in_dialog_request(
    method: str,
    target_uri: str,
    local_party: str,
    remote_party: str,
    call_id: str,
    cseq: int,
    via_host: str,
    transport_name: str,
    route_set: list[str] | None = None,
) -> SipMessage:
    """A new request inside an established dialog (ACK for 2xx, BYE) with a fresh branch."""
    via = f"SIP/2.0/{transport_name} {via_host};branch={generate_branch()}"
    headers = [("From", local_party), ("To", remote_party), ("Call-ID", call_id)]
    if route_set:
        headers.append(("Route", ", ".join(route_set)))
    return _request(method, target_uri, via, headers, cseq)


def ok_for(request: SipMessage, to_tag: str | None = None) -> SipMessage:
    return make_response(request, 200, "OK", to_tag=to_tag)
