"""A database's tables, columns, indexes and foreign keys, as information_schema has them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pymysql

CHARSET = "utf8mb4"
COLLATION = "utf8mb4_bin"
# Where a conversion saves the foreign keys it drops, until it has added them back.
PENDING_FOREIGN_KEYS = "mlstack_pending_foreign_keys"


def is_case_insensitive(collation: str | None) -> bool:
    """True for collations that fold case (`*_ci`: utf8mb4_0900_ai_ci, utf8mb4_general_ci...)."""
    return bool(collation) and collation.lower().endswith("_ci")


def rows(connection: pymysql.Connection, sql: str, args: Iterable = ()) -> list[tuple]:
    """Every row the statement returns (none for DDL)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, tuple(args) or None)  # None: no %-formatting of the SQL
        return list(cursor.fetchall())


def quote(name: str) -> str:
    """A table, column or constraint name as a MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"


@dataclass
class Table:
    """One base table: its collations and its row format."""

    name: str
    row_format: str
    collations: set[str] = field(default_factory=set)  # the table's and its string columns'

    @property
    def needs_conversion(self) -> bool:
        return self.collations != {COLLATION}

    @property
    def case_insensitive(self) -> bool:
        return any(is_case_insensitive(c) for c in self.collations)


@dataclass
class Column:
    data_type: str
    collation: str | None
    max_chars: int | None


# (table, index) -> (unique, [(column, prefix length in characters or None)])
Indexes = dict[tuple[str, str], tuple[bool, list[tuple[str, int | None]]]]


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key, enough to drop it and add it back as it was."""

    name: str
    table: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    on_update: str
    on_delete: str

    def add_sql(self) -> str:
        """ALTER TABLE ... ADD CONSTRAINT: the key as it was."""
        return (
            f"ALTER TABLE {quote(self.table)} ADD CONSTRAINT {quote(self.name)} "
            f"FOREIGN KEY ({', '.join(map(quote, self.columns))}) "
            f"REFERENCES {quote(self.parent)} ({', '.join(map(quote, self.parent_columns))}) "
            f"ON DELETE {self.on_delete} ON UPDATE {self.on_update}"
        )


def default_collation(connection: pymysql.Connection, database: str) -> str:
    """The collation new tables of the database get."""
    ((default,),) = rows(
        connection,
        "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
        (database,),
    )
    return default


def tables(connection: pymysql.Connection, database: str) -> dict[str, Table]:
    """The database's base tables by name (not the pending foreign keys' own)."""
    found = {
        name: Table(name=name, row_format=(row_format or "dynamic").lower(), collations={collation})
        for name, collation, row_format in rows(
            connection,
            "SELECT TABLE_NAME, TABLE_COLLATION, ROW_FORMAT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> %s "
            "ORDER BY TABLE_NAME",
            (database, PENDING_FOREIGN_KEYS),
        )
    }
    for name, collation in rows(
        connection,
        "SELECT TABLE_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND COLLATION_NAME IS NOT NULL",
        (database,),
    ):
        if name in found:
            found[name].collations.add(collation)
    return found


def columns(connection: pymysql.Connection, database: str) -> dict[tuple[str, str], Column]:
    """Every column of the database, by (table, column)."""
    return {
        (table, column): Column(data_type.lower(), collation, max_chars)
        for table, column, data_type, collation, max_chars in rows(
            connection,
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLLATION_NAME, CHARACTER_MAXIMUM_LENGTH "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s",
            (database,),
        )
    }


def indexes(connection: pymysql.Connection, database: str) -> Indexes:
    """Every index of the database, its columns in order."""
    found: Indexes = {}
    for table, index, column, sub_part, non_unique in rows(
        connection,
        "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, SUB_PART, NON_UNIQUE "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (database,),
    ):
        _, parts = found.setdefault((table, index), (int(non_unique) == 0, []))
        parts.append((column, sub_part))
    return found


def foreign_keys(connection: pymysql.Connection, database: str) -> list[ForeignKey]:
    """Every foreign key between the database's tables."""
    found: dict[tuple[str, str], dict] = {}
    for name, table, parent, on_update, on_delete, column, parent_column in rows(
        connection,
        "SELECT rc.CONSTRAINT_NAME, rc.TABLE_NAME, rc.REFERENCED_TABLE_NAME, rc.UPDATE_RULE, "
        "rc.DELETE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME "
        "FROM information_schema.REFERENTIAL_CONSTRAINTS rc "
        "JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA "
        "  AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME "
        "WHERE rc.CONSTRAINT_SCHEMA = %s "
        "ORDER BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        (database,),
    ):
        key = found.setdefault(
            (table, name),
            {
                "name": name,
                "table": table,
                "parent": parent,
                "on_update": on_update,
                "on_delete": on_delete,
                "columns": [],
                "parent_columns": [],
            },
        )
        key["columns"].append(column)
        key["parent_columns"].append(parent_column)
    return [
        ForeignKey(
            **{**k, "columns": tuple(k["columns"]), "parent_columns": tuple(k["parent_columns"])}
        )
        for k in found.values()
    ]


def has_pending_foreign_keys(connection: pymysql.Connection, database: str) -> bool:
    """True when an earlier conversion stopped before adding its foreign keys back."""
    ((count,),) = rows(
        connection,
        "SELECT COUNT(*) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (database, PENDING_FOREIGN_KEYS),
    )
    return bool(count)


def other_sessions(connection: pymysql.Connection, database: str) -> int:
    """Sessions using the database besides ours: a running server's pool, typically.

    Without the PROCESS privilege a user sees only its own sessions, which are the
    tracking server's when it runs as the same user, as it does in the local stack.
    The schema lock's session is on no database, so it is not counted.
    """
    ((count,),) = rows(
        connection,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
        "WHERE DB = %s AND ID <> CONNECTION_ID()",
        (database,),
    )
    return int(count)
