"""A development certificate authority and the certificates of the servers and clients it signs
(`python -m bookstore certs`), for TLS between every process and server on machines you own.
Production brings its own CA: a server then presents a certificate of that CA naming the
addresses its clients reach it by, and every client trusts that CA's certificate.

ECDSA P-256 throughout (signing costs a few µs, RSA-2048's a tenth of a millisecond); keys are
PKCS#8 PEM (Kafka refuses the older "EC PRIVATE KEY" form), unencrypted, written 0600. A
server certificate names every address clients reach it by twice, as an IP address and as a DNS
name of the same text: Erlang's distribution (RabbitMQ's nodes) checks a peer's name as DNS only,
everything else checks the IP. Every certificate may serve and authenticate a client (mutual
TLS between Kafka brokers, between RabbitMQ nodes); its common name is its principal (Kafka
maps a client certificate to `User:<CN>`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA = "ca"  # ca.pem, ca.key in the directory


@dataclass(frozen=True)
class Issued:
    cert: Path  # the certificate, then the CA's: what a server presents
    key: Path


def write_file(path: Path, data: bytes, private: bool) -> None:
    """Written whole under another name, then moved into place: a reader never sees half a key;
    a key is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    partial.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "livros-dados"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ensure_ca(directory: Path, days: int = 3650) -> Issued:
    """The CA of `directory`, made if missing (a CA already there is kept: every certificate it
    signed stays valid)."""
    issued = Issued(directory / f"{CA}.pem", directory / f"{CA}.key")
    if issued.cert.exists() and issued.key.exists():
        return issued
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("livros-dados development CA"))
        .issuer_name(_name("livros-dados development CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_file(issued.key, _key_pem(key), private=True)
    write_file(issued.cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return issued


def issue(
    directory: Path, name: str, hosts: Iterable[str] = (), days: int = 825, ca: Path | None = None
) -> Issued:
    """A certificate and key for `name` (its common name: a server's, or a client's principal),
    valid for every host of `hosts` (IP addresses, also as DNS names; DNS names), signed by the
    CA of `ca` (a directory holding ca.pem and ca.key; `directory` by default). Replaces one
    already there (a re-issue: reload the server to pick it up)."""
    authority = Issued((ca or directory) / f"{CA}.pem", (ca or directory) / f"{CA}.key")
    ca_cert = x509.load_pem_x509_certificate(authority.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(authority.key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    names = subject_alternative_names(hosts)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    issued = Issued(directory / f"{name}.pem", directory / f"{name}.key")
    write_file(issued.key, _key_pem(key), private=True)
    chain = cert.public_bytes(serialization.Encoding.PEM) + authority.cert.read_bytes()
    write_file(issued.cert, chain, private=False)
    return issued


def subject_alternative_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Each IP address as an IP address and as a DNS name (Erlang's distribution checks DNS
    names only); each other host as a DNS name."""
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # in order, once
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            names.append(x509.DNSName(host))
        else:
            names += [x509.IPAddress(address), x509.DNSName(host)]
    return names


# PostgreSQL's SSLRequest: its clients ask for TLS in its own protocol before the handshake.
POSTGRES_SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


def served_certificate(
    host: str, port: int, ca: str | os.PathLike[str], postgres: bool = False, timeout: float = 5
) -> x509.Certificate:
    """The certificate a new TLS connection to `host`:`port` is shown, verified against the CA
    certificate `ca` (`postgres`: ask for TLS as its clients do first). Raises OSError (ssl's
    errors included) when nothing answers or the handshake fails."""
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((host, port), timeout=timeout) as raw:
        if postgres:
            raw.sendall(POSTGRES_SSL_REQUEST)
            if raw.recv(1) != b"S":
                raise ssl.SSLError(f"{host}:{port} refused to speak TLS")
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
