"""The driver badge in the vehicle's RFID reader, as the reader's daemon leaves it in a file (`[driver] badge_file`):
read for each status message, so a badge put in or taken out shows in the next one (docs/edge-agent.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from fleetsense.status import clean_badge

log = logging.getLogger(__name__)

MOST_BYTES = 256  # a badge is at most 64 characters; a file larger than this holds no badge


def read_badge(badge_file: str) -> str | None:
    """The badge the file holds, or None: no file configured, the file absent (no badge in the reader) or
    unreadable, or text that is no badge (logged: the status goes without one rather than being refused)."""
    if not badge_file:
        return None
    try:
        with Path(badge_file).open("rb") as f:
            raw = f.read(MOST_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the badge file %s: %s", badge_file, exc)
        return None
    text = raw.decode("ascii", errors="replace") if len(raw) <= MOST_BYTES else ""
    badge = clean_badge(text)
    if badge is None and text.strip():
        log.warning("the badge file %s holds no badge (%d bytes): sending none", badge_file, len(raw))
    return badge
