"""The analytics package's one error: input the analyzer cannot use, with what to do about it."""

from __future__ import annotations

from fleetsense.errors import FleetsenseError


class AnalysisInputError(FleetsenseError):
    """A batch whose arrays do not fit together (shapes, lengths, time order); the message names the array."""
