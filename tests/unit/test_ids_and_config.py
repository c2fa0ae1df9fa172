"""Vehicle ids and the device configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetsense import device_config
from fleetsense.errors import ConfigError
from fleetsense.ids import telemetry_topic, validate_vehicle_id, vehicle_from_routing_key


@pytest.mark.parametrize("good", ["van-001", "V", "truck_7", "A" * 64])
def test_valid_ids(good: str) -> None:
    assert validate_vehicle_id(good) == good


@pytest.mark.parametrize("bad", ["", "a.b", "a/b", "+", "#", ".*", "van 1", "A" * 65, "vän", "a$"])
def test_ids_that_could_widen_a_topic_or_regex_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid vehicle id"):
        validate_vehicle_id(bad)


def test_topic_and_routing_key_agree() -> None:
    assert telemetry_topic("van-001") == "fleet/van-001/telemetry"
    assert vehicle_from_routing_key("fleet.van-001.telemetry") == "van-001"
    with pytest.raises(ValueError):
        vehicle_from_routing_key("fleet.van-001")


def sample_config(tmp_path: Path) -> device_config.EdgeConfig:
    return device_config.EdgeConfig(
        vehicle_id="van-001",
        broker=device_config.BrokerConfig(host="127.0.0.1", port=1883, username="van-001", password='p"w\\x'),
        sampling=device_config.SamplingConfig(imu_rate_hz=200, batch_window_s=0.5),
        storage=device_config.StorageConfig(state_dir=str(tmp_path / "state")),
        outbox=device_config.OutboxConfig(max_bytes=100_000),
        clock=device_config.ClockConfig(assume_synced=True),
    )


def test_render_then_load_is_the_identity(tmp_path: Path) -> None:
    config = sample_config(tmp_path)
    path = tmp_path / "van.toml"
    path.write_text(device_config.render(config))
    assert device_config.load(path) == config


def test_repr_never_shows_the_password(tmp_path: Path) -> None:
    assert 'p"w' not in repr(sample_config(tmp_path))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (
            "vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\n[storage]\nstate_dir='/s'\n",
            "needs a password or a client certificate",
        ),
        (
            "vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\nclient_cert_file='c'\nclient_key_file='k'\n"
            "[storage]\nstate_dir='/s'\n",
            "a client certificate needs tls = true",
        ),
        (
            "vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\ntls=true\nclient_cert_file='c'\n"
            "[storage]\nstate_dir='/s'\n",
            "client_cert_file and client_key_file go together",
        ),
        (
            "vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\npassword='p'\nmax_message_bytes=70000\n"
            "[storage]\nstate_dir='/s'\n",
            "max_message_bytes must be 1024..65536",
        ),
        ("vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\npassword='p'\n", "missing section \\[storage\\]"),
        (
            "vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\npassword='p'\nprot=1\n[storage]\nstate_dir='/s'\n",
            "unknown key\\(s\\) prot",
        ),
        (
            "vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\npassword='p'\nport='x'\n[storage]\nstate_dir='/s'\n",
            "'port' must be int",
        ),
        ("vehicle_id = 'a.b'\n", "invalid vehicle id"),
        ("vehicle_id = \n", "not valid TOML"),
        (
            "vehicle_id = 'v'\n[broker]\nhost='h'\nusername='v'\npassword='p'\n[sampling]\nimu_rate_hz=5000\n"
            "[storage]\nstate_dir='/s'\n",
            "imu_rate_hz must be 1..1000",
        ),
    ],
)
def test_bad_config_gets_a_clear_error(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=complaint):
        device_config.load(path)


def test_missing_config_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        device_config.load(tmp_path / "absent.toml")
    assert "fleetsense gateway provision" in (info.value.hint or "")
