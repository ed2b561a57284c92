"""MLflow's tables in a case-sensitive collation: the start-up warning, `check` and `convert`.

MLflow's names are case-sensitive (metric "Loss" and "loss" are two metrics), but
its tables take the database's default collation, and MySQL 8.4 creates databases
case-insensitive (utf8mb4_0900_ai_ci): there, log_metric("loss") after
log_metric("Loss") fails with a duplicate key. A database made that way (an
upgraded MLflow 2.x one, say) is converted, table by table, to utf8mb4_bin, the
case-sensitive collation both MySQL 8.4 / RDS and MariaDB have:

    python -m mlstack.tracking.collation check|convert

It reads the server's settings (MLFLOW_BACKEND_STORE_URI or DB_*, and the auth
database when MLFLOW_AUTH_ENABLED is true), prints what it finds or does, and on
failure one line "mlstack-collation: error: ..." with exit status 1.

What can fail, and is checked before anything changes:
- Collisions in unique keys. Case-insensitive -> case-sensitive only splits
  values apart, EXCEPT for trailing spaces: utf8mb4_0900_ai_ci (MySQL's default)
  and MariaDB's *_nopad_ci compare "lr" and "lr " as different, utf8mb4_bin pads
  them equal. Such rows are found by grouping each unique key as it will compare
  after the conversion; they are reported, and nothing is converted.
- Index length: utf8mb4 takes 4 bytes a character; a table still in utf8mb3 or
  latin1 may hold an index that fits now and exceeds InnoDB's limit (3072 bytes,
  767 in the old COMPACT/REDUNDANT row formats) afterwards.
- Row size: VARCHAR columns of one row share 65,535 bytes.
- Foreign keys: MariaDB refuses to change the collation of a column a foreign key
  uses, even with foreign_key_checks off (error 1832/1833), so the conversion
  drops the foreign keys, converts, and adds them back (validated). Their
  definitions are first saved in the table mlstack_pending_foreign_keys, so an
  interrupted conversion, run again, still restores them. A child row that
  matches its parent only case-insensitively ("Foo" -> "foo") would no longer
  match: such rows are reported before anything changes.
- A running tracking server writing meanwhile: ALTER TABLE copies each table and
  blocks its writes. The conversion refuses while other sessions use the database
  and holds the start-up's schema lock, so no replica migrates at the same time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pymysql
from sqlalchemy.engine import make_url

from mlstack.core.errors import StartupError
from mlstack.tracking.config import Settings, StoreSettings, load_settings
from mlstack.tracking.database import SCHEMA_LOCK
from mlstack.tracking.database import connect as open_session

log = logging.getLogger(__name__)

CHARSET = "utf8mb4"
COLLATION = "utf8mb4_bin"
BYTES_PER_CHAR = 4
CONVERT_HINT = (
    "convert them with `python -m mlstack.tracking.collation convert` in the tracking-server "
    "image (local stack: `make local-convert-collation`), after a backup"
)
INDEX_LIMIT_BYTES = 3072  # InnoDB, whole index
# Each indexed column: 3072 bytes in the DYNAMIC / COMPRESSED row formats, 767 in older ones.
COLUMN_LIMIT_BYTES = {"dynamic": 3072, "compressed": 3072}
OLD_ROW_FORMAT_COLUMN_LIMIT = 767
PENDING_FOREIGN_KEYS = "mlstack_pending_foreign_keys"
ROW_LIMIT_BYTES = 65535
LOCK_WAIT_S = 30
MAX_GROUPS_SHOWN = 10
# Bytes a non-string key column takes; only the sum against the limit matters.
FIXED_WIDTH = {"tinyint": 1, "smallint": 2, "int": 4, "bigint": 8, "float": 4, "double": 8}


def is_case_insensitive(collation: str | None) -> bool:
    """True for collations that fold case (`*_ci`: utf8mb4_0900_ai_ci, utf8mb4_general_ci...)."""
    return bool(collation) and collation.lower().endswith("_ci")


@dataclass
class Table:
    """One base table: its collations and what converting it would hit."""

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


def connect(uri: str) -> pymysql.Connection:
    """A session on the database named in uri; no read timeout, since ALTER TABLE may be long."""
    return open_session(uri, timeout=10, read_timeout=None, charset=CHARSET, autocommit=True)


def _rows(connection: pymysql.Connection, sql: str, args: Iterable = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, tuple(args) or None)  # None: no %-formatting of the SQL
        return list(cursor.fetchall())


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _tables(connection: pymysql.Connection, database: str) -> dict[str, Table]:
    tables = {
        name: Table(name=name, row_format=(row_format or "dynamic").lower(), collations={collation})
        for name, collation, row_format in _rows(
            connection,
            "SELECT TABLE_NAME, TABLE_COLLATION, ROW_FORMAT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> %s "
            "ORDER BY TABLE_NAME",
            (database, PENDING_FOREIGN_KEYS),
        )
    }
    for name, collation in _rows(
        connection,
        "SELECT TABLE_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND COLLATION_NAME IS NOT NULL",
        (database,),
    ):
        if name in tables:
            tables[name].collations.add(collation)
    return tables


@dataclass
class Column:
    data_type: str
    collation: str | None
    max_chars: int | None


def _columns(connection: pymysql.Connection, database: str) -> dict[tuple[str, str], Column]:
    return {
        (table, column): Column(data_type.lower(), collation, max_chars)
        for table, column, data_type, collation, max_chars in _rows(
            connection,
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLLATION_NAME, CHARACTER_MAXIMUM_LENGTH "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s",
            (database,),
        )
    }


def _indexes(
    connection: pymysql.Connection, database: str
) -> dict[tuple[str, str], tuple[bool, list[tuple[str, int | None]]]]:
    """(table, index) -> (unique, [(column, prefix length in characters or None)])."""
    indexes: dict[tuple[str, str], tuple[bool, list[tuple[str, int | None]]]] = {}
    for table, index, column, sub_part, non_unique in _rows(
        connection,
        "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME, SUB_PART, NON_UNIQUE "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (database,),
    ):
        _, parts = indexes.setdefault((table, index), (int(non_unique) == 0, []))
        parts.append((column, sub_part))
    return indexes


def _key_bytes(column: Column, prefix: int | None) -> int:
    if column.collation is None:
        return FIXED_WIDTH.get(column.data_type, 8)
    return (prefix or column.max_chars or 0) * BYTES_PER_CHAR


def _size_problems(
    tables: dict[str, Table], columns: dict[tuple[str, str], Column], indexes: dict
) -> list[str]:
    """Indexes and rows that would outgrow InnoDB's limits once every string is utf8mb4."""
    problems = []
    for (table, index), (_, parts) in indexes.items():
        if table not in tables or not tables[table].needs_conversion:
            continue
        row_format = tables[table].row_format
        column_limit = COLUMN_LIMIT_BYTES.get(row_format, OLD_ROW_FORMAT_COLUMN_LIMIT)
        sizes = {col: _key_bytes(columns[(table, col)], prefix) for col, prefix in parts}
        for col, size in sizes.items():
            if size > column_limit:
                problems.append(
                    f"{table}: column {col} of index {index} would take {size} bytes in "
                    f"utf8mb4, over the {column_limit} bytes of row format {row_format}: "
                    f"ALTER TABLE {table} ROW_FORMAT=DYNAMIC first"
                )
        if sum(sizes.values()) > INDEX_LIMIT_BYTES:
            problems.append(
                f"{table}: index {index} ({', '.join(sizes)}) would take {sum(sizes.values())} "
                f"bytes in utf8mb4, over InnoDB's {INDEX_LIMIT_BYTES}"
            )
    for name, table in tables.items():
        if not table.needs_conversion:
            continue
        row = sum(
            (c.max_chars or 0) * BYTES_PER_CHAR + 2
            for (t, _), c in columns.items()
            if t == name and c.data_type == "varchar"
        )
        if row > ROW_LIMIT_BYTES:
            problems.append(
                f"{name}: its VARCHAR columns would take {row} bytes a row in utf8mb4, "
                f"over MySQL's {ROW_LIMIT_BYTES}"
            )
    return problems


def _collisions(
    connection: pymysql.Connection,
    tables: dict[str, Table],
    columns: dict[tuple[str, str], Column],
    indexes: dict,
) -> list[str]:
    """Rows whose unique keys differ now and would be equal under utf8mb4_bin."""
    problems = []
    for (table, index), (unique, parts) in indexes.items():
        if not unique or table not in tables or not tables[table].needs_conversion:
            continue
        keyed = [(col, prefix, columns[(table, col)]) for col, prefix in parts]
        if all(c.collation in (None, COLLATION) for _, _, c in keyed):
            continue
        expressions = []
        for col, prefix, column in keyed:
            expression = _quote(col)
            if column.collation is not None:
                expression = f"CONVERT({expression} USING {CHARSET}) COLLATE {COLLATION}"
                if prefix:
                    expression = f"LEFT({expression}, {int(prefix)})"
            expressions.append(expression)
        # Each stored variant once, compared as bytes (a _ci DISTINCT would fold them again).
        stored = ", ".join(_quote(col) for col, _, _ in keyed)
        variants = (
            f"GROUP_CONCAT(DISTINCT CAST(CONCAT_WS(0x1F, {stored}) AS BINARY) SEPARATOR 0x00)"
        )
        groups = _rows(
            connection,
            # Names come from information_schema and are quoted.
            f"SELECT COUNT(*), {variants} FROM {_quote(table)} "  # noqa: S608
            f"GROUP BY {', '.join(expressions)} HAVING COUNT(*) > 1 LIMIT {MAX_GROUPS_SHOWN + 1}",
        )
        for count, shown in groups[:MAX_GROUPS_SHOWN]:
            problems.append(
                f"{table}: {count} rows would share one {index} key "
                f"({', '.join(c for c, _, _ in keyed)}): {_visible(shown)}"
            )
        if len(groups) > MAX_GROUPS_SHOWN:
            problems.append(f"{table}: more colliding {index} keys than shown")
    return problems


def _visible(variants: bytes | str | None) -> str:
    """Each stored variant as a Python literal, so trailing spaces and accents show."""
    raw = variants.decode("utf-8", "replace") if isinstance(variants, bytes) else variants or ""
    return " vs ".join(repr(tuple(v.split("\x1f"))) for v in raw.split("\x00"))


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
            f"ALTER TABLE {_quote(self.table)} ADD CONSTRAINT {_quote(self.name)} "
            f"FOREIGN KEY ({', '.join(map(_quote, self.columns))}) "
            f"REFERENCES {_quote(self.parent)} ({', '.join(map(_quote, self.parent_columns))}) "
            f"ON DELETE {self.on_delete} ON UPDATE {self.on_update}"
        )


def foreign_keys(connection: pymysql.Connection, database: str) -> list[ForeignKey]:
    """Every foreign key between the database's tables."""
    found: dict[tuple[str, str], dict] = {}
    for name, table, parent, on_update, on_delete, column, parent_column in _rows(
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


def _binary_equal(left: str, right: str) -> str:
    return (
        f"CONVERT({left} USING {CHARSET}) COLLATE {COLLATION} = "
        f"CONVERT({right} USING {CHARSET}) COLLATE {COLLATION}"
    )


def _dangling(
    connection: pymysql.Connection,
    keys: list[ForeignKey],
    columns: dict[tuple[str, str], Column],
) -> list[str]:
    """Child rows that match their parent now, but would not under utf8mb4_bin."""
    problems = []
    for key in keys:
        strings = [
            (c, p)
            for c, p in zip(key.columns, key.parent_columns, strict=True)
            if columns[(key.table, c)].collation not in (None, COLLATION)
            or columns[(key.parent, p)].collation not in (None, COLLATION)
        ]
        if not strings:
            continue
        join = " AND ".join(
            f"p.{_quote(p)} = c.{_quote(c)}"
            for c, p in zip(key.columns, key.parent_columns, strict=True)
        )
        differs = " OR ".join(
            f"NOT ({_binary_equal(f'p.{_quote(p)}', f'c.{_quote(c)}')})" for c, p in strings
        )
        ((count,),) = _rows(
            connection,
            # The join uses the parent's index; only matched rows are compared as bytes.
            f"SELECT COUNT(*) FROM {_quote(key.table)} c JOIN {_quote(key.parent)} p "  # noqa: S608
            f"ON {join} WHERE {differs}",
        )
        if count:
            problems.append(
                f"{key.table}: {count} rows reference {key.parent} "
                f"({', '.join(key.parent_columns)}) only case-insensitively "
                f"(foreign key {key.name}): they would lose their parent"
            )
    return problems


def _other_sessions(connection: pymysql.Connection, database: str) -> int:
    """Sessions using the database besides ours: a running server's pool, typically.

    Without the PROCESS privilege a user sees only its own sessions, which are the
    tracking server's when it runs as the same user, as it does in the local stack.
    """
    ((count,),) = _rows(
        connection,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
        "WHERE DB = %s AND ID <> CONNECTION_ID()",
        (database,),
    )
    return int(count)


def inspect(connection: pymysql.Connection, database: str) -> Report:
    """Read the database's collations and everything a conversion would run into."""
    ((default,),) = _rows(
        connection,
        "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
        (database,),
    )
    tables = _tables(connection, database)
    columns = _columns(connection, database)
    indexes = _indexes(connection, database)
    problems = (
        _size_problems(tables, columns, indexes)
        + _collisions(connection, tables, columns, indexes)
        + _dangling(connection, foreign_keys(connection, database), columns)
    )
    ((pending,),) = _rows(
        connection,
        "SELECT COUNT(*) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (database, PENDING_FOREIGN_KEYS),
    )
    return Report(
        database=database,
        default_collation=default,
        tables=list(tables.values()),
        problems=problems,
        other_sessions=_other_sessions(connection, database),
        interrupted=bool(pending),
    )


def database_uris(store: StoreSettings) -> list[str]:
    """The tracking database, and the auth database when auth is on: the server's settings."""
    uris = [store.backend_store_uri]
    if store.auth_enabled:
        uris.append(store.auth_database_uri)
    return uris


def warn_if_case_insensitive(settings: Settings) -> None:
    """At start-up: one warning naming the databases whose tables fold case, and the fix.

    Never stops the server: a database that cannot be read here fails later, more clearly.
    """
    uris = [settings.backend_store_uri]
    if settings.auth is not None:
        uris.append(settings.auth.database_uri)
    found = []
    for uri in uris:
        database = make_url(uri).database
        try:
            connection = connect(uri)
            try:
                tables = [t for t in _tables(connection, database).values() if t.case_insensitive]
            finally:
                connection.close()
        except pymysql.err.MySQLError as error:
            log.warning("could not read the collations of database %s: %s", database, error)
            continue
        if tables:
            collations = {c for t in tables for c in t.collations if is_case_insensitive(c)}
            found.append(f"{database} ({len(tables)} tables, {', '.join(sorted(collations))})")
    if found:
        log.warning(
            "case-insensitive collation in database %s: names that differ only in case "
            "collide (log_metric('Loss') then 'loss' fails); %s",
            "; ".join(found),
            CONVERT_HINT,
        )


@contextmanager
def schema_lock(connection: pymysql.Connection) -> Iterator[None]:
    """The start-up's schema lock: no replica migrates while tables are converted."""
    ((acquired,),) = _rows(connection, "SELECT GET_LOCK(%s, %s)", (SCHEMA_LOCK, LOCK_WAIT_S))
    if acquired != 1:
        raise StartupError(
            f"a tracking server held the schema lock for {LOCK_WAIT_S} s (migrating?): "
            "let it finish, stop it, then run again"
        )
    try:
        yield
    finally:
        _rows(connection, "SELECT RELEASE_LOCK(%s)", (SCHEMA_LOCK,))


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


def _save_foreign_keys(connection: pymysql.Connection, database: str) -> None:
    """Record every foreign key in the pending table, then drop them all."""
    _rows(
        connection,
        f"CREATE TABLE IF NOT EXISTS {PENDING_FOREIGN_KEYS} (table_name VARCHAR(64) NOT NULL, "
        "name VARCHAR(64) NOT NULL, add_sql TEXT NOT NULL, PRIMARY KEY (table_name, name)) "
        f"CHARACTER SET {CHARSET} COLLATE {COLLATION}",
    )
    keys = foreign_keys(connection, database)
    for key in keys:
        _rows(
            connection,
            f"INSERT IGNORE INTO {PENDING_FOREIGN_KEYS} VALUES (%s, %s, %s)",  # noqa: S608
            (key.table, key.name, key.add_sql()),
        )
    for key in keys:
        _rows(connection, f"ALTER TABLE {_quote(key.table)} DROP FOREIGN KEY {_quote(key.name)}")
    print(
        f"  dropped {len(keys)} foreign keys for the conversion (saved in {PENDING_FOREIGN_KEYS})"
    )


def _restore_foreign_keys(connection: pymysql.Connection, database: str) -> None:
    """Add back every saved foreign key that is missing (checked against the data); forget them."""
    present = {(k.table, k.name) for k in foreign_keys(connection, database)}
    saved = _rows(connection, f"SELECT table_name, name, add_sql FROM {PENDING_FOREIGN_KEYS}")  # noqa: S608
    for table, name, add_sql in saved:
        if (table, name) not in present:
            _rows(connection, add_sql)
    _rows(connection, f"DROP TABLE {PENDING_FOREIGN_KEYS}")
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
    _save_foreign_keys(connection, database)
    for table in report.to_convert:
        started = time.monotonic()
        _rows(
            connection,
            f"ALTER TABLE {_quote(table.name)} CONVERT TO CHARACTER SET {CHARSET} "
            f"COLLATE {COLLATION}",
        )
        print(f"  converted {table.name} in {time.monotonic() - started:.1f} s")
    _rows(
        connection, f"ALTER DATABASE {_quote(database)} CHARACTER SET {CHARSET} COLLATE {COLLATION}"
    )
    _restore_foreign_keys(connection, database)
    print(f"database {database}: default and {len(report.to_convert)} tables now {COLLATION}")


def run(command: str, store: StoreSettings) -> int:
    """check: report, exit 1 if a conversion is needed but blocked. convert: do it, or refuse."""
    uris = database_uris(store)
    blocked = False
    for uri in uris:
        database = make_url(uri).database
        try:
            connection = connect(uri)
        except pymysql.err.OperationalError as error:
            raise StartupError(
                f"cannot reach database {database}: {error.args[-1]}: check DB_* / "
                "MLFLOW_BACKEND_STORE_URI and that the database runs"
            ) from None
        try:
            if command == "check":
                report = inspect(connection, database)
                print_report(report)
                blocked = blocked or bool(report.problems and report.to_convert)
                continue
            with schema_lock(connection):
                report = inspect(connection, database)
                print_report(report)
                if report.done:
                    continue
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


if __name__ == "__main__":
    main()
