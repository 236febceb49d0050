"""The private CA: certificates for principals, signed by one CA kept across invocations."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mesos_security.pki import CertificateAuthority, main


def test_the_command_reuses_its_ca_and_names_principals_and_hosts(tmp_path: Path) -> None:
    main(["--dir", str(tmp_path), "master"])
    main(["--dir", str(tmp_path), "--hosts", "10.0.0.7,node7", "agent"])
    authority = CertificateAuthority.load(tmp_path)
    public_key = authority.certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    for name, hosts in (("master", ["127.0.0.1", "localhost"]), ("agent", ["10.0.0.7", "node7"])):
        certificate = x509.load_pem_x509_certificate((tmp_path / f"{name}.pem").read_bytes())
        certificate.verify_directly_issued_by(authority.certificate)
        assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = [*(str(ip) for ip in names.get_values_for_type(x509.IPAddress)),
                 *names.get_values_for_type(x509.DNSName)]
        assert sorted(found) == sorted(hosts)
        assert ipaddress.ip_address(found[0])  # an IP address comes first
        assert (tmp_path / f"{name}-key.pem").stat().st_mode & 0o777 == 0o600
