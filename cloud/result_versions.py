"""Result versions (issue 19): each version of the analysis' results is a keyspace of the versioned tables, recorded
with its lineage and state in `result_versions` (cloud/tables.py RESULT_VERSIONS) in the main keyspace, whose static
column `active_version` names the version readers use. Pure rules first, then thin I/O (run by the CLI as the
operator); every write is a conditional update (LWT), so two CLIs racing never both win.

Version 1 is the main keyspace's own tables, as they were before versions existed: with no row at all it is the
active version, and it is never dropped.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud.tables import RESULT_VERSION_STATES, RESULT_VERSIONS
from fleetsense.cloud.write_target import check_keyspace_name

from fleetsense.errors import ConfigError, FleetsenseError

log = logging.getLogger(__name__)

FLEET = "default"  # one fleet per installation: the table's one partition
FIRST_VERSION = 1
REPLAYING, ACTIVE, RETIRED, DROPPED = RESULT_VERSION_STATES
# The states a version may be promoted from (flip_active) or dropped from (drop_version).
LIVE_STATES = (REPLAYING, RETIRED)
SERIAL = "LOCAL_SERIAL"  # the Paxos round of every conditional write: within the local datacenter, as its quorum
SCHEMA_TIMEOUT_S = 60.0  # a DROP KEYSPACE waits for every node to agree on the schema
ADD_ATTEMPTS = 20  # a version number claimed by another CLI in between is tried again with the next one
UNKNOWN_ATTEMPTS = 5  # a conditional write that timed out and, as read back, did not apply is sent again

_TABLE = RESULT_VERSIONS.name
_STATIC = tuple(c.name for c in RESULT_VERSIONS.columns if c.static)
_ROW_COLUMNS = tuple(name for name in RESULT_VERSIONS.written_columns if name not in _STATIC)
_READ = RESULT_VERSIONS.read(*_STATIC, *_ROW_COLUMNS, where=("fleet",))


# --- pure ------------------------------------------------------------------------------------------------------------


def keyspace_of(main_keyspace: str, version: int) -> str:
    """The keyspace holding a version's results: version 1 is the main keyspace itself, version N>1 `<main>_r<N>`."""
    if isinstance(version, bool) or not isinstance(version, int) or version < FIRST_VERSION:
        raise ConfigError(f"result version {version!r} is no version", hint="versions are whole numbers from 1")
    if version == FIRST_VERSION:
        return main_keyspace
    return check_keyspace_name(f"{main_keyspace}_r{version}", what=f"result version {version}'s keyspace")


def settings_json(settings: Mapping[str, Any]) -> str:
    """The result-affecting settings of a version as stored: JSON with sorted keys, so equal settings are equal text."""
    return json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))


def settings_of(text: str | None) -> dict[str, Any]:
    """The settings a version's `settings_json` holds ({} for none)."""
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a version's settings are a JSON object, not {type(value).__name__}")
    return value


@dataclass(frozen=True, kw_only=True)
class ResultVersion:
    version: int
    results_keyspace: str
    state: str
    parent: int | None = None
    from_time: datetime | None = None  # UTC; None: from the beginning (version 1)
    settings: dict[str, Any] = field(default_factory=dict)
    job_name: str = ""
    created_at: datetime | None = None
    promoted_at: datetime | None = None
    retire_after: datetime | None = None
    recorded: bool = True  # False: version 1 with no row yet (nothing was ever promoted over it)


def _utc(value: datetime | None) -> datetime | None:
    """A timestamp as the driver reads it (naive UTC) made aware."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def versions_of(rows: Iterable[Any], main_keyspace: str) -> tuple[int, list[ResultVersion]]:
    """The active version and every version, oldest first, from the table's rows (objects with its column names).
    Version 1 is always listed: with no row it is the main keyspace, active unless another version is."""
    active: int | None = None
    versions: dict[int, ResultVersion] = {}
    for row in rows:
        if row.active_version is not None:
            active = row.active_version
        if row.version is None:  # a partition holding only its static column
            continue
        versions[row.version] = ResultVersion(
            version=row.version,
            results_keyspace=row.results_keyspace or keyspace_of(main_keyspace, row.version),
            state=row.state or "",
            parent=row.parent,
            from_time=_utc(row.from_time),
            settings=settings_of(row.settings_json),
            job_name=row.job_name or "",
            created_at=_utc(row.created_at),
            promoted_at=_utc(row.promoted_at),
            retire_after=_utc(row.retire_after),
        )
    active = FIRST_VERSION if active is None else active
    if FIRST_VERSION not in versions:
        versions[FIRST_VERSION] = ResultVersion(
            version=FIRST_VERSION,
            results_keyspace=main_keyspace,
            state=ACTIVE if active == FIRST_VERSION else RETIRED,
            recorded=False,
        )
    return active, [versions[n] for n in sorted(versions)]


def next_version(versions: Sequence[ResultVersion]) -> int:
    """The number a new version gets: one more than any ever recorded (a dropped one's number is never reused, so
    neither is its keyspace's name)."""
    return max((v.version for v in versions), default=FIRST_VERSION) + 1


def droppable(active: int, versions: Sequence[ResultVersion], version: int) -> str | None:
    """Why `version` may not be dropped, or None when it may."""
    if version == FIRST_VERSION:
        return "version 1 is the main keyspace's own tables: it is never dropped"
    if version == active:
        return f"version {version} is the active one: promote another first"
    known = {v.version: v for v in versions}
    if version not in known:
        return f"there is no result version {version} (versions: {', '.join(str(n) for n in sorted(known))})"
    if known[version].state not in (*LIVE_STATES, DROPPED):
        return f"version {version} is {known[version].state}"
    return None


# --- I/O ---------------------------------------------------------------------------------------------------------


def read_versions(session: Any, keyspace: str) -> tuple[int, list[ResultVersion]]:
    """The active version and every version (cloud's `versions_of`), read from the main keyspace."""
    from fleetsense.cloud.cassandra_session import statement

    rows = session.execute(statement(_READ.cql.format(ks=keyspace), consistency=_READ.consistency), (FLEET,))
    return versions_of(rows, keyspace)


def add_version(
    session: Any,
    keyspace: str,
    *,
    from_time: datetime,
    settings: Mapping[str, Any],
    job_name: str,
    parent: int | None = None,
    now: datetime | None = None,
) -> int:
    """Record a new version (state replaying) and return its number: one more than any recorded, claimed with
    INSERT ... IF NOT EXISTS and tried again with the next number when another CLI claimed it first. `parent`
    (default: the active version) is where days before `from_time` are read from."""
    text = settings_json(settings)
    claim = uuid.uuid4().hex  # an insert whose outcome was lost (timed out) is recognised by it
    columns = ", ".join(_ROW_COLUMNS)
    markers = ", ".join(["%s"] * len(_ROW_COLUMNS))
    cql = f"INSERT INTO {keyspace}.{_TABLE} ({columns}) VALUES ({markers}) IF NOT EXISTS"
    for _ in range(ADD_ATTEMPTS):
        active, versions = read_versions(session, keyspace)
        parent_version = active if parent is None else parent
        if parent_version not in {v.version for v in versions if v.state != DROPPED}:
            raise ConfigError(
                f"result version {parent_version} cannot be a parent: it does not exist or was dropped",
                hint="name a version `fleetsense job status` lists",
            )
        version = next_version(versions)
        values = {
            "fleet": FLEET,
            "version": version,
            "results_keyspace": keyspace_of(keyspace, version),
            "parent": parent_version,
            "from_time": from_time,
            "settings_json": text,
            "job_name": job_name,
            "state": REPLAYING,
            "created_at": now or datetime.now(UTC),
            "claim": claim,
            "promoted_at": None,
            "retire_after": None,
        }
        applied = _conditional(session, cql, tuple(values[name] for name in _ROW_COLUMNS))
        if applied is None:  # timed out: the row is ours if it holds what this insert wrote
            row = _version(session, keyspace, version)
            applied = row is not None and row.claim == claim
        if applied:
            return version
    raise FleetsenseError(
        f"could not claim a result version number in {ADD_ATTEMPTS} attempts: other writers claimed each first",
        hint="run it again once the other `job reprocess` commands are done",
    )


def set_state(
    session: Any,
    keyspace: str,
    version: int,
    state: str,
    *,
    expected: str,
    retire_after: datetime | None = None,
) -> bool:
    """Move a version from state `expected` to `state`, both replaying or retired, setting `retire_after`; False
    when its state was not `expected` (or it has no row). Only flip_active moves a version into or out of active
    (the pointer and the states change in one step), and only drop_version drops one."""
    if state not in LIVE_STATES or expected not in LIVE_STATES:
        raise ValueError(
            f"set_state moves a version between {' and '.join(LIVE_STATES)}, not from {expected!r} to {state!r}"
        )
    claim = uuid.uuid4().hex
    cql = (
        f"UPDATE {keyspace}.{_TABLE} SET state = %s, retire_after = %s, claim = %s "
        "WHERE fleet = %s AND version = %s IF state = %s"
    )
    for _ in range(UNKNOWN_ATTEMPTS):
        applied = _conditional(session, cql, (state, retire_after, claim, FLEET, version, expected))
        if applied is not None:
            return applied
        row = _version(session, keyspace, version)  # timed out: ours if the row carries our claim
        if row is None or row.claim == claim or row.state != expected:
            return row is not None and row.claim == claim
    return False


def flip_active(
    session: Any,
    keyspace: str,
    expected: int,
    new: int,
    *,
    retire_after: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Make `new` the active version if `expected` still is, in one Paxos round (a conditional batch on the one
    partition): the pointer moves, `new` becomes active (promoted now) and `expected` retired (kept until
    `retire_after`; None: until someone sets it). False, changing nothing, when the active version is no longer
    `expected` or `new` is not replaying or retired."""
    if new == expected:
        raise ValueError(f"version {new} is already the one expected to be active")
    keyspace_of(keyspace, new)  # a version number, or ConfigError
    promotion = _Promotion(retire_after=retire_after, promoted_at=now or datetime.now(UTC), claim=uuid.uuid4().hex)
    for _ in range(UNKNOWN_ATTEMPTS):
        if expected != FIRST_VERSION:
            applied = _flip(session, keyspace, expected, new, expected, promotion)
        else:
            # Until the first flip the pointer is null, which means version 1; after a flip back it holds 1.
            applied = _flip(session, keyspace, expected, new, None, promotion)
            if applied is False and _pointer(session, keyspace) == FIRST_VERSION:
                applied = _flip(session, keyspace, expected, new, FIRST_VERSION, promotion)
        if applied is not None:
            return applied
        # Timed out: it applied if `new`'s row carries this promotion's claim; else it may be tried again.
        row = _version(session, keyspace, new)
        if row is not None and row.claim == promotion.claim:
            return True
    return False


@dataclass(frozen=True)
class _Promotion:
    retire_after: datetime | None
    promoted_at: datetime
    claim: str


def _flip(
    session: Any,
    keyspace: str,
    expected: int,
    new: int,
    pointer: int | None,
    promotion: _Promotion,
) -> bool | None:
    """The conditional batch of flip_active, applied only if the pointer holds `pointer` (None: null); None when
    its outcome is unknown (timed out)."""
    from cassandra.query import BatchStatement, SimpleStatement

    table = f"{keyspace}.{_TABLE}"
    live = ", ".join(f"'{state}'" for state in LIVE_STATES)
    batch = BatchStatement(
        consistency_level=_level(RESULT_VERSIONS.write_consistency), serial_consistency_level=_level(SERIAL)
    )
    batch.add(
        SimpleStatement(
            f"UPDATE {table} SET active_version = %s, state = %s, promoted_at = %s, results_keyspace = %s, claim = %s "
            f"WHERE fleet = %s AND version = %s IF state IN ({live})"
        ),
        (new, ACTIVE, promotion.promoted_at, keyspace_of(keyspace, new), promotion.claim, FLEET, new),
    )
    # The old version's row is written too (version 1 may have none yet), so the chain records it retired.
    condition = "IF active_version = null" if pointer is None else "IF active_version = %s"
    batch.add(
        SimpleStatement(
            f"UPDATE {table} SET state = %s, retire_after = %s, results_keyspace = %s "
            f"WHERE fleet = %s AND version = %s {condition}"
        ),
        (RETIRED, promotion.retire_after, keyspace_of(keyspace, expected), FLEET, expected)
        + (() if pointer is None else (pointer,)),
    )
    return _applied(session, batch, ())


def drop_version(session: Any, main_keyspace: str, version: int) -> None:
    """Drop a version's keyspace (never version 1's, never the active one's) and record it dropped: first the
    state (a conditional update, so a concurrent promote of it wins or loses whole), then DROP KEYSPACE, so a drop
    cut off halfway is finished by running it again."""
    from fleetsense.cloud.cassandra_session import statement

    active, versions = read_versions(session, main_keyspace)
    refusal = droppable(active, versions, version)
    if refusal is not None:
        raise ConfigError(f"result version {version} cannot be dropped: {refusal}")
    state = next(v.state for v in versions if v.version == version)
    if state != DROPPED:
        live = ", ".join(f"'{s}'" for s in LIVE_STATES)
        cql = f"UPDATE {main_keyspace}.{_TABLE} SET state = %s WHERE fleet = %s AND version = %s IF state IN ({live})"
        applied: bool | None = None
        for _ in range(UNKNOWN_ATTEMPTS):
            applied = _conditional(session, cql, (DROPPED, FLEET, version))
            if applied is not None:
                break
            row = _version(session, main_keyspace, version)  # timed out: read what it left
            if row is None or row.state not in LIVE_STATES:
                applied = row is not None and row.state == DROPPED
                break
        if not applied:
            raise ConfigError(
                f"result version {version} cannot be dropped: it changed meanwhile (promoted?)",
                hint="see `fleetsense job status` and try again",
            )
    drop = statement(
        f"DROP KEYSPACE IF EXISTS {keyspace_of(main_keyspace, version)}", consistency=RESULT_VERSIONS.write_consistency
    )
    session.execute(drop, timeout=SCHEMA_TIMEOUT_S)


def _version(session: Any, keyspace: str, version: int) -> Any:
    """One version's row as stored (timestamps naive UTC, as the driver reads them), None when it has none."""
    from fleetsense.cloud.cassandra_session import statement

    rows = session.execute(statement(_READ.cql.format(ks=keyspace), consistency=_READ.consistency), (FLEET,))
    return next((row for row in rows if row.version == version), None)


def _pointer(session: Any, keyspace: str) -> int | None:
    """The static column as stored (None: never set), not as read_versions interprets it."""
    from fleetsense.cloud.cassandra_session import statement

    rows = session.execute(statement(_READ.cql.format(ks=keyspace), consistency=_READ.consistency), (FLEET,))
    return next((row.active_version for row in rows if row.active_version is not None), None)


def _level(name: str) -> int:
    from cassandra import ConsistencyLevel

    return int(ConsistencyLevel.name_to_value[name])


def _conditional(session: Any, cql: str, values: tuple[Any, ...]) -> bool | None:
    """Run one conditional write (LWT): whether it applied, None when that is unknown (it timed out)."""
    from fleetsense.cloud.cassandra_session import statement

    conditional = statement(cql, consistency=RESULT_VERSIONS.write_consistency)
    conditional.serial_consistency_level = _level(SERIAL)
    return _applied(session, conditional, values)


def _applied(session: Any, conditional: Any, values: tuple[Any, ...]) -> bool | None:
    """A Paxos round that times out (contention, a slow replica) may still have been applied: the caller reads
    the row to tell."""
    from cassandra import OperationTimedOut, WriteTimeout

    try:
        return bool(session.execute(conditional, values or None).was_applied)
    except (WriteTimeout, OperationTimedOut) as exc:
        log.warning("a conditional write to %s timed out (%s): reading what it left", _TABLE, exc)
        return None
