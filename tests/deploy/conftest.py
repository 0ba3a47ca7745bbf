"""Fixtures of the deployment tests: certificates made here (cryptography)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_cert(tmp: Path, name: str, issuer=None, *, ca=False, dns=(), ips=()):
    """A key and a certificate signed by ``issuer`` (key, cert) or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer[0] if issuer else key, hashes.SHA256())
    key_path, cert_path = tmp / f"{name}.key", tmp / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return (key, cert), key_path, cert_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pki")
    ca, _, ca_crt = make_cert(tmp, "test-ca", ca=True)
    _, _, other_ca_crt = make_cert(tmp, "other-ca", ca=True)
    _, server_key, server_crt = make_cert(
        tmp, "server", ca, dns=["attribution.attribution.svc"], ips=["127.0.0.1"]
    )
    _, client_key, client_crt = make_cert(tmp, "probe", ca)
    return {
        "ca": ca_crt,
        "other_ca": other_ca_crt,
        "server_key": server_key,
        "server_crt": server_crt,
        "client_key": client_key,
        "client_crt": client_crt,
    }
