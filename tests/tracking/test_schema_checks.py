"""The start-up's schema checks on made-up databases (no container needed)."""

from __future__ import annotations

import logging

import pytest

from mlstack.core.errors import StartupError
from mlstack.tracking.schema import Schema, _migrations_create_triggers, check_consistent, log_plan
from mlstack.tracking.schema_history import TableHistory

HISTORY = TableHistory(
    initial=frozenset({"runs", "metrics"}),
    revisions=(
        ("r1", frozenset({"runs", "metrics", "params"})),
        ("r2", frozenset({"runs", "metrics", "params"})),
        ("r3", frozenset({"runs", "metrics", "params", "secrets", "endpoints"})),
    ),
    trigger_revisions=frozenset({"r3"}),
)


def schema(revision: str | None, *tables: str) -> Schema:
    return Schema("mlflow", revision, frozenset(tables), HISTORY)


@pytest.mark.parametrize(
    ("state", "one_table_more"),
    [
        (schema(None), "runs"),  # empty
        (schema(None, "alembic_version"), "metrics"),  # a first start failed before any table
        (schema(None, "runs", "metrics"), "params"),  # pre-1.0 tables: MLflow upgrades those
        (
            schema("r2", "runs", "metrics", "params", "alembic_version", "users_own_table"),
            "secrets",
        ),
        (
            schema("r3", "runs", "metrics", "params", "secrets", "endpoints", "alembic_version"),
            None,
        ),
    ],
    ids=["empty", "bookkeeping-only", "pre-1.0", "behind-with-a-foreign-table", "current"],
)
def test_consistent_databases_pass(state: Schema, one_table_more: str | None) -> None:
    """Each passes as it is, and one MLflow table more (where there can be one) makes it
    half-created or half-migrated: the check looks at these very tables."""
    assert check_consistent(state) is None
    if one_table_more is None:  # current: every MLflow table is there already
        missing = schema("r3", *(state.tables - {"endpoints"}))
        with pytest.raises(StartupError, match=r"missing \(endpoints\)"):
            check_consistent(missing)
        return
    grown = Schema(state.database, state.revision, state.tables | {one_table_more}, HISTORY)
    with pytest.raises(StartupError, match=rf"half-(created|migrated).*{one_table_more}"):
        check_consistent(grown)


def test_tables_of_a_failed_later_migration_are_named() -> None:
    state = schema("r2", "runs", "metrics", "params", "secrets", "alembic_version")
    with pytest.raises(StartupError) as raised:
        check_consistent(state)
    message = str(raised.value)
    assert "\n" not in message
    assert "records schema revision r2" in message
    assert "tables of a later migration exist (secrets)" in message
    assert 'docs/operations.md, "Recovering a failed migration"' in message


def test_missing_tables_of_the_recorded_revision_are_named() -> None:
    state = schema("r3", "runs", "metrics", "params", "alembic_version")
    with pytest.raises(StartupError, match=r"revision r3.*missing \(endpoints, secrets\)"):
        check_consistent(state)


def test_mlflow_tables_without_a_revision_are_half_created() -> None:
    with pytest.raises(StartupError, match=r"half-created.*\(metrics, params, runs\)"):
        check_consistent(schema(None, "runs", "metrics", "params"))


def test_a_revision_from_a_newer_mlflow_is_refused() -> None:
    with pytest.raises(StartupError, match="revision r9, which this image's MLflow does not"):
        check_consistent(schema("r9", "runs"))


def test_the_plan_is_logged_calmly_when_current(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlstack.tracking")
    log_plan(schema("r3", "runs"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "database schema is current (revision r3)")
    ]


def test_an_upgrade_says_from_and_to(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlstack.tracking")
    log_plan(schema("r1", "runs", "metrics", "params"))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "from schema revision r1 to r3 (2 migrations)" in record.getMessage()


@pytest.mark.parametrize(
    ("revision", "expected"), [(None, True), ("r1", True), ("r2", True), ("r3", False)]
)
def test_the_trigger_check_runs_only_when_a_pending_migration_creates_one(
    revision: str | None, expected: bool
) -> None:
    assert _migrations_create_triggers(schema(revision)) is expected
