"""Flink in the secure profile: REST only over TLS and only with the operator's client certificate (plain HTTP, no
certificate and a device certificate are refused), jobs submitted with `flink run` through it, internal TLS that
PyFlink's thread mode runs under, and what `web.cancel.enable: false` does and does not block."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from fleetsense.cloud.jobctl import FlinkCluster, RestTls, rest_session

from fleetsense.stack.flink import Flink
from fleetsense.stack.flink_tls import FlinkTlsFiles
from fleetsense.stack.layout import LOOPBACK, StackConfig
from fleetsense.stack.prepare import connector_jar
from fleetsense.stack.tls import issue_client_cert

from .conftest import test_data_dir as stack_data_dir

# A small job: a Python map in thread mode, then a keyed shuffle between two single-slot TaskManagers, so records
# cross Flink's netty data plane; each record waits DELAY_S, so the job runs as long as asked.
PROBE_JOB = """
import sys
import time

from pyflink.common import Configuration, Types
from pyflink.datastream import StreamExecutionEnvironment

DELAY_S = float(sys.argv[1]) / 1000  # read here: the Python workers run with other arguments


def slow_square(n):
    time.sleep(DELAY_S)
    return n * n


config = Configuration()
config.set_string("python.execution-mode", "thread")
env = StreamExecutionEnvironment.get_execution_environment(config)
env.set_parallelism(2)
numbers = env.from_collection(list(range(2000)), type_info=Types.INT())
squares = numbers.map(slow_square, output_type=Types.LONG())
squares.key_by(lambda n: n % 7, key_type=Types.LONG()).reduce(lambda a, b: a + b).print()
env.execute("fleetsense-secure-probe")
"""


@pytest.fixture(scope="module")
def secure_flink() -> Iterator[Flink]:
    """A secure-profile Flink cluster of its own (JobManager and two single-slot TaskManagers), on the test
    stack's ports moved by 50 so it runs beside the session's stack."""
    base = StackConfig.for_tests(stack_data_dir() / "secure-flink")
    config = replace(
        base,
        ports=base.ports.offset(50),
        name=f"{base.name}-secure",
        profile="secure",
        flink_slots_per_taskmanager=1,
    )
    flink = Flink(config)
    flink.stop()
    try:
        flink.start()
        yield flink
    finally:
        flink.stop()
        assert not flink.all_pids(), "the secure Flink cluster left processes running"


def tls_files(flink: Flink) -> FlinkTlsFiles:
    files = flink.tls_files()
    assert files is not None
    return files


def operator_cluster(flink: Flink) -> FlinkCluster:
    config = flink.config
    return FlinkCluster(LOOPBACK, config.ports.flink_rest, log_dir=config.log_dir("flink-client"), tls=flink.rest_tls())


def https_url(flink: Flink, path: str) -> str:
    return f"https://{LOOPBACK}:{flink.config.ports.flink_rest}{path}"


def test_the_operator_certificate_gets_in_and_the_web_ui_offers_no_submit_or_cancel(secure_flink: Flink) -> None:
    tls = secure_flink.rest_tls()
    assert secure_flink.rest_url.startswith("https://") and tls is not None
    reply = rest_session(tls).get(https_url(secure_flink, "/config"), timeout=10)
    assert reply.status_code == 200
    assert reply.json()["features"]["web-submit"] is False and reply.json()["features"]["web-cancel"] is False
    assert isinstance(operator_cluster(secure_flink).jobs(), list)


def test_plain_http_gets_no_data(secure_flink: Flink) -> None:
    url = f"http://{LOOPBACK}:{secure_flink.config.ports.flink_rest}/jobs/overview"
    try:
        reply = requests.get(url, timeout=10, allow_redirects=False)
    except requests.RequestException:
        return  # refused outright: fine
    # Flink answers plain HTTP on its TLS port with a redirect to https, never with data.
    assert reply.status_code in (301, 302, 307, 308), (reply.status_code, reply.text[:200])
    assert reply.headers["Location"].startswith("https://") and "jobs" not in reply.text


def test_a_client_without_a_certificate_is_refused(secure_flink: Flink) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(tls_files(secure_flink).ca_cert)  # trusts the server, shows no certificate
    with pytest.raises(requests.exceptions.SSLError):
        session.get(https_url(secure_flink, "/jobs/overview"), timeout=10)


def test_a_device_certificate_from_the_stacks_device_ca_is_refused(secure_flink: Flink, tmp_path: Path) -> None:
    """Vehicles hold certificates from the stack's device CA; Flink trusts only its own CA."""
    config = secure_flink.config
    issue_client_cert(config.tls_dir, "van-001", tmp_path / "van.pem", tmp_path / "van-key.pem")
    files = tls_files(secure_flink)
    van = RestTls(
        ca_file=files.ca_cert,
        cert_file=tmp_path / "van.pem",
        key_file=tmp_path / "van-key.pem",
        client_conf_dir=tmp_path,
    )
    with pytest.raises(requests.exceptions.SSLError):
        rest_session(van).get(https_url(secure_flink, "/jobs/overview"), timeout=10)


def write_internal_cert_pem(files: FlinkTlsFiles, directory: Path) -> tuple[Path, Path]:
    key, cert, _ = pkcs12.load_key_and_certificates(files.internal_keystore.read_bytes(), files.password.encode())
    assert key is not None and cert is not None
    cert_path, key_path = directory / "internal.pem", directory / "internal-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def tls_handshake(port: int, cert: tuple[Path, Path] | None) -> str:
    """'ok <peer common name>' or the handshake's error, talking TLS to a Flink internal port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we look at what the server presents; it is the server that must refuse
    if cert:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        # TLS 1.2 (the cluster's security.ssl.protocol): the server judges our certificate inside the handshake.
        with socket.create_connection((LOOPBACK, port), timeout=10) as raw, context.wrap_socket(raw) as tls:
            return f"ok {tls.version()}"
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"


def test_internal_connections_are_tls_and_take_only_the_internal_certificate(
    secure_flink: Flink, tmp_path: Path
) -> None:
    files = tls_files(secure_flink)
    internal = write_internal_cert_pem(files, tmp_path)
    operator = (files.client_cert, files.client_key)
    ports = secure_flink.config.ports
    for name, port in (("rpc", ports.flink_rpc), ("blob", ports.flink_blob)):
        assert tls_handshake(port, None).startswith("refused"), name
        assert tls_handshake(port, operator).startswith("refused"), name
        assert not tls_handshake(port, internal).startswith("refused"), (name, tls_handshake(port, internal))


def submit_probe(flink: Flink, tmp_path: Path, delay_ms: int) -> str:
    job_file = tmp_path / "secure_probe.py"
    job_file.write_text(PROBE_JOB)
    return operator_cluster(flink).submit_python(job_file, [str(delay_ms)], jar=connector_jar(flink.config))


def wait_state(cluster: FlinkCluster, job_id: str, states: set[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while (state := cluster.job_detail(job_id)["state"]) not in states and time.monotonic() < deadline:
        time.sleep(1)
    return str(state)


def test_flink_run_submits_through_tls_and_a_thread_mode_job_runs_under_internal_tls(
    secure_flink: Flink, tmp_path: Path
) -> None:
    cluster = operator_cluster(secure_flink)
    job_id = submit_probe(secure_flink, tmp_path, delay_ms=1)
    assert wait_state(cluster, job_id, {"FINISHED", "FAILED", "CANCELED"}, timeout_s=180) == "FINISHED"
    detail = cluster.job_detail(job_id)
    # The records crossed the keyed shuffle: the reduce read every one of the 2,000 the map wrote.
    written = {v["name"]: v["metrics"]["write-records"] for v in detail["vertices"]}
    read = {v["name"]: v["metrics"]["read-records"] for v in detail["vertices"]}
    assert any(n == 2000 for n in written.values()) and any(n == 2000 for n in read.values()), (written, read)


def test_web_cancel_off_hides_the_button_but_the_rest_cancel_needs_the_certificate(
    secure_flink: Flink, tmp_path: Path
) -> None:
    cluster = operator_cluster(secure_flink)
    job_id = submit_probe(secure_flink, tmp_path, delay_ms=1000)  # ~1,000 s of work: it runs until cancelled
    assert wait_state(cluster, job_id, {"RUNNING"}, timeout_s=120) == "RUNNING"
    anonymous = requests.Session()
    anonymous.trust_env = False
    anonymous.verify = str(tls_files(secure_flink).ca_cert)
    with pytest.raises(requests.exceptions.SSLError):
        anonymous.patch(https_url(secure_flink, f"/jobs/{job_id}?mode=cancel"), timeout=10)
    assert cluster.job_detail(job_id)["state"] == "RUNNING"
    # With the operator's certificate the REST cancel works although web.cancel.enable is false: Flink 1.20 reads
    # that flag only to hide the web UI's button. The client certificate is what keeps others out.
    cluster.cancel(job_id)
    assert cluster.job_detail(job_id)["state"] == "CANCELED"


def test_the_tls_material_is_readable_only_by_its_owner(secure_flink: Flink) -> None:
    files = tls_files(secure_flink)
    for keystore in (files.rest_server_keystore, files.rest_client_keystore, files.internal_keystore):
        assert keystore.stat().st_mode & 0o777 == 0o600, keystore
    assert files.client_key.stat().st_mode & 0o777 == 0o600
    assert (secure_flink.conf_dir / "config.yaml").stat().st_mode & 0o777 == 0o600  # holds the store password
    assert files.ca_cert.parent.stat().st_mode & 0o777 == 0o700
