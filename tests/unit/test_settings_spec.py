"""Settings are declared once (fleetsense.settings_spec on a dataclass field): checks, command-line parsing, the job's
settings file and the docs' table are derived from that one declaration."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleetsense.cloud.job_settings import IngestJobSettings, all_settings
from fleetsense.cloud.stream_settings import StreamSettings

from fleetsense import settings_spec
from fleetsense.errors import ConfigError
from fleetsense.settings_spec import setting


def _job(**overrides: str) -> IngestJobSettings:
    base = IngestJobSettings(
        amqp_host="h", amqp_port=1, amqp_vhost="/", amqp_username="u", amqp_password="p", amqp_queue="q",
        cassandra_host="c", cassandra_port=2, keyspace="k", connector_jar="j",
    )  # fmt: skip
    return base.with_overrides(overrides)


def test_every_job_setting_is_declared_once_and_the_streams_are_not_repeated_by_the_job() -> None:
    names = [spec.name for spec in all_settings()]
    assert len(names) == len(set(names))
    own = {spec.name for spec in settings_spec.describe(IngestJobSettings)}
    assert own.isdisjoint(spec.name for spec in settings_spec.describe(StreamSettings))
    assert {"vehicle_class", "gap_wait_ms", "max_waiting", "idle_flush_ms"} <= set(names)
    assert all(spec.doc and spec.group for spec in all_settings())


def test_a_stream_setting_set_on_the_command_line_reaches_the_stream_and_its_file_stays_flat(tmp_path: Path) -> None:
    settings = _job(idle_flush_ms="20000", gap_wait_ms="12000", vehicle_class="truck", shards="8")
    assert settings.stream == StreamSettings(idle_flush_ms=20_000, gap_wait_ms=12_000, vehicle_class="truck")
    flat = json.loads(settings.to_json())
    assert (flat["idle_flush_ms"], flat["vehicle_class"], flat["shards"]) == (20_000, "truck", 8)
    assert "stream" not in flat  # the file names every setting flat, as before the settings were grouped
    path = tmp_path / "settings.json"
    path.write_text(settings.to_json())
    assert IngestJobSettings.from_file(path) == settings


def test_a_settings_file_written_before_the_grouping_is_read_as_it_was(tmp_path: Path) -> None:
    old = {
        "amqp_host": "h", "amqp_port": 1, "amqp_vhost": "/", "amqp_username": "u", "amqp_password": "p",
        "amqp_queue": "q", "amqp_status_queue": "fleet.status", "amqp_prefetch": 30000, "readers": 1,
        "cassandra_host": "c", "cassandra_port": 2, "cassandra_username": "", "cassandra_password": "",
        "keyspace": "k", "connector_jar": "j", "checkpoint_interval_ms": 1000, "checkpoint_alignment_timeout_ms": 200,
        "buffer_timeout_ms": 20, "parallelism": 4, "restart_attempts": 1000, "restart_delay_ms": 5000,
        "python_execution_mode": "thread", "python_bundle_size": 500, "python_bundle_time_ms": 100,
        "bundle_messages": 200, "bundle_linger_ms": 100, "shards": 16, "vehicle_cache_size": 20000,
        "max_writes": 128, "write_batch_rows": 16, "write_batch_kb": 40, "vehicle_class": "car",
        "profile_refresh_s": 60.0, "gap_wait_ms": 10000, "job_name": "fleetsense-telemetry-ingest",
    }  # fmt: skip
    path = tmp_path / "telemetry-ingest.json"
    path.write_text(json.dumps(old))
    settings = IngestJobSettings.from_file(path)
    assert settings.stream == StreamSettings(vehicle_class="car")
    new_defaults = {
        "max_waiting": 600, "idle_flush_ms": 15_000, "sink": "java", "write_attempts": 5,
        "cassandra_local_dc": "datacenter1", "amqp_heartbeat_s": 5, "events_exchange": "fleet.events",
        "thresholds": "", "results_keyspace": "", "writes": "all",
    }  # fmt: skip
    assert json.loads(settings.to_json()) == old | new_defaults


def test_an_out_of_range_setting_says_what_is_allowed_and_what_to_do() -> None:
    with pytest.raises(ConfigError) as info:
        _job(idle_flush_ms="10")
    assert info.value.message == "job setting idle_flush_ms=10 is below its least value, 1000"
    assert info.value.hint == "use at least 1000 ms, or leave it out for the default (15000)"
    with pytest.raises(ConfigError, match="unknown job setting 'amqp_password'") as info:
        _job(amqp_password="x")  # where the job connects, and with which secret, come from the stack
    assert "amqp_password" not in (info.value.hint or "") and "idle_flush_ms" in (info.value.hint or "")


def test_a_constructed_stream_setting_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="max_waiting=0 is below its least value, 1"):
        StreamSettings(max_waiting=0)


@dataclass(frozen=True, kw_only=True)
class _Example:
    rate_hz: int = setting(100, least=1, most=1000, unit="Hz", doc="samples per second")
    ratio: float = setting(0.5, least=0.0, most=1.0, doc="a fraction")
    on: bool = setting(False, doc="a switch")
    mode: str = setting("a", choices=("a", "b"), doc="a choice")


def test_a_setting_parses_its_type_and_checks_both_bounds() -> None:
    specs = {spec.name: spec for spec in settings_spec.describe(_Example)}
    assert specs["rate_hz"].type is int and specs["ratio"].type is float
    assert specs["rate_hz"].parse("250", what="x") == 250
    assert specs["ratio"].parse("1", what="x") == 1.0
    assert specs["on"].parse("True", what="x") is True
    with pytest.raises(ConfigError, match=re.escape("x rate_hz must be 1..1000 Hz, got 5000")):
        specs["rate_hz"].parse("5000", what="x")
    with pytest.raises(ConfigError, match="x on='yes' is not a bool"):
        specs["on"].parse("yes", what="x")
    with pytest.raises(ConfigError, match="x mode='c': a or b"):
        specs["mode"].parse("c", what="x")
    with pytest.raises(ConfigError, match="x rate_hz must be a int, got '100'"):
        settings_spec.check(_Example(rate_hz="100"), what="x")  # type: ignore[arg-type]
    settings_spec.check(_Example(ratio=1), what="x")  # an int is a float


def test_the_docs_table_lists_each_setting_with_its_default_and_allowed_values() -> None:
    table = settings_spec.markdown_table(settings_spec.describe(_Example))
    assert "| `rate_hz` | `100` | 1..1000 Hz | samples per second |" in table.splitlines()
    assert '| `mode` | `"a"` | a or b | a choice |' in table.splitlines()
    assert "| `on` | `false` | any bool | a switch |" in table.splitlines()


def test_the_device_configs_bounds_are_its_declared_settings() -> None:
    from fleetsense import device_config

    base = {
        "vehicle_id": "v",
        "broker": {"host": "h", "username": "v", "password": "p"},
        "storage": {"state_dir": "/s"},
    }
    with pytest.raises(ConfigError) as info:
        device_config.parse(base | {"outbox": {"commit_batches": 65}}, "edge.toml")
    assert info.value.message == "edge.toml: [outbox] commit_batches must be 1..64 batches, got 65"
    assert info.value.hint == "use 1..64 batches, or leave it out for the default (4)"
    spec = {s.name: s for s in settings_spec.describe(device_config.OutboxConfig)}["commit_batches"]
    assert (spec.default, spec.least, spec.most) == (device_config.OutboxConfig().commit_batches, 1, 64)
    assert device_config.parse(base, "edge.toml").outbox.commit_batches == 4
