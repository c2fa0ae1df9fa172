"""The deployment files say what fleetsense itself configures: ports, vhost, queues, users, keyspace, the job's
settings, the broker's settings and the Flink version. Every expected value is read from the code, so renaming a
queue or moving a port there fails here until deploy/ follows."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud import schema
from fleetsense.cloud.job_settings import IngestJobSettings
from fleetsense.cloud.stream_settings import StreamSettings
from fleetsense.gateway import topology
from fleetsense.gateway.identity import PATHS as AUTHORISER_PATHS

from fleetsense.stack import cassandra_auth, rabbitmq
from fleetsense.stack.flink import flink_settings
from fleetsense.stack.layout import Ports, StackConfig
from tests.unit.test_deploy_files import (
    COMPOSE_DIR,
    DEPLOY,
    ROOT,
    compose_config,
    compose_job_settings,
    conf_settings,
    deploy_script,
    env_file,
    k8s_job_settings,
    k8s_object,
    k8s_objects,
    mounts,
    published_ports,
)

PORTS = Ports()
SETTINGS_FILES = {"compose": compose_job_settings, "k8s": k8s_job_settings}
# What differs on purpose between the local stack's rabbitmq.conf and a cluster's: where things are (addresses,
# files, the listeners the operator or compose declare), who the admin is (a secret) and local logging.
WHERE_NOT_WHAT = re.compile(
    r"^(listeners\.|mqtt\.listeners\.|ssl_options\.(cacertfile|certfile|keyfile)$|management\.|prometheus\.|"
    r"default_(user|pass)|default_user_tags|default_vhost$|log\.|auth_http\.\w+_path$)"
)
# Keys the RabbitMQ Cluster Operator writes itself from spec.tls and the plugin list (so additionalConfig omits them).
OPERATOR_WRITES = re.compile(r"^(listeners\.|mqtt\.listeners\.|ssl_options\.(cacertfile|certfile|keyfile)$)")
OPERATOR_PLUGINS = {"rabbitmq_management", "rabbitmq_prometheus", "rabbitmq_peer_discovery_k8s"}


@pytest.fixture(scope="module")
def stack_broker_conf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What `fleetsense stack up` writes for the secure profile (TLS-only MQTT, as the deployments run)."""
    config = StackConfig(data_dir=tmp_path_factory.mktemp("stack"), profile="secure")
    broker = rabbitmq.RabbitMQ(config)
    broker.write_config()
    return conf_settings((broker.home / "rabbitmq.conf").read_text())


def compose_broker_conf() -> dict[str, str]:
    return conf_settings((COMPOSE_DIR / "rabbitmq" / "fleetsense.conf").read_text())


def k8s_broker_conf() -> dict[str, str]:
    return conf_settings(k8s_object("RabbitmqCluster", "fleetsense-rabbitmq")["spec"]["rabbitmq"]["additionalConfig"])


def services(prefix: str) -> dict[str, Any]:
    return {name: spec for name, spec in compose_config()["services"].items() if re.fullmatch(rf"{prefix}\d", name)}


# -- the broker -------------------------------------------------------------------------------------------------


def test_compose_brokers_listen_where_the_stack_does(stack_broker_conf: dict[str, str]) -> None:
    conf = compose_broker_conf()
    assert conf["listeners.tcp.default"] == str(PORTS.amqp)
    assert conf["mqtt.listeners.ssl.default"] == str(PORTS.mqtts)
    assert conf["mqtt.listeners.tcp"] == stack_broker_conf["mqtt.listeners.tcp"] == "none"  # TLS only
    assert conf["management.tcp.port"] == str(PORTS.rabbitmq_management)
    assert conf["prometheus.tcp.port"] == str(PORTS.rabbitmq_prometheus)


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_every_broker_setting_of_the_stack_is_in_the_deployment(where: str, stack_broker_conf: dict[str, str]) -> None:
    conf = compose_broker_conf() if where == "compose" else k8s_broker_conf()
    skip = WHERE_NOT_WHAT if where == "compose" else re.compile(f"{WHERE_NOT_WHAT.pattern}|{OPERATOR_WRITES.pattern}")
    expected = {key: value for key, value in stack_broker_conf.items() if not skip.match(key)}
    assert expected, "the stack's rabbitmq.conf was not read"
    assert {key: conf.get(key) for key in expected} == expected


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_the_authoriser_is_asked_on_its_port_for_each_of_its_questions(where: str) -> None:
    conf = compose_broker_conf() if where == "compose" else k8s_broker_conf()
    port = rabbitmq.authoriser_port(StackConfig())
    paths = {key: value for key, value in conf.items() if key.startswith("auth_http.") and key.endswith("_path")}
    assert paths == {f"auth_http.{name}_path": f"http://127.0.0.1:{port}/auth/{name}" for name in AUTHORISER_PATHS}
    sidecars = (
        [spec["command"] for name, spec in compose_config()["services"].items() if name.startswith("authoriser")]
        if where == "compose"
        else [
            container["command"]
            for container in k8s_object("RabbitmqCluster", "fleetsense-rabbitmq")["spec"]["override"]["statefulSet"][
                "spec"
            ]["template"]["spec"]["containers"]
        ]
    )
    assert len(sidecars) == (3 if where == "compose" else 1)
    for command in sidecars:
        assert command[command.index("--port") + 1] == str(port)


def test_the_authorisation_chain_is_the_stacks(tmp_path: Path) -> None:
    config = StackConfig(data_dir=tmp_path, profile="secure")
    rabbitmq.RabbitMQ(config).write_config()
    expected = (config.component_dir("rabbitmq") / "advanced.config").read_text().strip()
    compose = (COMPOSE_DIR / "rabbitmq" / "advanced.config").read_text()
    assert expected in compose.splitlines()
    assert (
        k8s_object("RabbitmqCluster", "fleetsense-rabbitmq")["spec"]["rabbitmq"]["advancedConfig"].strip() == expected
    )


def test_the_brokers_run_the_stacks_plugins() -> None:
    enabled = (COMPOSE_DIR / "rabbitmq" / "enabled_plugins").read_text().strip()
    assert enabled == f"[{','.join(rabbitmq.PLUGINS)}]."
    additional = set(k8s_object("RabbitmqCluster", "fleetsense-rabbitmq")["spec"]["rabbitmq"]["additionalPlugins"])
    assert additional | OPERATOR_PLUGINS >= set(rabbitmq.PLUGINS)


def test_the_compose_brokers_form_one_cluster_of_three_named_nodes() -> None:
    brokers = services("rmq")
    conf = compose_broker_conf()
    nodes = {value for key, value in conf.items() if key.startswith("cluster_formation.classic_config.nodes.")}
    assert len(brokers) == 3
    assert nodes == {f"rabbit@{spec['hostname']}" for spec in brokers.values()}
    assert k8s_object("RabbitmqCluster", "fleetsense-rabbitmq")["spec"]["replicas"] == len(brokers)


def test_the_devices_reach_every_broker_on_the_mqtts_port_and_nothing_else() -> None:
    haproxy = (COMPOSE_DIR / "haproxy" / "haproxy.cfg").read_text()
    assert f"bind :{PORTS.mqtts}" in haproxy
    assert set(re.findall(r"server \w+ (\S+) check", haproxy)) == {f"{name}:{PORTS.mqtts}" for name in services("rmq")}
    assert published_ports(compose_config()["services"]["mqtt"]) == [("", PORTS.mqtts, PORTS.mqtts)]
    service = k8s_object("Service", "fleetsense-mqtt")["spec"]
    assert [(port["port"], port["targetPort"]) for port in service["ports"]] == [(PORTS.mqtts, PORTS.mqtts)]
    published = [p for spec in compose_config()["services"].values() for p in published_ports(spec)]
    for host, port, _ in published:  # everything else only on the machine's loopback
        assert port == PORTS.mqtts or host == "127.0.0.1", (host, port)


# -- the job's settings -----------------------------------------------------------------------------------------


def setting_names() -> set[str]:
    return {f.name for f in dataclasses.fields(IngestJobSettings) if f.name != "stream"} | {
        f.name for f in dataclasses.fields(StreamSettings)
    }


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_the_job_settings_name_only_settings_that_exist(where: str) -> None:
    settings = SETTINGS_FILES[where]()
    assert set(settings) <= setting_names(), set(settings) - setting_names()


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_the_job_reads_the_fleets_queues_as_its_own_users(where: str) -> None:
    settings = SETTINGS_FILES[where]()
    assert settings["amqp_port"] == PORTS.amqp
    assert settings["amqp_vhost"] == topology.FLEET_VHOST
    assert settings["amqp_queue"] == topology.TELEMETRY_QUEUE
    assert settings["amqp_status_queue"] == topology.STATUS_QUEUE
    assert settings["amqp_username"] == topology.FLINK_USER
    assert settings["cassandra_port"] == PORTS.cql
    assert settings["cassandra_username"] == cassandra_auth.USERS[cassandra_auth.JOB].username
    assert settings["keyspace"] == schema.KEYSPACE


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_the_job_settings_with_their_secrets_are_valid_settings(where: str, tmp_path: Path) -> None:
    script = deploy_script()
    for name in script.JOB_SECRETS.values():
        (tmp_path / name).write_text("s3cret\n")
    config = tmp_path / "job-settings.json"
    config.write_text(__import__("json").dumps(SETTINGS_FILES[where]()))
    settings = script.job_settings(config, tmp_path)
    assert settings.amqp_password == settings.cassandra_password == "s3cret"
    assert settings.connector_jar.endswith(f"/{connector_jar_name()}")


def connector_jar_name() -> str:
    from fleetsense.cloud.connector_build import JAR_NAME

    return str(JAR_NAME)


def test_the_compose_job_connects_to_every_broker_and_cassandra_node() -> None:
    settings = compose_job_settings()
    assert settings["amqp_host"].split(",") == sorted(services("rmq"))
    assert settings["cassandra_host"].split(",") == sorted(services("cas"))


def test_the_k8s_job_connects_through_the_operators_services() -> None:
    settings = k8s_job_settings()
    cluster = k8s_object("RabbitmqCluster", "fleetsense-rabbitmq")
    dc = k8s_object("CassandraDatacenter", "dc1")
    assert settings["amqp_host"] == cluster["metadata"]["name"]  # the operator's client Service
    assert settings["cassandra_host"] == f"{dc['spec']['clusterName']}-{dc['metadata']['name']}-service"


# -- secrets, users and the environment of the image -----------------------------------------------------------


def test_the_job_secrets_are_settings_of_the_job() -> None:
    assert set(deploy_script().JOB_SECRETS) <= setting_names()


def test_compose_mounts_every_secret_the_script_reads_and_declares_no_other() -> None:
    script = deploy_script()
    declared = set(compose_config()["secrets"])
    brokers = {script.ERLANG_COOKIE_SECRET, script.RABBITMQ_ADMIN_SECRET, "rabbitmq-tls-key"}
    assert declared == set(script.ALL_SECRETS) | brokers
    for name in ("bootstrap", "submitter"):
        mounted = {s["source"] if isinstance(s, dict) else s for s in compose_config()["services"][name]["secrets"]}
        assert mounted == set(script.ALL_SECRETS), name
    for spec in services("rmq").values():
        assert {s["source"] if isinstance(s, dict) else s for s in spec["secrets"]} == brokers


def test_the_k8s_bootstrap_sees_every_secret_the_script_reads() -> None:
    script = deploy_script()
    job = k8s_object("Job", "fleetsense-bootstrap")["spec"]["template"]["spec"]
    (secrets,) = [volume for volume in job["volumes"] if volume["name"] == "secrets"]
    files: set[str] = set()
    for source in secrets["projected"]["sources"]:
        items = source["secret"].get("items")
        files |= (
            {item["path"] for item in items}
            if items
            else set(k8s_object("Secret", source["secret"]["name"])["stringData"])
        )
    assert files == set(script.ALL_SECRETS)


def test_the_broker_admin_and_the_cassandra_superuser_are_the_stacks() -> None:
    assert env_file(COMPOSE_DIR / "fleetsense.env")[deploy_script().ADMIN_USER_ENV] == rabbitmq.OPERATOR_USER
    superuser = k8s_object("Secret", "fleetsense-cassandra-superuser")["stringData"]["username"]
    assert superuser == cassandra_auth.USERS[cassandra_auth.OPERATOR].username
    assert k8s_object("CassandraDatacenter", "dc1")["spec"]["superuserSecretName"] == "fleetsense-cassandra-superuser"


def test_the_image_is_configured_only_with_variables_it_reads() -> None:
    script = deploy_script()
    known = {value for name, value in vars(script).items() if name.endswith("_ENV")} | {schema.REPLICATION_ENV}
    assert set(env_file(COMPOSE_DIR / "fleetsense.env")) <= known
    assert set(k8s_object("ConfigMap", "fleetsense-env")["data"]) <= known


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_the_keyspace_has_a_replica_on_each_node_of_its_datacenter(where: str) -> None:
    if where == "compose":
        replication = env_file(COMPOSE_DIR / "fleetsense.env")[schema.REPLICATION_ENV]
        dcs = {spec["environment"]["CASSANDRA_DC"] for spec in services("cas").values()}
        (dc,), nodes = dcs, len(services("cas"))
    else:
        replication = k8s_object("ConfigMap", "fleetsense-env")["data"][schema.REPLICATION_ENV]
        datacenter = k8s_object("CassandraDatacenter", "dc1")
        dc, nodes = datacenter["metadata"]["name"], datacenter["spec"]["size"]
    assert replication == f"{{'class': 'NetworkTopologyStrategy', '{dc}': {nodes}}}"
    assert nodes == 3


def test_the_compose_settings_env_points_at_the_mounted_settings() -> None:
    env = env_file(COMPOSE_DIR / "fleetsense.env")
    (target,) = [t for t, s in mounts(compose_config()["services"]["bootstrap"]).items() if s.endswith("/config")]
    assert env[deploy_script().SETTINGS_ENV] == f"{target}/job-settings.json"
    assert env[deploy_script().FLINK_REST_ENV] == ",".join(f"{jm}:{PORTS.flink_rest}" for jm in sorted(services("jm")))


# -- Flink -------------------------------------------------------------------------------------------------------


def flink_version() -> str:
    """The apache-flink of the cloud extra: the one version everything Flink must match."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cloud"]
    (pin,) = [dep for dep in extra if dep.startswith("apache-flink==")]
    return pin.removeprefix("apache-flink==")


def test_the_image_and_the_job_use_the_flink_of_the_cloud_extra() -> None:
    version = flink_version()
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert f"ARG FLINK_IMAGE=flink:{version}-" in dockerfile
    pom = (ROOT / "cloud" / "connector" / "pom.xml").read_text()
    assert f"<flink.version>{version}</flink.version>" in pom
    deployment = k8s_object("FlinkDeployment", "fleetsense-ingest")["spec"]
    assert deployment["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{version}.jar"
    assert deployment["flinkVersion"] == "v" + "_".join(version.split(".")[:2])


def compose_flink_conf() -> dict[str, str]:
    properties = compose_config()["services"]["jm1"]["environment"]["FLINK_PROPERTIES"]
    return dict(line.split(": ", 1) for line in properties.splitlines() if line.strip())


def test_the_flink_settings_the_stack_needs_for_pyflink_are_everywhere(tmp_path: Path) -> None:
    stack = flink_settings(StackConfig(data_dir=tmp_path), tmp_path)
    same = (
        "classloader.parent-first-patterns.additional",
        "jobmanager.execution.failover-strategy",
        "state.backend.type",
        "execution.checkpointing.externalized-checkpoint-retention",
    )
    k8s = {
        key: str(value)
        for key, value in k8s_object("FlinkDeployment", "fleetsense-ingest")["spec"]["flinkConfiguration"].items()
    }
    for conf in (compose_flink_conf(), k8s):
        assert {key: conf.get(key) for key in same} == {key: stack[key] for key in same}
        assert conf["python.executable"] == conf["python.client.executable"] == "/opt/fleetsense/venv/bin/python"
    assert compose_flink_conf()["rest.port"] == str(PORTS.flink_rest)
    assert "python3.11 -m venv /opt/fleetsense/venv" in (DEPLOY / "docker" / "Dockerfile").read_text()


def test_the_job_runs_with_the_parallelism_its_settings_give() -> None:
    deployment = k8s_object("FlinkDeployment", "fleetsense-ingest")["spec"]
    assert deployment["job"]["parallelism"] == k8s_job_settings()["parallelism"]
    args = deployment["job"]["args"]
    assert args[args.index("-pym") + 1] == "fleetsense.cloud.jobs.telemetry_ingest"
    from fleetsense.cloud.jobs import telemetry_ingest_path

    assert telemetry_ingest_path().name == "telemetry_ingest.py"


def test_every_flink_host_sees_the_shared_state() -> None:
    flink = [name for name in compose_config()["services"] if re.fullmatch(r"jm\d|taskmanager|submitter", name)]
    targets = compose_flink_conf()["execution.checkpointing.dir"].removeprefix("file://")
    for name in flink:
        assert any(targets.startswith(target) for target in mounts(compose_config()["services"][name])), name


def test_compose_names_its_hosts_as_the_namespace_cluster_does(tmp_path: Path) -> None:
    """docs/deployment.md maps one onto the other by name: rmq1..3, cas1..3, jm1 and jm2 in both."""
    from fleetsense.cluster.plan import ClusterPlan, Role

    plan = ClusterPlan(data_dir=tmp_path)
    for role, prefix in ((Role.BROKER, "rmq"), (Role.CASSANDRA, "cas"), (Role.JOBMANAGER, "jm")):
        assert sorted(services(prefix)) == [host.name for host in plan.hosts(role)], role
        assert all(spec["hostname"] == name for name, spec in services(prefix).items())


def test_every_object_kind_in_the_manifests_is_one_the_tests_know() -> None:
    kinds = {obj["kind"] for _, obj in k8s_objects()}
    assert {"FlinkDeployment", "RabbitmqCluster", "CassandraDatacenter", "Secret", "ConfigMap", "Service"} <= kinds
