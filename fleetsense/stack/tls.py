"""A private certificate authority and the broker's server certificate for the local stack, made with the
`cryptography` library (no hand-rolled crypto, no openssl command lines carrying secrets)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetsense.stack.secrets import write_private

CA_VALID_DAYS = 3650
SERVER_VALID_DAYS = 825  # the longest lifetime clients such as browsers still accept


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build_certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    signing_key: ec.EllipticCurvePrivateKey,
    valid_days: int,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """One X.509 certificate, valid from five minutes ago (clock skew) for `valid_days`, signed with SHA-256;
    each extension is (value, critical)."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def ensure_local_ca(directory: Path, *, hostnames: tuple[str, ...] = ("localhost",)) -> TlsFiles:
    """Create (once) a CA and a server certificate for `hostnames` and 127.0.0.1; reuse them afterwards."""
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if all(path.exists() for path in (files.ca_cert, files.server_cert, files.server_key)):
        return files
    ca_key = _new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetsense local CA")])
    ca_usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    ca_cert = build_certificate(
        subject=ca_name,
        issuer=ca_name,
        public_key=ca_key.public_key(),
        signing_key=ca_key,
        valid_days=CA_VALID_DAYS,
        extensions=[(x509.BasicConstraints(ca=True, path_length=0), True), (ca_usage, True)],
    )
    server_key = _new_key()
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_cert = build_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]),
        issuer=ca_name,
        public_key=server_key.public_key(),
        signing_key=ca_key,
        valid_days=SERVER_VALID_DAYS,
        extensions=[
            (x509.SubjectAlternativeName(names), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
        ],
    )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(directory / "ca-key.pem", _pem_key(ca_key))
    write_private(files.server_key, _pem_key(server_key))
    files.ca_cert.write_text(ca_cert.public_bytes(serialization.Encoding.PEM).decode())
    files.server_cert.write_text(server_cert.public_bytes(serialization.Encoding.PEM).decode())
    return files


CLIENT_VALID_DAYS = 825


def issue_client_cert(directory: Path, common_name: str, cert_path: Path, key_path: Path) -> None:
    """A device certificate signed by the local CA in `directory`, with the vehicle id as its common name (the
    broker's certificate login takes the username from it). The key is written with mode 0600."""
    ensure_local_ca(directory)
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{directory / 'ca-key.pem'} is not the EC key this module writes")
    key = _new_key()
    cert = build_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
        issuer=ca_cert.subject,
        public_key=key.public_key(),
        signing_key=ca_key,
        valid_days=CLIENT_VALID_DAYS,
        extensions=[
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
        ],
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    write_private(key_path, _pem_key(key))
    cert_path.write_text(cert.public_bytes(serialization.Encoding.PEM).decode())
