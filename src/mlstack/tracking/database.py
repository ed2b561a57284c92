"""Reaching the backend database, and migrating it once however many replicas start."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
from sqlalchemy.engine import URL, make_url

from mlstack.core.errors import StartupError
from mlstack.core.waiting import attempts

log = logging.getLogger(__name__)

# MySQL error codes that waiting cannot fix.
ACCESS_DENIED = 1045
DB_ACCESS_DENIED = 1044
UNKNOWN_DATABASE = 1049
SCHEMA_LOCK = "mlstack.schema_migration"
SCHEMA_LOCK_TIMEOUT_S = 600
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception): ")
UPGRADE_URI_VARIABLE = "MLSTACK_UPGRADE_DATABASE_URI"
# `mlflow db upgrade <url>` itself (mlflow/db.py), but with the URL from the environment:
# on a command line its password would show in `ps` for as long as the migration runs.
UPGRADE_PROGRAM = (
    "import os, mlflow.db; "
    f"mlflow.db.upgrade.callback(url=os.environ.pop({UPGRADE_URI_VARIABLE!r}))"
)


def connect(
    uri: str,
    *,
    with_database: bool = True,
    timeout: float = 5,
    read_timeout: float | None = SCHEMA_LOCK_TIMEOUT_S + 30,
    **options: object,
) -> pymysql.Connection:
    """A session on the server (and database) of a mysql+pymysql URI.

    `read_timeout=None` waits without limit, for statements that may run long (ALTER TABLE);
    further PyMySQL options (charset, autocommit) pass through.
    """
    url = make_url(uri)
    return pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database=url.database if with_database else None,
        connect_timeout=max(1, int(timeout)),
        read_timeout=read_timeout,
        **options,
    )


def with_timeouts(uri: str, connect_timeout: int, read_timeout: int) -> str:
    """The URI the serving workers use: PyMySQL's connect, read and write timeouts in its query.

    Without them a paused or vanished database holds a request without limit: PyMySQL
    waits for the server's greeting and for every answer with no timeout by default.
    SQLAlchemy's MySQL dialects pass these query keys to the driver, so every engine MLflow
    builds from the URI (tracking, registry, auth, jobs) gets them. Values already in the
    URI's query are the operator's and stay. Migrations do not use this URI: an ALTER TABLE
    may legitimately run for minutes.
    """
    url = make_url(uri)
    wanted = {
        "connect_timeout": str(connect_timeout),
        "read_timeout": str(read_timeout),
        "write_timeout": str(read_timeout),
    }
    missing = {key: value for key, value in wanted.items() if key not in url.query}
    return url.update_query_dict(missing).render_as_string(hide_password=False)


def ping(uri: str, timeout: float) -> None:
    """SELECT 1 on the database within about `timeout` seconds; raise pymysql's error if not."""
    connection = connect(uri, timeout=timeout, read_timeout=timeout, write_timeout=timeout)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


def _refusal(error: pymysql.err.OperationalError, url: URL, address: str) -> StartupError | None:
    """The start-up error for what waiting cannot fix (credentials, grants, no database)."""
    code = error.args[0] if error.args else None
    if code == ACCESS_DENIED:
        return StartupError(
            f"database at {address} refused user {url.username!r}: check DB_USER / DB_PASSWORD"
        )
    if code == DB_ACCESS_DENIED:
        return StartupError(
            f"user {url.username!r} may not use database {url.database!r} at {address}: "
            f"GRANT ALL ON `{url.database}`.* TO '{url.username}'"
        )
    if code == UNKNOWN_DATABASE:
        return StartupError(
            f"database {url.database!r} does not exist at {address}: create it or fix DB_NAME"
        )
    return None


def wait_for_database(uri: str, timeout: float) -> None:
    """Return once the database accepts our credentials; fail fast on what waiting cannot fix.

    One attempt a second (each waits up to 5 s for the server) until `timeout` has passed.
    """
    url = make_url(uri)
    address = f"{url.host}:{url.port or 3306}"
    deadline = time.monotonic() + timeout
    log.info("waiting up to %.0f s for the database at %s", timeout, address)
    try:
        for attempt in attempts(timeout, pymysql.err.OperationalError):
            with attempt:
                try:
                    connect(uri, timeout=min(5, max(1, deadline - time.monotonic()))).close()
                except pymysql.err.OperationalError as error:
                    refusal = _refusal(error, url, address)
                    if refusal is not None:
                        raise refusal from None
                    raise
    except pymysql.err.OperationalError as error:
        raise StartupError(
            f"database at {address} did not answer within {timeout:.0f} s "
            f"({error.args[-1] if error.args else error}): check DB_HOST / DB_PORT "
            "and that the database is running"
        ) from None
    log.info("database at %s is up", address)


@contextmanager
def schema_lock(uri: str, wait_s: int = SCHEMA_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the server-wide named lock under which MLflow's tables change.

    One replica migrates while the others wait, and a collation conversion waits for
    them. The lock has a session of its own, on no database: closing it releases the
    lock, and it is not counted among the sessions using the database.
    """
    connection = connect(uri, with_database=False, read_timeout=wait_s + 30)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", (SCHEMA_LOCK, wait_s))
            (acquired,) = cursor.fetchone()
        if acquired != 1:
            raise StartupError(
                f"another tracking server held the schema lock for over {wait_s} s "
                "(migrating its database?): let it finish, then run again"
            )
        yield
    finally:
        connection.close()  # closing the session releases the lock


def upgrade_schema(uri: str) -> None:
    """Create the tables of an empty database, or bring an older schema up to date."""
    log.info("bringing the database schema up to date")
    result = subprocess.run(
        [sys.executable, "-c", UPGRADE_PROGRAM],
        env={**os.environ, UPGRADE_URI_VARIABLE: uri},  # the child's environment, written
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        # The exception's own line, not SQLAlchemy's "(Background on this error at: ...)".
        errors = [line for line in lines if EXCEPTION_LINE.match(line)]
        last = (errors or lines)[-1]
        raise StartupError(
            f"schema upgrade failed: {last}; the next start says what it left behind, "
            'see docs/operations.md, "Recovering a failed migration"'
        )


def ensure_database(uri: str) -> None:
    """Create the database named in uri if it is missing (the auth database, typically)."""
    url = make_url(uri)
    connection = connect(uri, with_database=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{url.database}`")
    except pymysql.err.OperationalError as error:
        if error.args and error.args[0] in (DB_ACCESS_DENIED, ACCESS_DENIED):
            raise StartupError(
                f"database {url.database!r} is missing and user {url.username!r} may not create "
                f"it: create it and GRANT ALL ON `{url.database}`.* TO '{url.username}'"
            ) from None
        raise
    finally:
        connection.close()
