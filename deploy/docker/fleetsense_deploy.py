"""What the fleetsense image does on a cluster that `fleetsense stack` did not start (docs/deployment.md).

    fleetsense_deploy.py settings --out FILE   the job's settings file (0600): the settings JSON + the secret files
    fleetsense_deploy.py bootstrap             broker topology and job user; Cassandra superuser, schema, users
    fleetsense_deploy.py submit                the ingest job on a session cluster, unless it runs (compose);
                                               from the savepoint `stop` left, when there is one
    fleetsense_deploy.py stop                  stop the job with a savepoint and leave its path for `submit`

An upgrade is `stop`, then the new image on every Flink host (the TaskManagers run the installed package's Python),
then `bootstrap` (the new code's migrations, while no job writes) and `submit`: on compose `docker-compose build &&
docker-compose up -d` does the last three (docs/deployment.md, Upgrading the job).

Every command reads the job's non-secret settings from $FLEETSENSE_JOB_SETTINGS (a JSON file named like
IngestJobSettings' fields: compose's config/job-settings.json, the k8s ConfigMap) and each secret from its own file in
$FLEETSENSE_SECRETS_DIR (compose's /run/secrets, a k8s Secret mounted as a directory). The library does the work
(gateway.topology, cloud.schema, stack.cassandra_auth, cloud.jobctl); this file only connects it to files and env.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleetsense.cloud.job_settings import IngestJobSettings

from fleetsense.errors import ConfigError, FleetsenseError
from fleetsense.stack.secrets import Credentials, write_private

SETTINGS_ENV = "FLEETSENSE_JOB_SETTINGS"
SECRETS_DIR_ENV = "FLEETSENSE_SECRETS_DIR"
MANAGEMENT_URL_ENV = "FLEETSENSE_RABBITMQ_MANAGEMENT_URL"  # e.g. http://rmq1:15672
ADMIN_USER_ENV = "FLEETSENSE_RABBITMQ_ADMIN_USER"
FLINK_REST_ENV = "FLEETSENSE_FLINK_REST"  # host:port of every JobManager, comma-separated: the leader answers
SAVEPOINT_DIR_ENV = "FLEETSENSE_SAVEPOINT_DIR"  # where `stop` puts its savepoint (shared by every Flink host)
PENDING_SAVEPOINT = "stopped-for-upgrade"  # in the savepoint dir: the path `submit` resumes from, once

# Secret file -> what it holds. Compose's secrets and the k8s Secrets use exactly these names.
JOB_SECRETS = {"amqp_password": "flink-amqp-password", "cassandra_password": "cassandra-job-password"}
RABBITMQ_ADMIN_SECRET = "rabbitmq-admin-password"
CASSANDRA_OPERATOR_SECRET = "cassandra-operator-password"
CASSANDRA_READER_SECRET = "cassandra-reader-password"
ERLANG_COOKIE_SECRET = "erlang-cookie"  # read by the brokers themselves, never by this script
ALL_SECRETS = (*JOB_SECRETS.values(), RABBITMQ_ADMIN_SECRET, CASSANDRA_OPERATOR_SECRET, CASSANDRA_READER_SECRET)
DEFAULT_USER_WAIT_S = 120.0  # a fresh ring creates cassandra/cassandra some seconds after CQL opens


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"${name} is not set", hint="docs/deployment.md lists what the fleetsense image needs")
    return value


def read_secret(secrets_dir: Path, name: str) -> str:
    path = secrets_dir / name
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the secret {name} at {path}: {exc.strerror}",
            hint="create it from its .example (compose) or apply the Secret (k8s): docs/deployment.md, Secrets",
        ) from exc
    if not value:
        raise ConfigError(f"the secret {name} at {path} is empty", hint="put the password in it, on one line")
    return value


def job_settings(config_path: Path, secrets_dir: Path) -> IngestJobSettings:
    """The job's settings: the JSON without secrets, plus each secret from its file; checked like any settings."""
    try:
        values: dict[str, Any] = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the job settings {config_path}: {exc}") from exc
    leaked = sorted(set(values) & set(JOB_SECRETS))
    if leaked:
        raise ConfigError(
            f"{config_path} holds {', '.join(leaked)}: a password belongs in its secret file, not in the settings",
            hint=f"remove it; the image reads {', '.join(JOB_SECRETS.values())} from {secrets_dir}",
        )
    secrets = {field: read_secret(secrets_dir, name) for field, name in JOB_SECRETS.items()}
    return _from_values(values | secrets, source=str(config_path))


def _from_values(values: dict[str, Any], *, source: str) -> IngestJobSettings:
    """Through IngestJobSettings.from_file, the one public reader of the flat form (the stream group unflattened,
    every setting checked), by way of a private temporary file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.json"
        write_private(path, json.dumps(values))
        try:
            return IngestJobSettings.from_file(path)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}", hint=exc.hint) from exc


def hosts(host_list: str) -> list[str]:
    """'cas1,cas2, cas3' -> ['cas1', 'cas2', 'cas3']: the multi-host form of a connection setting."""
    names = [name.strip() for name in host_list.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"no host in {host_list!r}", hint="give one host or a comma-separated list")
    return names


@contextmanager
def cql_session(settings: IngestJobSettings, login: Credentials) -> Iterator[Any]:
    """A session through the first contact point that answers (any node knows the ring)."""
    from fleetsense.cloud.cassandra_session import CassandraUnavailable, connect

    last: CassandraUnavailable | None = None
    for host in hosts(settings.cassandra_host):
        try:
            with connect((host, settings.cassandra_port), login=login) as session:
                yield session
                return
        except CassandraUnavailable as exc:
            last = exc
    assert last is not None
    raise last


def bootstrap(settings: IngestJobSettings, secrets_dir: Path) -> None:
    from fleetsense.gateway import topology
    from fleetsense.gateway.management import ManagementClient

    admin = Credentials(username=env(ADMIN_USER_ENV), password=read_secret(secrets_dir, RABBITMQ_ADMIN_SECRET))
    client = ManagementClient(env(MANAGEMENT_URL_ENV), admin.username, admin.password)
    topology.apply(client, operator=admin.username)
    topology.ensure_flink_user(client, settings.amqp_password)
    print(f"broker: vhost {topology.FLEET_VHOST}, queues and user {topology.FLINK_USER} applied")
    bootstrap_cassandra(settings, secrets_dir)


def bootstrap_cassandra(settings: IngestJobSettings, secrets_dir: Path) -> None:
    """Our superuser in place of cassandra/cassandra, system_auth replicated like the keyspace, the schema, then
    the job's and the reader's users with their grants (the single-node secure path, stack/cassandra_auth.py)."""
    from fleetsense.cloud.cassandra_session import CassandraLoginRefused
    from fleetsense.cloud.schema import apply_schema, replication

    from fleetsense.stack import cassandra_auth as auth

    operator = Credentials(
        username=auth.USERS[auth.OPERATOR].username, password=read_secret(secrets_dir, CASSANDRA_OPERATOR_SECRET)
    )
    deadline = time.monotonic() + DEFAULT_USER_WAIT_S
    while True:
        try:
            with cql_session(settings, operator):
                break
        except CassandraLoginRefused:
            pass
        try:
            with cql_session(settings, auth.DEFAULT_SUPERUSER) as session:
                exists = auth.user_exists(session, operator.username)
                for cql, values in auth.user_statements(
                    auth.USERS[auth.OPERATOR], operator, keyspace=settings.keyspace, exists=exists
                ):
                    session.execute(cql, values)
        except CassandraLoginRefused:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    users = {
        auth.JOB: Credentials(username=settings.cassandra_username, password=settings.cassandra_password),
        auth.READER: Credentials(
            username=auth.USERS[auth.READER].username, password=read_secret(secrets_dir, CASSANDRA_READER_SECRET)
        ),
    }
    with cql_session(settings, operator) as session:
        auth.drop_default_superuser(session, operator)
        # Logins read system_auth: with one replica, the node holding a role is needed by everyone's login.
        session.execute(f"ALTER KEYSPACE system_auth WITH replication = {replication()}")
        print(f"cassandra: schema at migration {apply_schema(session, keyspace=settings.keyspace)[-1:] or 'current'}")
        for role, creds in users.items():
            exists = auth.user_exists(session, creds.username)
            for cql, values in auth.user_statements(auth.USERS[role], creds, keyspace=settings.keyspace, exists=exists):
                session.execute(cql, values)
        print(f"cassandra: users {', '.join(c.username for c in users.values())} with their grants")


def flink_cluster(log_dir: Path) -> Any:
    """The JobManager that leads: a standby answers the REST API with an error until it takes over."""
    from fleetsense.cloud.jobctl import FlinkCluster

    errors = []
    for address in hosts(env(FLINK_REST_ENV)):
        host, _, port = address.rpartition(":")
        cluster = FlinkCluster(host, int(port), log_dir=log_dir)
        try:
            cluster.jobs()
            return cluster
        except FleetsenseError as exc:
            errors.append(f"{address}: {exc}")
    raise ConfigError("no JobManager answers: " + "; ".join(errors), hint=f"check ${FLINK_REST_ENV} and the JMs")


def record_savepoint(savepoint_dir: Path, savepoint: str) -> None:
    """The savepoint the next `submit` resumes from (a second `stop` before a submit replaces it: it is newer)."""
    (savepoint_dir / PENDING_SAVEPOINT).write_text(savepoint + "\n")


def pending_savepoint(savepoint_dir: Path) -> str | None:
    path = savepoint_dir / PENDING_SAVEPOINT
    return path.read_text().strip() if path.exists() else None


def savepoint_used(savepoint_dir: Path, job_id: str) -> None:
    """Kept, renamed after the job that resumed from it: a later submit never goes back to it."""
    (savepoint_dir / PENDING_SAVEPOINT).rename(savepoint_dir / f"resumed-by-{job_id}")


def stop(cluster: Any, settings: IngestJobSettings, savepoint_dir: Path) -> str:
    running = cluster.running(settings.job_name)
    if running is None:
        raise ConfigError(f"no running job {settings.job_name} to stop", hint="`submit` starts it")
    savepoint = str(cluster.stop_with_savepoint(running.job_id, savepoint_dir))
    record_savepoint(savepoint_dir, savepoint)
    return f"stopped {running.job_id} with savepoint {savepoint}; the next `submit` resumes from it"


def submit(cluster: Any, settings_file: Path, settings: IngestJobSettings, savepoint_dir: Path) -> str:
    """Submit the job unless it runs; after a `stop`, from its savepoint, which is then marked used (a second
    submit never goes back to it)."""
    from fleetsense.cloud.jobs import telemetry_ingest_path

    running = cluster.running(settings.job_name)
    if running:
        return f"already running: {settings.job_name} as job {running.job_id}"
    savepoint = pending_savepoint(savepoint_dir)
    write_private(settings_file, settings.to_json())
    job_id = cluster.submit_python(
        telemetry_ingest_path(),
        ["--settings", str(settings_file)],
        jar=Path(settings.connector_jar),
        savepoint=savepoint,
    )
    cluster.wait_running(job_id)
    if savepoint:
        savepoint_used(savepoint_dir, job_id)
    return f"submitted: {settings.job_name} as job {job_id}" + (f" from {savepoint}" if savepoint else "")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fleetsense_deploy")
    parser.add_argument("action", choices=["settings", "bootstrap", "submit", "stop"])
    parser.add_argument("--out", type=Path, default=Path("/opt/fleetsense/run/job-settings.json"))
    args = parser.parse_args(argv)
    try:
        secrets_dir = Path(env(SECRETS_DIR_ENV))
        settings = job_settings(Path(env(SETTINGS_ENV)), secrets_dir)
        if args.action == "settings":
            write_private(args.out, settings.to_json())
            print(f"job settings written to {args.out} (mode 0600)")
        elif args.action == "bootstrap":
            bootstrap(settings, secrets_dir)
        else:
            cluster = flink_cluster(args.out.parent / "flink-client-log")
            savepoint_dir = Path(env(SAVEPOINT_DIR_ENV))
            if args.action == "submit":
                print(submit(cluster, args.out, settings, savepoint_dir))
            else:
                print(stop(cluster, settings, savepoint_dir))
    except FleetsenseError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
