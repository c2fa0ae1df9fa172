"""The deployment files under deploy/ as data (loaded once here, for the other test_deploy_* modules), and the
checks that need nothing but the files: they parse, every Kubernetes object sits in the one namespace, and the
secrets of the compose stack are never committed."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "k8s"
SCHEMAS = Path(__file__).parent / "fixtures" / "deploy"
NAMESPACE = "fleetsense"


@functools.cache
def k8s_objects() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every object of every manifest, as (file name, object)."""
    found = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return tuple(found)


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    (match,) = [obj for _, obj in k8s_objects() if obj["kind"] == kind and obj["metadata"]["name"] == name]
    return match


@functools.cache
def compose_config() -> dict[str, Any]:
    """The compose file as docker-compose itself resolves it (anchors merged, paths made absolute)."""
    done = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(COMPOSE_DIR),
            "-f",
            str(COMPOSE_DIR / "docker-compose.yml"),
            "config",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A resolved service's volumes as target -> source (docker-compose 1.29 prints them as "source:target:mode")."""
    pairs = [volume.split(":")[:2] for volume in service.get("volumes", [])]
    return {target: source for source, target in pairs}


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """A resolved service's published ports as (host address, published, target); "" is every address. 1.29
    prints short entries as "127.0.0.1:8081:8081/tcp" and others as mappings."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
        else:
            *host, published, target = port.removesuffix("/tcp").split(":")
            found.append(((host or [""])[0], int(published), int(target)))
    return found


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def conf_settings(text: str) -> dict[str, str]:
    """rabbitmq.conf's `key = value` lines (sysctl format) as a map."""
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


@functools.cache
def deploy_script() -> ModuleType:
    """deploy/docker/fleetsense_deploy.py, imported from its file (the image runs it as a script)."""
    spec = importlib.util.spec_from_file_location("fleetsense_deploy", DEPLOY / "docker" / "fleetsense_deploy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fleetsense_deploy", module)
    spec.loader.exec_module(module)
    return module


def compose_job_settings() -> dict[str, Any]:
    settings: dict[str, Any] = json.loads((COMPOSE_DIR / "config" / "job-settings.json").read_text())
    return settings


def k8s_job_settings() -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(
        k8s_object("ConfigMap", "fleetsense-job-settings")["data"]["job-settings.json"]
    )
    return settings


def test_every_manifest_parses_into_objects_with_a_kind_and_a_name() -> None:
    assert len(k8s_objects()) >= 10
    for file, obj in k8s_objects():
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), file


def test_every_namespaced_object_is_in_the_fleetsense_namespace() -> None:
    for file, obj in k8s_objects():
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{file}: {obj['kind']} {obj['metadata']['name']}"


def test_the_secret_templates_hold_no_secret() -> None:
    """A template applied as is must not bring a known password: every password value is empty (and the image
    refuses an empty secret, see test_deploy_script)."""
    for _, obj in k8s_objects():
        if obj["kind"] == "Secret":
            values = {**obj.get("stringData", {}), **obj.get("data", {})}
            assert all(value == "" for key, value in values.items() if key != "username"), obj["metadata"]["name"]


def test_no_secret_or_key_of_the_compose_stack_is_tracked_by_git() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/compose/secrets", "deploy/compose/tls"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked == ["deploy/compose/secrets/.gitignore", "deploy/compose/tls/.gitignore"]


def test_both_job_settings_files_are_json_objects() -> None:
    assert isinstance(compose_job_settings(), dict)
    assert isinstance(k8s_job_settings(), dict)


def test_no_password_is_passed_in_an_environment_variable() -> None:
    """Secrets reach the containers as files (compose secrets, mounted k8s Secrets), never in the environment, where
    `docker inspect`, `kubectl describe` and every child process would see them."""
    # A variable naming where secrets are (FLEETSENSE_SECRETS_DIR) is not one.
    secretish = re.compile(r"^(?!.*_(DIR|FILE)$).*(PASS|SECRET|COOKIE|TOKEN$|KEY$)", re.IGNORECASE)
    for name, spec in compose_config()["services"].items():
        assert not [key for key in spec.get("environment", {}) if secretish.search(key)], name
    assert not [key for key in env_file(COMPOSE_DIR / "fleetsense.env") if secretish.search(key)]
    for _, obj in k8s_objects():
        if obj["kind"] == "ConfigMap":
            assert not [key for key in obj["data"] if secretish.search(key)], obj["metadata"]["name"]
