"""The secure profile's data and secret directories: mode 0700, so no other local user reads state, logs or keys."""

from __future__ import annotations

from pathlib import Path

from fleetsense.stack.layout import StackConfig
from fleetsense.stack.manager import restrict_data_dirs


def test_the_data_dir_its_children_and_the_secret_dirs_become_0700(tmp_path: Path) -> None:
    config = StackConfig(data_dir=tmp_path / "data", profile="secure")
    for sub in ("cassandra", "flink", "logs", "vehicles", "secrets/tls"):
        (config.data_dir / sub).mkdir(parents=True, mode=0o755)
        (config.data_dir / sub).chmod(0o755)
    config.data_dir.chmod(0o755)
    changed = restrict_data_dirs(config)
    for directory in (config.data_dir, config.secrets_dir, config.tls_dir, *config.data_dir.iterdir()):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert config.tls_dir in changed
    assert restrict_data_dirs(config) == []  # a second run changes nothing
