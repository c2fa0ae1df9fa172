"""Who may do what: operator roles, declared once. Each route names the least role it needs with
`Depends(require(Role.X))` (service/auth.py); docs/service.md's table of routes and roles is generated from those.

admin: users, drivers, vehicles, webhooks and everything a manager may; manager: drivers, assignments and reviews;
viewer: read. A role allows what every role below it allows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    VIEWER = 1
    MANAGER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        from fleetsense.errors import ConfigError

        try:
            return cls[text.upper()]
        except KeyError:
            raise ConfigError(f"{text!r} is no role", hint=f"choose one of {', '.join(r.label for r in cls)}") from None


@dataclass(frozen=True)
class Principal:
    """Who made a request: an operator's username and role, and how they proved it (a token or a session)."""

    username: str
    role: Role
    via: str  # "token" or "session"

    def may(self, needed: Role) -> bool:
        return self.role >= needed
