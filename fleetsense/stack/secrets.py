"""Generated credentials of the local stack, kept in files readable only by their owner."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never let a password reach a log line
        return f"Credentials(username={self.username!r}, password='***')"


def new_password() -> str:
    # 32 url-safe bytes: ~190 bits, safe inside URLs, TOML and rabbitmq.conf without escaping.
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> None:
    """Write a file created with mode 0600 from the start (no window where others could read it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load_or_create(path: Path, username: str) -> Credentials:
    if path.exists():
        data = json.loads(path.read_text())
        return Credentials(username=data["username"], password=data["password"])
    creds = Credentials(username=username, password=new_password())
    write_private(path, json.dumps({"username": creds.username, "password": creds.password}))
    return creds
