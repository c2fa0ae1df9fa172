"""Settings of the telemetry ingest job, passed to the job as a JSON file readable only by its owner."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetsense.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class IngestJobSettings:
    amqp_host: str
    amqp_port: int
    amqp_vhost: str
    amqp_username: str
    amqp_password: str
    amqp_queue: str
    amqp_prefetch: int = 500
    cassandra_host: str
    cassandra_port: int
    keyspace: str
    connector_jar: str
    checkpoint_interval_ms: int = 2000
    parallelism: int = 2
    python_execution_mode: str = "thread"  # or "process"
    job_name: str = "fleetsense-telemetry-ingest"

    def __repr__(self) -> str:
        return f"IngestJobSettings(job_name={self.job_name!r}, queue={self.amqp_queue!r}, keyspace={self.keyspace!r})"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_file(cls, path: Path) -> IngestJobSettings:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read job settings from {path}: {exc}") from exc
