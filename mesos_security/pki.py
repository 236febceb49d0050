"""A private certificate authority for `mesos-local --tls` and the tests (ADR 0013).

    ca = CertificateAuthority.create(directory)            ca.pem, ca-key.pem
    ca.issue("master", hosts=["127.0.0.1", "localhost"])   master.pem, master-key.pem

    python -m mesos_security.pki --dir DIR [--hosts H,...] NAME...   the same from a shell
    (the CA in DIR is made once and reused)

Every certificate serves and authenticates: its subject's common name is the principal a
peer that requires client certificates sees, and its subject alternative names are the hosts
it may serve (IP addresses and DNS names). Keys are ECDSA P-256, written with mode 0600.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "IssuedCertificate", "write_pkcs12"]

VALIDITY = datetime.timedelta(days=825)
"""How long certificates are valid (the longest that browsers accept for a leaf)."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """Files of one issued certificate."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA whose certificate and key live in `directory`."""

    directory: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_file(self) -> Path:
        return self.directory / "ca.pem"

    @classmethod
    def create(cls, directory: Path, name: str = "mesos-local CA") -> CertificateAuthority:
        """A new CA in `directory` (made if missing)."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        authority = cls(directory, certificate, key)
        _write(authority.cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / "ca-key.pem", key)
        return authority

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """The CA `create` wrote into `directory`."""
        certificate = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(),
                                                 password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / 'ca-key.pem'} is not an EC key")
        return cls(directory, certificate, key)

    def issue(self, name: str, hosts: Sequence[str] = ("127.0.0.1", "localhost")
              ) -> IssuedCertificate:
        """A certificate for principal `name`, valid for serving `hosts`, written as
        `<name>.pem` and `<name>-key.pem` beside the CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        issued = IssuedCertificate(self.directory / f"{name}.pem",
                                   self.directory / f"{name}-key.pem")
        _write(issued.cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(issued.key_file, key)
        return issued


def write_pkcs12(issued: IssuedCertificate, path: Path, password: bytes,
                 ca_cert_file: Path | None = None) -> Path:
    """`issued`'s certificate and key as a password-protected PKCS#12 bundle (`.p12`, what
    browsers import as a client certificate), with the CA's certificate when given; mode
    0600."""
    certificate = x509.load_pem_x509_certificate(issued.cert_file.read_bytes())
    key = serialization.load_pem_private_key(issued.key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{issued.key_file} is not an EC key")
    authorities = ([x509.load_pem_x509_certificate(ca_cert_file.read_bytes())]
                   if ca_cert_file is not None else None)
    name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    _write(path, pkcs12.serialize_key_and_certificates(
        str(name).encode(), key, certificate, authorities,
        serialization.BestAvailableEncryption(password)), mode=0o600)
    return path


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Written whole under a temporary name, then renamed: never half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _write(path, key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()), mode=0o600)


def main(argv: Sequence[str] | None = None) -> None:
    """Issue certificates NAME... from the CA in --dir (made there first if missing)."""
    parser = argparse.ArgumentParser(
        prog="python -m mesos_security.pki",
        description="Make a private CA (once) and a certificate per principal NAME.")
    parser.add_argument("--dir", type=Path, required=True, help="where the files go")
    parser.add_argument("--hosts", default="127.0.0.1,localhost",
                        help="the addresses and names the certificates serve (comma-separated)")
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="principals (the certificates' common names)")
    args = parser.parse_args(argv)
    hosts = [host.strip() for host in args.hosts.split(",") if host.strip()]
    authority = (CertificateAuthority.load(args.dir) if (args.dir / "ca-key.pem").exists()
                 else CertificateAuthority.create(args.dir))
    print(f"CA: {authority.cert_file}")
    for name in args.names:
        issued = authority.issue(name, hosts)
        print(f"{name}: {issued.cert_file} {issued.key_file}")


if __name__ == "__main__":
    main()
