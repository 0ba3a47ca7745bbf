"""Real certificates for TLS tests: a CA, a server certificate for loopback, client certificates."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path
    ca_cert: x509.Certificate | None = None  # to issue more (``renew_server``)
    ca_key: ec.EllipticCurvePrivateKey | None = None


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
    valid_days: float = 2,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=max(0, -valid_days) + 1))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usage.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    ca_key, rogue_ca_key = _key(), _key()
    ca = _issue("attribution test CA", ca_key, _name("attribution test CA"), ca_key, ca=True)
    server_key, client_key, rogue_key = _key(), _key(), _key()
    server = _issue("localhost", server_key, ca.subject, ca_key, server=True)
    client = _issue("test client", client_key, ca.subject, ca_key)
    rogue = _issue("rogue client", rogue_key, _name("rogue CA"), rogue_ca_key)
    return Pki(
        ca=_write_cert(directory / "ca.pem", ca),
        server_cert=_write_cert(directory / "server.pem", server),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", client),
        client_key=_write_key(directory / "client.key", client_key),
        rogue_cert=_write_cert(directory / "rogue.pem", rogue),
        rogue_key=_write_key(directory / "rogue.key", rogue_key),
        ca_cert=ca,
        ca_key=ca_key,
    )


def renew_server(
    pki: Pki, cert_path: Path, key_path: Path, *, subject: str, valid_days: float = 30
) -> x509.Certificate:
    """A new server certificate of ``pki``'s CA, with a new key, written to the two
    paths (each replaced at once, by a rename); a negative ``valid_days``: expired
    that many days ago."""
    assert pki.ca_cert is not None and pki.ca_key is not None
    key = _key()
    cert = _issue(subject, key, pki.ca_cert.subject, pki.ca_key, server=True, valid_days=valid_days)
    for path, write, value in ((cert_path, _write_cert, cert), (key_path, _write_key, key)):
        tmp = path.with_name(path.name + ".new")
        write(tmp, value)  # type: ignore[operator]
        tmp.replace(path)
    return cert
