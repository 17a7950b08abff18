"""Certificates the TLS and wss tests make for themselves with the openssl CLI (Debian's openssl).

One CA signs a "good" and a "revoked" leaf; the CRL revokes the latter; a "rogue" leaf is
self-signed, so no test CA trusts it. Every file is PEM, as SIPp's -tls_* flags read.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(
    OPENSSL is None, reason="the openssl CLI (Debian openssl) is not installed"
)

_CA_CONFIG = """[ca]
default_ca = test_ca
[test_ca]
database = {dir}/index.txt
new_certs_dir = {dir}
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
crlnumber = {dir}/crlnumber
default_md = sha256
default_crl_days = 2
"""


@dataclass(frozen=True)
class Leaf:
    cert: Path
    key: Path


@dataclass(frozen=True)
class TlsMaterial:
    ca: Path
    crl: Path
    good: Leaf
    revoked: Leaf
    rogue: Leaf


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _leaf(directory: Path, name: str, signed: bool) -> Leaf:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subject = ["-subj", f"/CN={name}.gossipper.test"]
    if not signed:
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                 "-days", "2", *subject, cwd=directory)  # fmt: skip
        return Leaf(cert, key)
    csr = directory / f"{name}.csr"
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             *subject, cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", str(cert), "-days", "2", cwd=directory)  # fmt: skip
    return Leaf(cert, key)


def make_tls_material(directory: Path) -> TlsMaterial:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=gossipper test CA", cwd=directory)  # fmt: skip
    good = _leaf(directory, "good", signed=True)
    revoked = _leaf(directory, "revoked", signed=True)
    rogue = _leaf(directory, "rogue", signed=False)
    (directory / "index.txt").write_text("")
    (directory / "crlnumber").write_text("01\n")
    config = directory / "ca.cnf"
    config.write_text(_CA_CONFIG.format(dir=directory))
    _openssl("ca", "-config", str(config), "-revoke", str(revoked.cert), cwd=directory)
    _openssl("ca", "-config", str(config), "-gencrl", "-out", "crl.pem", cwd=directory)
    return TlsMaterial(directory / "ca.pem", directory / "crl.pem", good, revoked, rogue)
