"""TLS contexts for -t l1/ln (and wss), built as SIPp's sslsocket.cpp builds its two.

What SIPp does, and so what this does:
- the server and the client side both load -tls_cert/-tls_key (default cacert.pem and
  cakey.pem in the working directory): a client presents its certificate too;
- peers are verified only when -tls_ca or -tls_crl is given, and then both ways (a
  server requires the client's certificate); host names are never checked, only the chain;
- -tls_crl turns on CRL checks for the whole chain;
- -tls_version pins one version (1.0, 1.1, 1.2, 1.3); without it the version is negotiated;
- an encrypted key is opened with SIPp's fixed passphrase "ksgr";
- SSLKEYLOGFILE, when set, receives the session keys (as SIPp's keylog build).
"""

from __future__ import annotations

import os
import ssl
import warnings
from dataclasses import dataclass

from gossipper.errors import FileProblem, InvalidValue

SIPP_KEY_PASSPHRASE = "ksgr"  # what SIPp's password callback answers for an encrypted key
DEFAULT_CERT_FILE = "cacert.pem"
DEFAULT_KEY_FILE = "cakey.pem"

_VERSIONS: dict[float, ssl.TLSVersion] = {
    1.0: ssl.TLSVersion.TLSv1,
    1.1: ssl.TLSVersion.TLSv1_1,
    1.2: ssl.TLSVersion.TLSv1_2,
    1.3: ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True)
class TlsSettings:
    cert_file: str = DEFAULT_CERT_FILE
    key_file: str = DEFAULT_KEY_FILE
    ca_file: str | None = None  # None: peers are not verified
    crl_file: str | None = None
    version: float = 0.0  # 0: negotiate


@dataclass(frozen=True)
class TlsContexts:
    server: ssl.SSLContext
    client: ssl.SSLContext


def check_version(version: float) -> None:
    if version != 0.0 and version not in _VERSIONS:
        raise InvalidValue(
            f"unrecognized TLS version {version:g} (expected 1.0, 1.1, 1.2 or 1.3)", setting="tls_version"
        )


def tls_contexts(settings: TlsSettings) -> TlsContexts:
    """Both contexts, or a one-line error naming the file that does not load."""
    check_version(settings.version)
    return TlsContexts(
        server=_context(settings, ssl.PROTOCOL_TLS_SERVER), client=_context(settings, ssl.PROTOCOL_TLS_CLIENT)
    )


def _context(settings: TlsSettings, protocol: ssl._SSLMethod) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.check_hostname = False  # SIPp checks the chain, never the name
    pinned = _VERSIONS.get(settings.version)
    if pinned is not None:
        if pinned < ssl.TLSVersion.TLSv1_2:
            # OpenSSL 3 refuses the old versions at its default security level; a pinned
            # -tls_version 1.0/1.1 is asked for on purpose, so let it through.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # Python deprecates 1.0/1.1; SIPp still offers them
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = pinned
    for setting, required in (("tls_cert", settings.cert_file), ("tls_key", settings.key_file)):
        if not os.path.isfile(required):
            raise FileProblem(f"{required}: no such file", setting=setting)
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file, password=SIPP_KEY_PASSPHRASE)
    except (ssl.SSLError, OSError) as error:
        raise FileProblem(
            f"{settings.cert_file} / {settings.key_file}: not a matching PEM certificate and key ({error})",
            setting="tls_cert",
        ) from None
    verify = settings.ca_file is not None or settings.crl_file is not None
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    for setting, optional in (("tls_ca", settings.ca_file), ("tls_crl", settings.crl_file)):
        if optional is None:
            continue
        path = optional
        try:
            context.load_verify_locations(cafile=path)
        except (ssl.SSLError, OSError) as error:
            raise FileProblem(f"{path}: cannot load ({error})", setting=setting) from None
    if settings.crl_file is not None:
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog:
        context.keylog_filename = keylog
    return context
