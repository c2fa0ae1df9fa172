"""The [broker] endpoints of the device config (fleetsense/endpoints.py, fleetsense/device_config.py): the forms
that load, the mistakes that get a clear error, and a seeded fuzz of the boundary: random TOML values load (and
then round-trip through render) or raise ConfigError naming the [broker] section, nothing else."""

from __future__ import annotations

import random
import string
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fleetsense.gateway import provision
from fleetsense.gateway.management import ManagementError

from fleetsense import device_config
from fleetsense.endpoints import Endpoint, parse_endpoint_text
from fleetsense.errors import ConfigError

VID = "van-001"


def config_text(broker_lines: str) -> str:
    return (
        f'vehicle_id = "{VID}"\n[broker]\n{broker_lines}\nusername = "{VID}"\npassword = "pw"\n'
        '[storage]\nstate_dir = "/var/lib/fleetsense"\n'
    )


def load_text(tmp_path: Path, broker_lines: str) -> device_config.EdgeConfig:
    path = tmp_path / "edge.toml"
    path.write_text(config_text(broker_lines))
    return device_config.load(path)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ('host = "10.77.0.11"', [Endpoint("10.77.0.11", 1883)]),  # the single-broker form still loads
        ('host = "rmq1"\nport = 8883', [Endpoint("rmq1", 8883)]),
        (
            'endpoints = ["10.77.0.11:1883", "10.77.0.12:1883", "10.77.0.13:1883"]',
            [Endpoint(f"10.77.0.{i}", 1883) for i in (11, 12, 13)],
        ),
        ('endpoints = ["rmq1", "rmq2:1884"]\nport = 8883', [Endpoint("rmq1", 8883), Endpoint("rmq2", 1884)]),
        (
            'endpoints = [{host = "rmq1", port = 1883}, {host = "[fd00::12]"}, "[fd00::13]:1885"]',
            [Endpoint("rmq1", 1883), Endpoint("fd00::12", 1883), Endpoint("fd00::13", 1885)],
        ),
    ],
)
def test_the_forms_that_load(tmp_path: Path, lines: str, expected: list[Endpoint]) -> None:
    config = load_text(tmp_path, lines)
    assert list(config.broker.connect_to) == expected
    assert device_config.parse(tomllib.loads(device_config.render(config)), "again") == config


@pytest.mark.parametrize(
    ("lines", "complaint"),
    [
        ("endpoints = []", "endpoints is empty"),
        ('endpoints = ["rmq1:0"]', "port must be a whole number 1..65535, got 0"),
        ('endpoints = ["rmq1:65536"]', "port must be a whole number 1..65535, got 65536"),
        ('endpoints = ["rmq1:mqtt"]', "port must be a whole number 1..65535, got 'mqtt'"),
        ('endpoints = [{host = "rmq1", port = true}]', "port must be a whole number"),
        ('endpoints = ["rmq1:1883", "RMQ1:1883"]', "lists RMQ1:1883 twice (entries 1 and 2)"),
        ('endpoints = ["rmq1", "rmq1:1883"]', "lists rmq1:1883 twice"),
        ('endpoints = "rmq1:1883"', "endpoints must be a list"),
        ('endpoints = ["mqtt://rmq1:1883"]', "no scheme"),
        ('endpoints = ["fd00::1:1883"]', "IPv6 address is written in brackets"),
        ('endpoints = ["[fd00::1"]', "[address]:port"),
        ('endpoints = ["rmq 1:1883"]', "is not a host name or an IP address"),
        ('endpoints = [""]', "is not a host name"),
        ("endpoints = [1883]", "neither a string nor a table"),
        ("endpoints = [{port = 1883}]", "missing key 'host'"),
        ('endpoints = [{host = "rmq1", tls = true}]', "unknown key(s) tls"),
        ('host = "rmq1"\nendpoints = ["rmq2:1883"]', "both 'host' and 'endpoints'"),
        ("port = 1883", "missing key 'host' (one broker) or 'endpoints' (several)"),
    ],
)
def test_a_bad_endpoints_list_gets_a_clear_error(tmp_path: Path, lines: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, lines)
    assert complaint in str(caught.value) and "[broker]" in str(caught.value)


def test_a_command_line_list_parses_the_same_way() -> None:
    assert parse_endpoint_text("rmq1:1883, rmq2", default_port=1884, where="--endpoints") == (
        Endpoint("rmq1", 1883),
        Endpoint("rmq2", 1884),
    )
    with pytest.raises(ConfigError, match="--endpoints endpoints entry 2"):
        parse_endpoint_text("rmq1,,rmq3", default_port=1883, where="--endpoints")


def test_a_config_built_in_code_with_both_forms_is_refused() -> None:
    broker = device_config.BrokerConfig(host="rmq1", endpoints=(Endpoint("rmq2", 1883),), username=VID, password="p")
    config = device_config.EdgeConfig(
        vehicle_id=VID, broker=broker, storage=device_config.StorageConfig(state_dir="/tmp")
    )
    with pytest.raises(ConfigError, match=r"either host .* or endpoints"):
        device_config.check_ranges(config, "code")


class NoAdmin:
    """Provisioning's broker calls, accepted and forgotten: these tests look at the config file only."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_provisioning_writes_every_endpoint_of_a_cluster_into_the_device_config(tmp_path: Path) -> None:
    nodes = [provision.BrokerEndpoint(host=f"10.77.0.{i}", mqtt_port=1883) for i in (11, 12, 13)]
    path = tmp_path / "van.toml"
    made = provision.provision(NoAdmin(), VID, endpoints=nodes, config_path=path, state_dir=tmp_path, password="p")  # type: ignore[arg-type]
    assert 'endpoints = ["10.77.0.11:1883", "10.77.0.12:1883", "10.77.0.13:1883"]' in path.read_text()
    assert device_config.load(path) == made
    # One broker is still written as host and port.
    provision.provision(NoAdmin(), VID, endpoints=nodes[:1], config_path=path, state_dir=tmp_path, password="p")  # type: ignore[arg-type]
    assert 'host = "10.77.0.11"' in path.read_text() and "endpoints" not in path.read_text()


@pytest.mark.parametrize(
    ("endpoints", "complaint"),
    [
        ([], "no broker endpoint"),
        (
            [
                provision.BrokerEndpoint(host="rmq1", mqtt_port=8883, tls=True, ca_file="/ca.pem"),
                provision.BrokerEndpoint(host="rmq2", mqtt_port=1883),
            ],
            "differ in TLS or CA",
        ),
        ([provision.BrokerEndpoint(host="rmq1", mqtt_port=1883)] * 2, "listed twice"),
    ],
)
def test_provisioning_refuses_endpoints_one_config_cannot_hold(
    tmp_path: Path, endpoints: list[provision.BrokerEndpoint], complaint: str
) -> None:
    with pytest.raises(ManagementError, match=complaint):
        provision.provision(
            NoAdmin(), VID, endpoints=endpoints, config_path=tmp_path / "v.toml", state_dir=tmp_path, password="p"
        )  # type: ignore[arg-type]
    assert not (tmp_path / "v.toml").exists()


# -- fuzz ------------------------------------------------------------------------------------------------

ALPHABET = string.ascii_letters + string.digits + ".-:[]/ _@é\t\x00"


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:  # near the valid forms, where the parser's branches are
        host = rng.choice(["rmq1", "10.77.0.11", "[fd00::11]", "fd00::11", "a" * rng.choice([1, 253, 254]), ""])
        port = rng.choice(["", ":", ":1883", ":0", ":65535", ":65536", ":-1", ":1e3", ":٣", ":" + "9" * 50, ":18 83"])
        return host + port
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 20)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if kind < 0.55:
        return random_text(rng)
    if kind < 0.75 and depth < 2:
        table: dict[str, Any] = {}
        for key in rng.sample(["host", "port", "tls", "Host"], rng.randint(0, 3)):
            table[key] = random_text(rng) if key != "port" else random_scalar(rng)
        return table
    if kind < 0.85 and depth < 2:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return random_scalar(rng)


def random_scalar(rng: random.Random) -> Any:
    return rng.choice([0, 1, 1883, 65535, 65536, -5, 2**70, True, 1.5, float("nan"), "1883", None])


def valid_entry(rng: random.Random) -> Any:
    host = rng.choice([f"rmq{rng.randint(1, 9)}", f"10.77.0.{rng.randint(1, 254)}", f"[fd00::{rng.randint(1, 99)}]"])
    port = rng.choice([None, 1, 1883, 8883, 65535])
    if rng.random() < 0.3:
        return {"host": host} if port is None else {"host": host, "port": port}
    return host if port is None else f"{host}:{port}"


def fuzz_broker(rng: random.Random) -> dict[str, Any]:
    table: dict[str, Any] = {"username": VID, "password": "pw"}
    if rng.random() < 0.3:
        table["endpoints"] = [valid_entry(rng) for _ in range(rng.randint(1, 4))]
    elif rng.random() < 0.9:
        table["endpoints"] = (
            [random_value(rng) for _ in range(rng.randint(0, 5))] if rng.random() < 0.9 else (random_value(rng))
        )
    if rng.random() < 0.15:
        table["host"] = random_text(rng)
    if rng.random() < 0.3:
        table["port"] = random_scalar(rng)
    return {k: v for k, v in table.items() if v is not None}


def test_fuzzed_endpoints_load_or_get_a_config_error_nothing_else() -> None:
    rng = random.Random(16)
    loaded = refused = 0
    for case in range(6000):
        broker = fuzz_broker(rng)
        data = {"vehicle_id": VID, "broker": broker, "storage": {"state_dir": "/tmp/x"}}
        try:
            config = device_config.parse(data, "fuzz")
        except ConfigError as exc:
            refused += 1
            message = str(exc)
            assert message.startswith("fuzz [broker]") or message.startswith("fuzz: [broker]"), (case, message)
            assert "Traceback" not in message and len(message) < 600, (case, message)
            continue
        loaded += 1
        endpoints = config.broker.connect_to
        assert endpoints and all(1 <= e.port <= 65535 and e.host for e in endpoints), (case, broker)
        assert len({e.key for e in endpoints}) == len(endpoints), (case, broker)
        assert device_config.parse(tomllib.loads(device_config.render(config)), "again") == config, (case, broker)
    assert loaded > 1000 and refused > 3000, (loaded, refused)
