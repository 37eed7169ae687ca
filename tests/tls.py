"""Test certificates: a throwaway CA and server certificates it signs, made with cryptography."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def name_of(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name_of(subject))
        .issuer_name(name_of(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .add_extension(x509.BasicConstraints(ca=names is None, path_length=None), True)
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem_of(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bytes:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM) + key_pem


def leaf_pem(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], names: list[x509.GeneralName]
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return pem_of(certificate("server", key, ("idp test CA", ca[1]), names), key)
