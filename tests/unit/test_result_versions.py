"""Result versions (cloud/result_versions.py): the pure rules (a version's keyspace, its settings as stored, the
chain read from rows), and the conditional writes against an in-memory table that applies CQL's lightweight
transactions as Cassandra does, driven by seeded random sequences of commands with other writers racing in between.
The same behaviour against a real Cassandra: tests/integration/test_result_keyspace.py."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from cassandra import WriteTimeout
from cassandra.encoder import Encoder
from cassandra.policies import WriteType
from cassandra.query import BatchStatement, bind_params
from fleetsense.cloud import result_versions as rv
from fleetsense.cloud.tables import RESULT_VERSIONS, TIMESTAMP

from fleetsense.errors import ConfigError

MAIN = "fleetsense"
T0 = datetime(2026, 11, 7, tzinfo=UTC)


# --- pure ------------------------------------------------------------------------------------------------------------


def test_version_1_is_the_main_keyspace_and_every_other_has_its_own() -> None:
    assert rv.keyspace_of(MAIN, 1) == MAIN
    assert rv.keyspace_of(MAIN, 2) == "fleetsense_r2"
    assert rv.keyspace_of("ks", 1234) == "ks_r1234"


@pytest.mark.parametrize("version", [0, -1, True, 2.0, "2"])
def test_a_version_that_is_no_whole_number_from_1_has_no_keyspace(version: Any) -> None:
    with pytest.raises(ConfigError, match="is no version"):
        rv.keyspace_of(MAIN, version)


def test_a_keyspace_name_too_long_for_cassandra_is_refused() -> None:
    with pytest.raises(ConfigError, match="is no keyspace name"):
        rv.keyspace_of("k" * 45, 100)


def test_settings_round_trip_through_their_stored_json_and_equal_settings_are_equal_text() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        settings = {
            "".join(rng.choice("abc_.") for _ in range(rng.randint(1, 8))): rng.choice(
                [rng.random(), rng.randint(-9, 9), "van.harsh_brake_g=0.30", None, True, 'it\'s "quoted"']
            )
            for _ in range(rng.randint(0, 6))
        }
        text = rv.settings_json(settings)
        assert rv.settings_of(text) == settings
        shuffled = dict(sorted(settings.items(), key=lambda _: rng.random()))
        assert rv.settings_json(shuffled) == text
    assert rv.settings_of(None) == rv.settings_of("") == {}
    with pytest.raises(ValueError, match="JSON object"):
        rv.settings_of("[1]")


def _row(**values: Any) -> SimpleNamespace:
    columns = {c.name: None for c in RESULT_VERSIONS.columns}
    return SimpleNamespace(**(columns | values))


def test_no_row_at_all_means_version_1_is_active_in_the_main_keyspace() -> None:
    active, versions = rv.versions_of([], MAIN)
    assert active == 1
    assert versions == [rv.ResultVersion(version=1, results_keyspace=MAIN, state="active", recorded=False)]
    assert rv.next_version(versions) == 2


def test_the_chain_is_read_with_its_pointer_its_settings_and_aware_times() -> None:
    rows = [
        _row(fleet="default", version=2, active_version=None, results_keyspace="fleetsense_r2", parent=1,
             from_time=datetime(2026, 11, 7), settings_json='{"thresholds":"van.harsh_brake_g=0.30"}',
             job_name="fleetsense-reprocess-r2", state="replaying", created_at=datetime(2026, 12, 7, 10)),
    ]  # fmt: skip
    active, versions = rv.versions_of(rows, MAIN)
    assert active == 1 and [v.version for v in versions] == [1, 2]
    v2 = versions[1]
    assert v2.from_time == T0 and v2.settings == {"thresholds": "van.harsh_brake_g=0.30"} and v2.parent == 1
    assert v2.created_at is not None and v2.created_at.tzinfo is UTC
    # Promoted: the static column names it, and version 1's row says retired.
    rows = [_row(version=1, active_version=2, state="retired"), _row(version=2, active_version=2, state="active")]
    active, versions = rv.versions_of(rows, MAIN)
    assert active == 2 and [(v.version, v.state, v.recorded) for v in versions] == [
        (1, "retired", True),
        (2, "active", True),
    ]
    # A partition holding only its pointer (no version rows) still names the active version.
    assert rv.versions_of([_row(active_version=1)], MAIN)[0] == 1


def test_a_dropped_versions_number_is_never_given_again() -> None:
    rows = [_row(version=2, state="dropped"), _row(version=3, state="retired")]
    assert rv.next_version(rv.versions_of(rows, MAIN)[1]) == 4


def test_what_may_not_be_dropped_says_why() -> None:
    active, versions = rv.versions_of([_row(version=2, state="replaying"), _row(version=3, state="active")], MAIN)
    assert active == 1  # rows without a pointer: version 3's state is a stale word, the pointer is the truth
    assert rv.droppable(1, versions, 1) == "version 1 is the main keyspace's own tables: it is never dropped"
    assert rv.droppable(2, versions, 2) == "version 2 is the active one: promote another first"
    assert rv.droppable(1, versions, 9) == "there is no result version 9 (versions: 1, 2, 3)"
    assert rv.droppable(1, versions, 2) is None
    assert rv.droppable(1, versions, 3) == "version 3 is active"


# --- conditional writes, against an in-memory table ------------------------------------------------------------------

_LITERAL = re.compile(r"'(?:[^']|'')*'|-?\d+|NULL|null")
_TIMESTAMPS = {c.name for c in RESULT_VERSIONS.columns if c.cql_type == TIMESTAMP}


def _value(literal: str) -> Any:
    if literal.lower() == "null":
        return None
    if literal.startswith("'"):
        return literal[1:-1].replace("''", "'")
    return int(literal)


def _values(text: str) -> list[Any]:
    return [_value(m) for m in _LITERAL.findall(text)]


class VersionsTable:
    """The result_versions table of one keyspace as Cassandra applies the module's statements: conditional writes
    (IF NOT EXISTS, IF <column> = / IN, a static condition on a partition with no row yet) applied only when every
    condition of the statement, or of the batch, holds. `race` runs before a conditional write, to play another
    writer committing between a command's read and its write; `timeout` says whether a conditional write times out
    ("before": not applied, "after": applied, None: it answers), as a Paxos round under contention can."""

    def __init__(self, race: Callable[[], None] | None = None) -> None:
        self.timeout: Callable[[], str | None] | None = None
        self.timeouts = 0
        self.active: int | None = None
        self.rows: dict[int, dict[str, Any]] = {}
        self.dropped_keyspaces: list[str] = []
        self.race = race
        self.racing = False
        self.races = 0
        self.given: list[int] = []  # every number add_version returned, the racing writers' too

    def execute(self, statement: Any, values: Any = None, timeout: float | None = None) -> Any:
        if isinstance(statement, BatchStatement):
            self._race()
            parts = [cql for _, cql, _ in statement._statements_and_parameters]
            lost = self._lost()
            checks = all(self._holds(cql) for cql in parts)
            if checks:
                for cql in parts:
                    self._update(cql)
            return self._answer(checks, lost)
        cql = getattr(statement, "query_string", statement)
        if values:
            cql = bind_params(cql, values, Encoder())
        if cql.startswith("SELECT"):
            return self._select()
        if cql.startswith("DROP KEYSPACE IF EXISTS "):
            self.dropped_keyspaces.append(cql.rsplit(" ", 1)[1])
            return []
        self._race()
        lost = self._lost()
        if cql.startswith("INSERT"):
            match = re.fullmatch(r"INSERT INTO \w+\.result_versions \(([^)]*)\) VALUES \((.*)\) IF NOT EXISTS", cql)
            assert match, cql
            row = dict(zip(match.group(1).split(", "), _values(match.group(2)), strict=True))
            if row["version"] in self.rows:
                return self._answer(False, lost)
            self.rows[row["version"]] = row
            return self._answer(True, lost)
        applied = self._holds(cql)
        if applied:
            self._update(cql)
        return self._answer(applied, lost)

    def _lost(self) -> str | None:
        """Whether this conditional write times out, and if so, whether it applies first (after) or not (before)."""
        lost = self.timeout() if self.timeout is not None and not self.racing else None
        self.timeouts += lost is not None
        if lost == "before":
            raise WriteTimeout("CAS operation timed out", write_type=WriteType.CAS)
        return lost

    def _answer(self, applied: bool, lost: str | None) -> Any:
        if lost == "after":
            raise WriteTimeout("CAS operation timed out", write_type=WriteType.CAS)
        return SimpleNamespace(was_applied=applied)

    def _race(self) -> None:
        if self.race is not None and not self.racing:
            self.racing = True
            try:
                before = (self.active, repr(self.rows))
                self.race()
                self.races += (self.active, repr(self.rows)) != before
            finally:
                self.racing = False

    def _parse(self, cql: str) -> tuple[dict[str, Any], int, str]:
        match = re.fullmatch(
            r"UPDATE \w+\.result_versions SET (.*) WHERE fleet = '(\w+)' AND version = (\d+) IF (.*)", cql
        )
        assert match, cql
        assignments = dict(
            (name, _value(literal)) for name, literal in re.findall(rf"(\w+) = ({_LITERAL.pattern})", match.group(1))
        )
        assert match.group(2) == rv.FLEET
        return assignments, int(match.group(3)), match.group(4)

    def _holds(self, cql: str) -> bool:
        _, version, conditions = self._parse(cql)
        row = self.rows.get(version, {})
        for condition in conditions.split(" AND "):
            name, operator, operand = re.fullmatch(r"(\w+) (=|IN) (.*)", condition).groups()  # type: ignore[union-attr]
            current = self.active if name == "active_version" else row.get(name)
            allowed = _values(operand)
            if (current not in allowed) if operator == "IN" else (current != allowed[0]):
                return False
        return True

    def _update(self, cql: str) -> None:
        assignments, version, _ = self._parse(cql)
        if "active_version" in assignments:
            self.active = assignments.pop("active_version")
        self.rows.setdefault(version, {"fleet": rv.FLEET, "version": version}).update(assignments)

    def _select(self) -> list[SimpleNamespace]:
        def column(row: dict[str, Any], name: str) -> Any:
            value = row.get(name)
            return (
                datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None)
                if name in _TIMESTAMPS and value is not None
                else value
            )

        names = [c.name for c in RESULT_VERSIONS.columns if not c.static]
        rows = [
            SimpleNamespace(active_version=self.active, **{n: column(r, n) for n in names})
            for _, r in sorted(self.rows.items())
        ]
        if not rows and self.active is not None:
            rows = [SimpleNamespace(active_version=self.active, **dict.fromkeys(names))]
        return rows


def _add(table: VersionsTable, **fields: Any) -> int:
    values = {"from_time": T0, "settings": {"thresholds": "van.harsh_brake_g=0.30"}, "job_name": "replay"} | fields
    version = rv.add_version(table, MAIN, **values)
    table.given.append(version)
    return version


def test_the_first_version_added_is_2_replaying_with_the_active_version_as_its_parent() -> None:
    table = VersionsTable()
    assert _add(table) == 2
    active, versions = rv.read_versions(table, MAIN)
    assert active == 1 and versions[1].state == "replaying" and versions[1].parent == 1
    assert versions[1].results_keyspace == "fleetsense_r2" and versions[1].from_time == T0
    assert versions[1].settings == {"thresholds": "van.harsh_brake_g=0.30"}
    assert _add(table) == 3
    with pytest.raises(ConfigError, match="cannot be a parent"):
        _add(table, parent=7)


def test_an_add_that_loses_the_race_for_its_number_takes_the_next_one() -> None:
    table = VersionsTable()
    table.race = lambda: _add(table, job_name="other") if len(table.rows) < 2 else None
    assert _add(table) == 4  # the other writer took 2, then 3, between this one's read and its insert
    assert [table.rows[n]["job_name"] for n in (2, 3, 4)] == ["other", "other", "replay"]


def test_the_first_flip_finds_no_pointer_and_records_version_1_retired() -> None:
    table = VersionsTable()
    _add(table)
    assert not rv.flip_active(table, MAIN, 2, 1)  # version 2 is not active
    assert rv.flip_active(table, MAIN, 1, 2, retire_after=datetime(2026, 12, 14, tzinfo=UTC))
    active, versions = rv.read_versions(table, MAIN)
    assert active == 2 and [(v.version, v.state) for v in versions] == [(1, "retired"), (2, "active")]
    assert versions[0].recorded and versions[0].retire_after == datetime(2026, 12, 14, tzinfo=UTC)
    assert versions[1].promoted_at is not None
    assert not rv.flip_active(table, MAIN, 1, 2)  # stale: 2 is active already
    # Back to 1 (the pointer now holds 2, then 1), and forward again from a pointer that holds 1.
    assert rv.flip_active(table, MAIN, 2, 1) and table.active == 1
    assert rv.flip_active(table, MAIN, 1, 2) and table.active == 2


def test_a_dropped_version_cannot_be_promoted_and_the_active_one_or_version_1_cannot_be_dropped() -> None:
    table = VersionsTable()
    _add(table), _add(table)
    rv.drop_version(table, MAIN, 3)
    assert table.dropped_keyspaces == ["fleetsense_r3"] and table.rows[3]["state"] == "dropped"
    rv.drop_version(table, MAIN, 3)  # again: finishes a drop cut off after its state was written
    assert table.dropped_keyspaces == ["fleetsense_r3"] * 2
    assert not rv.flip_active(table, MAIN, 1, 3)
    assert rv.flip_active(table, MAIN, 1, 2)
    with pytest.raises(ConfigError, match="is the active one"):
        rv.drop_version(table, MAIN, 2)
    with pytest.raises(ConfigError, match="never dropped"):
        rv.drop_version(table, MAIN, 1)
    assert _add(table) == 4  # 3's number is not given again


def test_set_state_is_a_compare_and_set_and_leaves_active_and_dropped_to_their_commands() -> None:
    table = VersionsTable()
    _add(table)
    assert not rv.set_state(table, MAIN, 2, "replaying", expected="retired")
    assert rv.set_state(table, MAIN, 2, "retired", expected="replaying", retire_after=T0)
    assert table.rows[2]["state"] == "retired"
    assert not rv.set_state(table, MAIN, 5, "retired", expected="replaying")  # no such row
    for state in ("active", "dropped", "caught_up"):
        with pytest.raises(ValueError, match="set_state moves a version between replaying and retired"):
            rv.set_state(table, MAIN, 2, state, expected="retired")
    # Only a flip retires the active version (and makes another active in the same step).
    assert rv.flip_active(table, MAIN, 1, 2)
    with pytest.raises(ValueError, match="set_state moves a version between replaying and retired"):
        rv.set_state(table, MAIN, 2, "retired", expected="active")


def _race(rng: random.Random, table: VersionsTable) -> None:
    """Another writer's random command, a third of the time; its refusals are its own."""
    if rng.random() < 0.3:
        try:
            _random_command(rng, table)()
        except (ConfigError, ValueError):
            pass


def _random_command(rng: random.Random, table: VersionsTable) -> Callable[[], Any]:
    known = [1, *table.rows]
    version = rng.choice([*known, max(known) + 1])
    other = rng.choice([*known, max(known) + 1])
    return rng.choice(
        [
            lambda: _add(table, parent=rng.choice([None, None, version])),
            lambda: rv.flip_active(table, MAIN, version, other) if version != other else None,
            lambda: rv.flip_active(table, MAIN, rv.read_versions(table, MAIN)[0], other),
            lambda: rv.set_state(table, MAIN, version, rng.choice(rv.LIVE_STATES), expected=rng.choice(rv.LIVE_STATES)),
            lambda: rv.drop_version(table, MAIN, version),
        ]
    )


def _check(table: VersionsTable) -> None:
    active, versions = rv.read_versions(table, MAIN)
    states = {v.version: v.state for v in versions}
    assert states[active] == "active", (active, states)
    assert [n for n, state in states.items() if state == "active"] == [active], states
    assert len(table.given) == len(set(table.given)), "a version number was given twice"
    assert set(table.given) <= set(states)
    dropped = {rv.keyspace_of(MAIN, n) for n, state in states.items() if state == "dropped"}
    assert set(table.dropped_keyspaces) == dropped and MAIN not in dropped
    assert all(v.results_keyspace == rv.keyspace_of(MAIN, v.version) for v in versions)


def test_seeded_random_commands_with_racing_writers_keep_one_active_version_and_never_lose_one() -> None:
    """6,000 commands in 300 histories, with another writer's random command committed between a command's read
    and its conditional write about a third of the time, and one conditional write in ten timing out (applied or
    not): exactly one version is active and its row says so, no
    number is given twice, only dropped versions' keyspaces are dropped (never the main one), and a command that
    nothing raced does exactly what the table said before it."""
    rng = random.Random(19)
    done = {"raced": 0, "flipped": 0, "refused flips": 0, "dropped": 0, "refused drops": 0, "timed out": 0}
    for _ in range(300):
        table = VersionsTable()
        table.race = lambda t=table: _race(rng, t)  # type: ignore[misc]
        table.timeout = lambda: rng.choice(["before", "after"]) if rng.random() < 0.1 else None
        for _ in range(20):
            before_active, before = rv.read_versions(table, MAIN)
            states = {v.version: v.state for v in before}
            races = table.races
            kind = rng.random()
            if kind < 0.3:
                version = _add(table)
                if table.races == races:
                    assert version == rv.next_version(before)
            elif kind < 0.7:
                expected = before_active if rng.random() < 0.7 else rng.choice(list(states))
                new = rng.choice([*states, max(states) + 1])
                if new != expected:
                    applied = rv.flip_active(table, MAIN, expected, new)
                    done["flipped" if applied else "refused flips"] += 1
                    if table.races == races:
                        assert applied == (expected == before_active and states.get(new) in rv.LIVE_STATES)
            else:
                version = rng.choice([*states, max(states) + 1])
                refusal = rv.droppable(before_active, before, version)
                try:
                    rv.drop_version(table, MAIN, version)
                except ConfigError:
                    assert refusal is not None or table.races != races
                    done["refused drops"] += 1
                else:
                    assert refusal is None
                    done["dropped"] += 1
            done["raced"] += table.races != races
            done["timed out"] += table.timeouts
            table.timeouts = 0
            _check(table)
        assert rv.next_version(rv.read_versions(table, MAIN)[1]) > max(table.rows, default=1)
    assert min(done.values()) >= 300, done  # every outcome happened, many times


def test_fuzz_stored_settings_text_reads_as_an_object_or_raises_value_error() -> None:
    rng = random.Random(23)
    alphabet = "{}[]\":,0123456789.-eE truefalsnu\\'abc"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        try:
            settings = rv.settings_of(text)
        except ValueError:
            continue
        assert isinstance(settings, dict)
