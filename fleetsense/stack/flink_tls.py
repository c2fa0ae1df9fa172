"""Flink's TLS in the secure profile: REST over TLS that requires a client certificate, and TLS on Flink's internal
connections (RPC, blob server, the TaskManagers' data exchange).

Flink gets its own CA, not the devices' one: that CA signs every vehicle's certificate, and a certificate on a
Raspberry Pi in a van must never open the API that submits and cancels jobs. Keystores are PKCS12 (what Java 17
reads by default), made with `cryptography`, under one generated password kept in secrets/ like the others."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetsense.errors import StackError
from fleetsense.stack.secrets import load_or_create
from fleetsense.stack.tls import build_certificate, ensure_local_ca, issue_client_cert

OPERATOR_CLIENT_NAME = "fleetsense-operator"  # the common name of the CLI's client certificate
INTERNAL_NAME = "flink-internal"
INTERNAL_VALID_DAYS = 825
# TLS 1.2 suites for the EC keys this module makes (Flink's default, TLS_RSA_WITH_AES_128_CBC_SHA, needs RSA keys
# and has no forward secrecy).
CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
)


@dataclass(frozen=True, kw_only=True)
class FlinkTlsFiles:
    ca_cert: Path  # PEM: Python clients verify the REST server with it
    client_cert: Path  # PEM: the operator's client certificate and key, for Python clients
    client_key: Path
    rest_server_keystore: Path  # PKCS12: the JobManager's REST key and certificate chain
    rest_client_keystore: Path  # PKCS12: the operator's key and chain, for `flink run`
    rest_truststore: Path  # PKCS12 trust store holding Flink's CA only
    internal_keystore: Path  # PKCS12: one self-signed key and certificate, also the internal trust store
    password: str

    def __repr__(self) -> str:  # never let the store password reach a log line
        return f"FlinkTlsFiles(ca_cert={self.ca_cert!r}, password='***')"


def flink_tls_dir(tls_dir: Path) -> Path:
    return tls_dir / "flink"


def ensure_flink_tls(tls_dir: Path, secrets_dir: Path, *, create: bool = True) -> FlinkTlsFiles:
    """Create (once) Flink's CA, REST server and operator certificates and the keystores; reuse them after.
    Clients pass create=False: new certificates would not match the ones the running cluster holds."""
    directory = flink_tls_dir(tls_dir)
    password_file = secrets_dir / "flink-tls.json"
    if not create and not (directory / "internal.p12").exists():
        raise StackError(
            f"the secure profile's Flink certificates are missing ({directory})",
            hint="start the stack with `fleetsense --profile secure stack up` (it makes them), or use --data-dir "
            "to point at the stack's data directory",
        )
    password = load_or_create(password_file, "flink").password
    files = FlinkTlsFiles(
        ca_cert=directory / "ca.pem",
        client_cert=directory / f"{OPERATOR_CLIENT_NAME}.pem",
        client_key=directory / f"{OPERATOR_CLIENT_NAME}-key.pem",
        rest_server_keystore=directory / "rest-server.p12",
        rest_client_keystore=directory / "rest-client.p12",
        rest_truststore=directory / "rest-truststore.p12",
        internal_keystore=directory / "internal.p12",
        password=password,
    )
    if files.internal_keystore.exists():
        return files
    server = ensure_local_ca(directory)
    issue_client_cert(directory, OPERATOR_CLIENT_NAME, files.client_cert, files.client_key)
    ca = x509.load_pem_x509_certificate(server.ca_cert.read_bytes())
    secret = password.encode()
    _write_keystore(files.rest_server_keystore, server.server_key, server.server_cert, ca, secret)
    _write_keystore(files.rest_client_keystore, files.client_key, files.client_cert, ca, secret)
    truststore = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(ca, b"fleetsense-flink-ca")], serialization.BestAvailableEncryption(secret)
    )
    _write_bytes_private(files.rest_truststore, truststore)
    key, cert = _self_signed_internal()
    blob = pkcs12.serialize_key_and_certificates(
        INTERNAL_NAME.encode(), key, cert, None, serialization.BestAvailableEncryption(secret)
    )
    _write_bytes_private(files.internal_keystore, blob)  # last: its presence says the set is complete
    return files


def _write_keystore(path: Path, key_file: Path, cert_file: Path, ca: x509.Certificate, secret: bytes) -> None:
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{key_file} is not the EC key fleetsense.stack.tls writes")
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    blob = pkcs12.serialize_key_and_certificates(
        cert_file.stem.encode(), key, cert, [ca], serialization.BestAvailableEncryption(secret)
    )
    _write_bytes_private(path, blob)


def _write_bytes_private(path: Path, data: bytes) -> None:
    import os

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _self_signed_internal() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Flink's internal connections are mutually authenticated with one certificate that every JobManager and
    TaskManager holds and trusts (Flink's documented set-up): trusting only it, no other certificate gets in."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INTERNAL_NAME)])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    both = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    cert = build_certificate(
        subject=name,
        issuer=name,
        public_key=key.public_key(),
        signing_key=key,
        valid_days=INTERNAL_VALID_DAYS,
        extensions=[
            (x509.SubjectAlternativeName(sans), False),
            (both, False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
        ],
    )
    return key, cert


def secure_settings(files: FlinkTlsFiles, *, rest_keystore: Path) -> dict[str, str]:
    """Flink settings for the secure profile. `rest_keystore` is the server's for the cluster and the operator's
    for a client (`flink run`): Flink uses the one REST keystore on whichever side it is."""
    secret = files.password
    return {
        "security.ssl.protocol": "TLSv1.2",
        "security.ssl.algorithms": ",".join(CIPHER_SUITES),
        "security.ssl.rest.enabled": "true",
        "security.ssl.rest.authentication-enabled": "true",  # no client certificate, no REST
        "security.ssl.rest.keystore": str(rest_keystore),
        "security.ssl.rest.keystore-password": secret,
        "security.ssl.rest.key-password": secret,
        "security.ssl.rest.truststore": str(files.rest_truststore),
        "security.ssl.rest.truststore-password": secret,
        "security.ssl.internal.enabled": "true",
        "security.ssl.internal.keystore": str(files.internal_keystore),
        "security.ssl.internal.keystore-password": secret,
        "security.ssl.internal.key-password": secret,
        "security.ssl.internal.truststore": str(files.internal_keystore),
        "security.ssl.internal.truststore-password": secret,
        # Only hides the web UI's cancel button (Flink 1.20 reads it in DashboardConfigHandler alone): the REST
        # cancel stays open to any client with a certificate. The certificate is the control.
        "web.cancel.enable": "false",
    }
