"""Certificates for the TLS tests: a CA, server certificates it signs (valid, expired,
for another host name) and a self-signed one, as PEM files (the ``cryptography`` package)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
           ) -> Pair:
    pair = Pair(folder / f"{stem}.pem", folder / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return pair


def make_ca(folder: Path, stem: str = "ca") -> tuple[Pair, x509.Certificate,
                                                    ec.EllipticCurvePrivateKey]:
    """A CA valid for a day: its files, certificate and key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(f"basketflow test {stem}"))
            .issuer_name(_name(f"basketflow test {stem}")).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return _write(folder, stem, cert, key), cert, key


def issue(folder: Path, stem: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
          | None, host: str = "127.0.0.1", expired: bool = False) -> Pair:
    """A server certificate for ``host`` signed by ``ca`` (self-signed when None), valid
    now or (``expired``) only until yesterday."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    start, end = ((now - timedelta(days=3), now - timedelta(days=1)) if expired
                  else (now - timedelta(hours=1), now + timedelta(days=1)))
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    issuer_cert, issuer_key = ca if ca is not None else (None, key)
    cert = (x509.CertificateBuilder().subject_name(_name(host))
            .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(host))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return _write(folder, stem, cert, key)
