"""Converting a database's tables, then its default, to utf8mb4 / utf8mb4_bin.

MariaDB refuses to change the collation of a column a foreign key uses, even with
foreign_key_checks off (error 1832/1833), so the conversion drops the foreign keys,
converts, and adds them back (validated against the data). Their definitions are
first saved in the table mlstack_pending_foreign_keys, so an interrupted
conversion, run again, still restores them.
"""

from __future__ import annotations

import time

import pymysql

from mlstack.core.errors import StartupError
from mlstack.tracking.collation.catalog import (
    CHARSET,
    COLLATION,
    PENDING_FOREIGN_KEYS,
    foreign_keys,
    quote,
    rows,
)
from mlstack.tracking.collation.report import Report


def save_foreign_keys(connection: pymysql.Connection, database: str) -> None:
    """Record every foreign key in the pending table, then drop them all."""
    rows(
        connection,
        f"CREATE TABLE IF NOT EXISTS {PENDING_FOREIGN_KEYS} (table_name VARCHAR(64) NOT NULL, "
        "name VARCHAR(64) NOT NULL, add_sql TEXT NOT NULL, PRIMARY KEY (table_name, name)) "
        f"CHARACTER SET {CHARSET} COLLATE {COLLATION}",
    )
    keys = foreign_keys(connection, database)
    for key in keys:
        rows(
            connection,
            f"INSERT IGNORE INTO {PENDING_FOREIGN_KEYS} VALUES (%s, %s, %s)",  # noqa: S608
            (key.table, key.name, key.add_sql()),
        )
    for key in keys:
        rows(connection, f"ALTER TABLE {quote(key.table)} DROP FOREIGN KEY {quote(key.name)}")
    print(
        f"  dropped {len(keys)} foreign keys for the conversion (saved in {PENDING_FOREIGN_KEYS})"
    )


def restore_foreign_keys(connection: pymysql.Connection, database: str) -> None:
    """Add back every saved foreign key that is missing (checked against the data); forget them."""
    present = {(k.table, k.name) for k in foreign_keys(connection, database)}
    saved = rows(connection, f"SELECT table_name, name, add_sql FROM {PENDING_FOREIGN_KEYS}")  # noqa: S608
    for table, name, add_sql in saved:
        if (table, name) not in present:
            rows(connection, add_sql)
    rows(connection, f"DROP TABLE {PENDING_FOREIGN_KEYS}")
    print(f"  added back {len(saved)} foreign keys")


def convert(connection: pymysql.Connection, report: Report) -> None:
    """Convert every table, then the database default, to utf8mb4 / utf8mb4_bin."""
    database = report.database
    if report.other_sessions:
        raise StartupError(
            f"{report.other_sessions} other sessions are using database {database} "
            "(a running tracking server?): stop it first (`make local-convert-collation` does), "
            "then run again"
        )
    if report.problems:
        raise StartupError(
            f"refusing to convert database {database}: {len(report.problems)} problems listed "
            "above; nothing was changed"
        )
    save_foreign_keys(connection, database)
    for table in report.to_convert:
        started = time.monotonic()
        rows(
            connection,
            f"ALTER TABLE {quote(table.name)} CONVERT TO CHARACTER SET {CHARSET} "
            f"COLLATE {COLLATION}",
        )
        print(f"  converted {table.name} in {time.monotonic() - started:.1f} s")
    rows(
        connection, f"ALTER DATABASE {quote(database)} CHARACTER SET {CHARSET} COLLATE {COLLATION}"
    )
    restore_foreign_keys(connection, database)
    print(f"database {database}: default and {len(report.to_convert)} tables now {COLLATION}")
