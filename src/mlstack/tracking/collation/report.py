"""What `check` finds in one database, and how it is printed."""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from mlstack.tracking.collation import blockers, catalog
from mlstack.tracking.collation.catalog import CHARSET, COLLATION, PENDING_FOREIGN_KEYS, Table


@dataclass
class Report:
    """What `check` found in one database."""

    database: str
    default_collation: str
    tables: list[Table]
    problems: list[str]
    other_sessions: int
    interrupted: bool  # an earlier conversion left foreign keys to add back

    @property
    def to_convert(self) -> list[Table]:
        return [t for t in self.tables if t.needs_conversion]

    @property
    def done(self) -> bool:
        return not self.to_convert and self.default_collation == COLLATION and not self.interrupted


def inspect(connection: pymysql.Connection, database: str) -> Report:
    """Read the database's collations and everything a conversion would run into."""
    tables = catalog.tables(connection, database)
    columns = catalog.columns(connection, database)
    indexes = catalog.indexes(connection, database)
    problems = (
        blockers.size_problems(tables, columns, indexes)
        + blockers.collisions(connection, tables, columns, indexes)
        + blockers.dangling(connection, catalog.foreign_keys(connection, database), columns)
    )
    return Report(
        database=database,
        default_collation=catalog.default_collation(connection, database),
        tables=list(tables.values()),
        problems=problems,
        other_sessions=catalog.other_sessions(connection, database),
        interrupted=catalog.has_pending_foreign_keys(connection, database),
    )


def print_report(report: Report) -> None:
    """What check found, one fact a line."""
    print(f"database {report.database}: default collation {report.default_collation}")
    for table in report.to_convert:
        print(f"  to convert: {table.name} ({', '.join(sorted(table.collations))})")
    if not report.to_convert:
        print(f"  every table is {CHARSET} / {COLLATION}")
    if report.interrupted:
        print(f"  an earlier conversion stopped: its foreign keys wait in {PENDING_FOREIGN_KEYS}")
    for problem in report.problems:
        print(f"  BLOCKS CONVERSION: {problem}")
