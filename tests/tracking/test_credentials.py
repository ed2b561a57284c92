"""A password is verified once per worker, never against a stale hash, failures never kept.

MLflow's own auth store on a SQLite file; two stores on the same file are two workers
(or replicas) of one server. The scrypt check is counted, not timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from sqlalchemy import event
from werkzeug.security import check_password_hash

from mlstack.tracking import credentials
from mlstack.tracking.credentials import RememberingStore, VerifiedPasswords

USER, PASSWORD = "alice", "alice-password-1"
NEW_PASSWORD = "alice-password-2"
PROBE = Path(__file__).parents[1] / "support" / "basic_auth_probe.py"
TRACKING_PACKAGE_DIR = Path(__file__).parents[2] / "images" / "tracking-server"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full password check the memo makes (werkzeug's, really run), by user hash."""
    calls: list[str] = []

    def counted(stored_hash: str, password: str) -> bool:
        calls.append(stored_hash)
        return check_password_hash(stored_hash, password)

    monkeypatch.setattr(credentials, "check_password_hash", counted)
    return calls


@pytest.fixture
def database(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'auth.db'}"
    store = SqlAlchemyStore()
    store.init_db(uri)
    store.create_user(USER, PASSWORD)
    store.create_user("admin", "admin-password-1", is_admin=True)
    store.engine.dispose()
    return uri


def open_store(uri: str, verified: VerifiedPasswords | None = None) -> RememberingStore:
    store = RememberingStore(verified)
    store.init_db(uri)
    return store


@pytest.fixture
def workers(database: str) -> Iterator[tuple[RememberingStore, RememberingStore]]:
    """Two workers' stores on one auth database, each verifying passwords once."""
    first, second = open_store(database), open_store(database)
    yield first, second
    first.engine.dispose()
    second.engine.dispose()


def test_a_password_is_verified_once_then_remembered(workers, scrypt_calls) -> None:
    first, _ = workers
    assert all(first.authenticate_user(USER, PASSWORD) for _ in range(5))
    assert len(scrypt_calls) == 1


def test_a_wrong_password_is_refused_every_time_and_checked_in_full(workers, scrypt_calls):
    first, _ = workers
    assert first.authenticate_user(USER, PASSWORD)  # the right one, remembered
    for attempt in range(5):
        assert not first.authenticate_user(USER, f"wrong-{attempt % 2}")
    assert len(scrypt_calls) == 6  # no failure remembered, nor sped up by the success
    assert not first.authenticate_user(USER, PASSWORD + " ")
    assert not first.authenticate_user("nobody", PASSWORD)
    assert not first.authenticate_user(USER, "")


def test_a_password_changed_through_another_worker_is_refused_on_the_next_request(
    workers, scrypt_calls
) -> None:
    first, second = workers
    assert first.authenticate_user(USER, PASSWORD)
    assert first.authenticate_user(USER, PASSWORD)  # remembered by the first worker
    second.update_user(USER, password=NEW_PASSWORD)  # MLflow's update-password, elsewhere
    assert not first.authenticate_user(USER, PASSWORD)
    assert first.authenticate_user(USER, NEW_PASSWORD)
    assert second.authenticate_user(USER, NEW_PASSWORD)
    assert not second.authenticate_user(USER, PASSWORD)


def test_the_same_password_set_again_is_verified_again(workers, scrypt_calls) -> None:
    """A new hash (a new salt) is a new entry: nothing verified against the old row counts."""
    first, second = workers
    assert first.authenticate_user(USER, PASSWORD)
    second.update_user(USER, password=PASSWORD)
    calls = len(scrypt_calls)
    assert first.authenticate_user(USER, PASSWORD)
    assert len(scrypt_calls) == calls + 1


def test_a_user_deleted_through_another_worker_is_refused_on_the_next_request(workers) -> None:
    first, second = workers
    assert first.authenticate_user(USER, PASSWORD)
    second.delete_user(USER)
    assert not first.authenticate_user(USER, PASSWORD)
    second.create_user(USER, NEW_PASSWORD)  # a new user of the same name
    assert not first.authenticate_user(USER, PASSWORD)
    assert first.authenticate_user(USER, NEW_PASSWORD)


def test_an_entry_lasts_its_lifetime_then_the_password_is_checked_again(
    database: str, scrypt_calls
) -> None:
    clock = Clock()
    store = open_store(database, VerifiedPasswords(lifetime_s=300, clock=clock))
    try:
        assert store.authenticate_user(USER, PASSWORD)
        clock.now = 299
        assert store.authenticate_user(USER, PASSWORD)
        assert len(scrypt_calls) == 1
        clock.now = 301
        assert store.authenticate_user(USER, PASSWORD)
        assert len(scrypt_calls) == 2
    finally:
        store.engine.dispose()


def queries_on(store: SqlAlchemyStore) -> list[str]:
    """The SQL statements the store's engine runs from now on (SQLite's PRAGMAs aside)."""
    statements: list[str] = []

    def record(connection, cursor, statement, *args) -> None:
        if not statement.startswith("PRAGMA"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    return statements


def test_within_one_request_the_users_row_is_read_once(workers) -> None:
    """MLflow authenticates three times in a non-admin's request and reads the user twice."""
    first, _ = workers
    queries = queries_on(first)
    with Flask(__name__).test_request_context():
        for _ in range(3):
            assert first.authenticate_user(USER, PASSWORD)
        assert first.get_user(USER).username == USER
        assert not first.get_user(USER).is_admin
        assert len(queries) == 1
        first.update_user(USER, is_admin=True)  # changed in this request: read again
        assert first.get_user(USER).is_admin
    with Flask(__name__).test_request_context():  # the next request reads it anew
        assert first.authenticate_user(USER, PASSWORD)
    outside = len(queries)
    first.get_user(USER)
    first.get_user(USER)  # outside a request, every call reads (MLflow's behaviour)
    assert len(queries) == outside + 2


def test_memory_holds_keyed_digests_not_passwords() -> None:
    verified = VerifiedPasswords()
    stored = "scrypt:32768:8:1$salt$hash"
    digest = verified._digest(USER, stored, PASSWORD)
    assert len(digest) == 32 and PASSWORD.encode() not in digest
    # Keyed per process: another worker's digest of the same credential differs.
    assert VerifiedPasswords()._digest(USER, stored, PASSWORD) != digest
    # The parts are length-prefixed: shifting characters between them changes the digest.
    assert verified._digest(USER, stored, "ab") != verified._digest(USER, stored + "a", "b")


def test_mlflows_basic_auth_app_verifies_each_password_once(database: str) -> None:
    """MLflow's own Flask and FastAPI auth paths, with our store installed as app.py does,
    in a process of their own (they configure themselves at import): many requests of one
    user cost one scrypt check, and one read of the user's row each."""
    env = {**os.environ, "PYTHONPATH": str(TRACKING_PACKAGE_DIR)}
    done = subprocess.run(
        [sys.executable, str(PROBE), database, USER, PASSWORD],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["statuses"] == {"right": [200] * 5, "wrong": [401] * 3, "changed": [401, 200]}
    # 1 for the five right logins (each authenticates twice: the request, the handler) and
    # the password change's current-password check; 3 for the wrong ones; after the change,
    # 1 for the old password (refused) and 1 for the new.
    assert report["scrypt_checks"] == 6, report
    assert report["user_rows_read_per_request"] == 1, report
    assert report["fastapi_path"] == {
        "right": True,
        "again": True,
        "wrong": False,
        "scrypt_checks": 2,
    }
