"""`python -m mlstack.tracking.collation check|convert` on the tracking server's databases."""

from __future__ import annotations

import argparse
import sys

import pymysql
from sqlalchemy.engine import make_url

from mlstack.core.errors import StartupError
from mlstack.tracking import database
from mlstack.tracking.collation.catalog import CHARSET, COLLATION
from mlstack.tracking.collation.conversion import convert
from mlstack.tracking.collation.report import inspect, print_report
from mlstack.tracking.config import StoreSettings, load_settings

# How long `convert` waits for a starting tracking server's migration to release the lock.
LOCK_WAIT_S = 30


def database_uris(store: StoreSettings) -> list[str]:
    """The tracking database, and the auth database when auth is on: the server's settings."""
    uris = [store.backend_store_uri]
    if store.auth_enabled:
        uris.append(store.auth_database_uri)
    return uris


def _connect(uri: str) -> pymysql.Connection:
    """A session on the database; no read timeout, since ALTER TABLE may run for long."""
    try:
        return database.connect(
            uri, timeout=10, read_timeout=None, charset=CHARSET, autocommit=True
        )
    except pymysql.err.OperationalError as error:
        raise StartupError(
            f"cannot reach database {make_url(uri).database}: {error.args[-1]}: check DB_* / "
            "MLFLOW_BACKEND_STORE_URI and that the database runs"
        ) from None


def run(command: str, store: StoreSettings) -> int:
    """check: report, exit 1 if a conversion is needed but blocked. convert: do it, or refuse."""
    blocked = False
    for uri in database_uris(store):
        name = make_url(uri).database
        connection = _connect(uri)
        try:
            if command == "check":
                report = inspect(connection, name)
                print_report(report)
                blocked = blocked or bool(report.problems and report.to_convert)
                continue
            with database.schema_lock(uri, wait_s=LOCK_WAIT_S):
                report = inspect(connection, name)
                print_report(report)
                if not report.done:
                    convert(connection, report)
        finally:
            connection.close()
    return 1 if blocked else 0


def main(argv: list[str] | None = None) -> None:
    """`python -m mlstack.tracking.collation check|convert`."""
    parser = argparse.ArgumentParser(
        prog="python -m mlstack.tracking.collation",
        description=f"Check or convert MLflow's tables to {CHARSET} / {COLLATION}.",
    )
    parser.add_argument("command", choices=["check", "convert"])
    args = parser.parse_args(argv)
    try:
        status = run(args.command, load_settings(kind=StoreSettings))
    except (StartupError, pymysql.err.MySQLError) as error:
        print(f"mlstack-collation: error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(status)
