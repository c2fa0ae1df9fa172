"""Offline validation of the deployment files: the compose file by docker-compose 1.29 itself and by the Compose
Specification's schema, every Kubernetes object by the JSON schema of its kind (the operators' CRDs and the core
objects of Kubernetes 1.33, vendored in tests/unit/fixtures/deploy/, README.md there says from where)."""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.test_deploy_files import COMPOSE_DIR, SCHEMAS, k8s_object, k8s_objects

CRD_SCHEMAS = {  # apiVersion/kind -> its vendored schema
    "flink.apache.org/v1beta1/FlinkDeployment": "flinkdeployment-flink.apache.org-v1beta1.json",
    "rabbitmq.com/v1beta1/RabbitmqCluster": "rabbitmqcluster-rabbitmq.com-v1beta1.json",
    "cassandra.datastax.com/v1beta1/CassandraDatacenter": "cassandradatacenter-cassandra.datastax.com-v1beta1.json",
}
CORE_SCHEMAS = "kubernetes-v1.33.0-strict.json"


@functools.cache
def _load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


def validator(obj: dict[str, Any]) -> jsonschema.protocols.Validator:
    """The validator of `obj`'s kind; a kind without a vendored schema is a test failure, never a skip."""
    key = f"{obj['apiVersion']}/{obj['kind']}"
    if key in CRD_SCHEMAS:
        schema = _load(CRD_SCHEMAS[key])
        return jsonschema.Draft7Validator(schema)
    core = _load(CORE_SCHEMAS)
    assert obj["kind"] in core["kinds"], f"no vendored schema for {key}: add it (tests/unit/fixtures/deploy/README.md)"
    schema = {"$schema": core["$schema"], "$defs": core["$defs"], **core["kinds"][obj["kind"]]}
    return jsonschema.Draft202012Validator(schema)


def errors(obj: dict[str, Any]) -> list[str]:
    found = validator(obj).iter_errors(obj)
    return [f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message[:300]}" for error in found]


@pytest.mark.parametrize(
    "obj", [obj for _, obj in k8s_objects()], ids=[f"{f}:{o['kind']}/{o['metadata']['name']}" for f, o in k8s_objects()]
)
def test_every_kubernetes_object_is_valid_for_its_schema(obj: dict[str, Any]) -> None:
    assert errors(obj) == []


def test_the_operators_objects_are_all_present() -> None:
    kinds = {f"{obj['apiVersion']}/{obj['kind']}" for _, obj in k8s_objects()}
    assert set(CRD_SCHEMAS) <= kinds


@pytest.mark.parametrize(
    ("kind", "name", "path"),
    [
        ("FlinkDeployment", "fleetsense-ingest", ("spec", "job")),
        ("RabbitmqCluster", "fleetsense-rabbitmq", ("spec", "rabbitmq")),
        ("Deployment", None, ()),
        ("Service", "fleetsense-mqtt", ("spec",)),
    ],
)
def test_a_misspelt_field_is_refused(kind: str, name: str | None, path: tuple[str, ...]) -> None:
    """The schemas are strict (unknown fields refused, as the API server's strict field validation does): a typo
    cannot pass these tests and then be pruned silently by the cluster."""
    if name is None:  # a kind the manifests do not use: a minimal valid one
        obj: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "x", "namespace": "fleetsense"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}},
            },
        }
        assert errors(obj) == []
    else:
        obj = copy.deepcopy(k8s_object(kind, name))
    node = obj
    for key in path:
        node = node[key]
    node["paralelism"] = 4
    assert any("paralelism" in error for error in errors(obj)), errors(obj)


def test_a_wrong_type_in_a_crd_is_refused() -> None:
    cluster = copy.deepcopy(k8s_object("CassandraDatacenter", "dc1"))
    cluster["spec"]["size"] = "three"
    assert any(error.startswith("spec/size") for error in errors(cluster))


def test_docker_compose_accepts_the_compose_file() -> None:
    done = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config", "-q"],
        cwd=COMPOSE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_docker_compose_refuses_a_broken_compose_file(tmp_path: Path) -> None:
    """The check above can fail: the same command on a copy with a misspelt service key."""
    broken = (COMPOSE_DIR / "docker-compose.yml").read_text().replace("    hostname: cas1\n", "    hostnme: cas1\n", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    done = subprocess.run(
        ["docker-compose", "--project-directory", str(COMPOSE_DIR), "-f", "docker-compose.yml", "config", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "hostnme" in done.stderr


def test_the_compose_file_matches_the_compose_specification() -> None:
    """docker-compose 1.29 knows the file format 3.x; today's `docker compose` (v2) reads the Compose Specification:
    check-jsonschema's vendored copy of its schema checks the file for that reader too."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=COMPOSE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
