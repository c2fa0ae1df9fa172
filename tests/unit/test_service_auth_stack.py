"""The API as a stack component, without starting it: its settings from the stack's configuration and secrets,
and `fleetsense serve --print-openapi` without a database."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from fleetsense.stack.api import Api, file_fields, secret_key, serve_settings, settings_from_file
from fleetsense.stack.layout import Ports, StackConfig


def test_the_dev_profile_serves_plain_http_on_loopback_at_the_stacks_api_port(tmp_path: Path) -> None:
    config = StackConfig.for_tests(tmp_path)
    settings = serve_settings(config)
    assert (settings.host, settings.port, settings.profile) == ("127.0.0.1", config.ports.api, "dev")
    assert settings.cassandra_contact == f"127.0.0.1:{config.ports.cql}"
    assert not settings.tls and not settings.secure_cookies
    assert Api(config).url == f"http://127.0.0.1:{config.ports.api}"
    assert Ports().api == 8480 and Ports.for_tests().offset(1200).api == 28480 + 1200


def test_the_secure_profile_serves_tls_with_the_stacks_certificate_and_secure_cookies(tmp_path: Path) -> None:
    config = replace(StackConfig.for_tests(tmp_path), profile="secure")
    settings = serve_settings(config)
    assert settings.tls_cert == str(config.tls_dir / "server.pem") and Path(settings.tls_cert).exists()
    assert settings.tls_key == str(config.tls_dir / "server-key.pem")
    assert settings.secure_cookies and Api(config).url.startswith("https://")


def test_the_secret_key_is_made_once_private_and_kept_out_of_the_settings_file(tmp_path: Path) -> None:
    config = StackConfig.for_tests(tmp_path)
    key = secret_key(config)
    path = config.secrets_dir / "api-secret-key"
    assert path.stat().st_mode & 0o777 == 0o600 and len(key) >= 32
    assert secret_key(config) == key
    settings = serve_settings(config)
    written = json.loads(json.dumps(file_fields(settings)))
    assert "secret_key" not in written
    (tmp_path / "serve.json").write_text(json.dumps(written))
    assert settings_from_file(tmp_path / "serve.json", config) == settings


def test_serve_prints_the_openapi_document_without_a_database() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fleetsense.cli", "serve", "--print-openapi"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    document = json.loads(done.stdout)
    assert document["openapi"].startswith("3.") and "/v1/auth/login" in document["paths"]
    assert "/v1/users/{username}/tokens/{token_id}" in document["paths"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_secure_profile_answers_only_over_tls_checked_against_the_stacks_ca(tmp_path: Path) -> None:
    import ssl
    import threading
    import time

    import httpx
    import pytest
    import uvicorn
    from fleetsense.service.app import create_app
    from fleetsense.service.server import uvicorn_config

    config = replace(StackConfig.for_tests(tmp_path), profile="secure")
    settings = replace(serve_settings(config), port=free_port())
    server = uvicorn.Server(uvicorn_config(create_app(context=None), settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"127.0.0.1:{settings.port}"
        stack_ca = ssl.create_default_context(cafile=str(config.tls_dir / "ca.pem"))
        answer = httpx.get(f"https://{base}/v1/health", verify=stack_ca)
        assert answer.status_code == 200 and "server" not in answer.headers
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"https://{base}/v1/health")  # the system's CAs do not know the stack's
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{base}/v1/health")  # no plain HTTP on the TLS port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_demo_ends_with_the_dashboard_url_the_login_the_password_file_and_a_curl_line(tmp_path: Path) -> None:
    from fleetsense.stack.api_accounts import DemoLogin
    from fleetsense.stack.demo import api_lines

    login = DemoLogin("admin", tmp_path / "secrets/api-admin.json", "fst_" + "x" * 43)
    lines = api_lines(StackConfig.for_tests(tmp_path), login)
    dev = "\n".join(lines)
    port = StackConfig.for_tests(tmp_path).ports.api
    assert lines[:2] == [
        f"The dashboard: http://127.0.0.1:{port}/app/",
        f"  login: admin, password in {login.password_file} (mode 0600)",
    ]
    assert f"http://127.0.0.1:{port}/v1" in dev and "login: admin" in dev and str(login.password_file) in dev
    assert f'curl -N -H "Authorization: Bearer {login.token}" http://127.0.0.1:{port}/v1/events/live' in dev
    secure = "\n".join(api_lines(replace(StackConfig.for_tests(tmp_path), profile="secure"), login))
    assert f"curl -N --cacert {tmp_path / 'secrets/tls/ca.pem'} -H" in secure and "https://127.0.0.1" in secure
    assert secure.startswith(f"The dashboard: https://127.0.0.1:{port}/app/") and "trusts the stack's CA" in secure
