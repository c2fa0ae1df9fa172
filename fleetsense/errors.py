"""The one exception root of fleetsense: every error a user can meet says what went wrong and what to do."""

from __future__ import annotations


class FleetsenseError(Exception):
    """An error with a human explanation and, where we know one, the next step to take.

    `hint` tells the user what to do; `log_path` points at the log that holds the details.
    """

    def __init__(self, message: str, *, hint: str | None = None, log_path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_path = log_path

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        if self.hint:
            lines.append(f"  what to do: {self.hint}")
        if self.log_path:
            lines.append(f"  log: {self.log_path}")
        return "\n".join(lines)


class ConfigError(FleetsenseError):
    """A configuration file or flag is missing, malformed or out of range."""


class StackError(FleetsenseError):
    """A component of the local stack failed to start, stop or answer."""


class WireFormatError(FleetsenseError):
    """Bytes that do not decode as a fleetsense wire message."""
