"""The backend database's schema, checked before MLflow migrates it.

MySQL cannot roll DDL back: a migration that fails half-way leaves its tables behind, and
every later `mlflow db upgrade` then fails on them. So what can be checked first is, under
the schema lock, before any migration runs:
- the recorded revision agrees with the tables present (else: half-migrated, say so);
- with binary logging on, the user may create the triggers MLflow's migrations create;
- an empty database gets a case-sensitive default collation before any table exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pymysql
from sqlalchemy.engine import make_url

from mlstack.core.errors import StartupError
from mlstack.tracking import database, schema_history
from mlstack.tracking.collation.catalog import COLLATION as CASE_SENSITIVE_COLLATION
from mlstack.tracking.collation.catalog import is_case_insensitive

log = logging.getLogger(__name__)

RECOVERY = 'see docs/operations.md, "Recovering a failed migration"'
NEED_SUPER_FOR_TRIGGER = 1419  # ER_BINLOG_CREATE_ROUTINE_NEED_SUPER
DB_ACCESS_DENIED = 1044
PROBE_TABLE = "mlstack_trigger_probe"
PROBE_TRIGGER = (
    "CREATE TRIGGER mlstack_trigger_probe_check BEFORE UPDATE ON mlstack_trigger_probe "
    "FOR EACH ROW SET NEW.id = OLD.id"
)
TRUST_FIX = (
    "set log_bin_trust_function_creators=1 (local stack: mysqld "
    "--log-bin-trust-function-creators=1; RDS: in the DB parameter group; "
    "or SET GLOBAL as an administrator), then start again"
)


@dataclass(frozen=True)
class Schema:
    """What the database holds, against what this image's MLflow expects."""

    database: str
    revision: str | None  # alembic_version's row; None when there is none
    tables: frozenset[str]  # every table in the database, MLflow's or not
    history: schema_history.TableHistory

    @property
    def head(self) -> str:
        return self.history.head

    @property
    def mlflow_tables(self) -> frozenset[str]:
        return self.tables & self.history.every_table

    @property
    def empty(self) -> bool:
        """No table yet (alembic's bookkeeping aside, as MLflow itself counts)."""
        return not {t for t in self.tables if not t.startswith("alembic_")} - {PROBE_TABLE}

    @property
    def current(self) -> bool:
        return self.revision == self.head

    @property
    def pending(self) -> int:
        """Migrations an upgrade would run."""
        return len(self.history.pending(self.revision))


def _fetch_one(cursor, sql: str, args: tuple = ()) -> tuple:
    cursor.execute(sql, args)
    return cursor.fetchone()


def read(uri: str, history: schema_history.TableHistory | None = None) -> Schema:
    """Read the recorded revision and the tables of the database in uri."""
    history = history or schema_history.load()
    connection = database.connect(uri)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
            )
            tables = frozenset(row[0] for row in cursor.fetchall())
            revision = None
            if "alembic_version" in tables:
                cursor.execute("SELECT version_num FROM alembic_version")
                rows = [row[0] for row in cursor.fetchall()]
                revision = rows[0] if len(rows) == 1 else None
            (name,) = _fetch_one(cursor, "SELECT DATABASE()")
    finally:
        connection.close()
    return Schema(name, revision, tables, history)


def _names(tables: set[str] | frozenset[str], most: int = 6) -> str:
    ordered = sorted(tables)
    shown = ", ".join(ordered[:most])
    return shown + (f" and {len(ordered) - most} more" if len(ordered) > most else "")


def check_consistent(schema: Schema) -> None:
    """Refuse a database whose tables disagree with its recorded revision (half-migrated)."""
    where = f"database {schema.database!r}"
    if schema.revision is None:
        present = schema.mlflow_tables
        # MLflow tables without a revision: a first start that failed before its first
        # migration finished. Exactly the initial tables is a pre-1.0 database MLflow upgrades.
        if present and present != schema.history.initial:
            raise StartupError(
                f"{where} is half-created: it has MLflow tables ({_names(present)}) but no "
                f"recorded schema revision (alembic_version); nothing was changed, {RECOVERY}"
            )
        return
    expected = schema.history.tables_at(schema.revision)
    if expected is None:
        raise StartupError(
            f"{where} is at schema revision {schema.revision}, which this image's MLflow does "
            "not know (a newer MLflow wrote it): run that MLflow's image, or restore a backup "
            "taken before it upgraded the database"
        )
    missing = expected - schema.tables
    extra = schema.mlflow_tables - expected
    if missing or extra:
        found = []
        if extra:
            found.append(f"tables of a later migration exist ({_names(extra)})")
        if missing:
            found.append(f"tables of this revision are missing ({_names(missing)})")
        raise StartupError(
            f"{where} is half-migrated: it records schema revision {schema.revision}, but "
            f"{' and '.join(found)}; nothing was changed, {RECOVERY}"
        )


def _migrations_create_triggers(schema: Schema) -> bool:
    """Whether a pending migration creates a trigger (1bd49d398cd23 in MLflow 3.17 does)."""
    return bool(schema.history.trigger_revisions & set(schema.history.pending(schema.revision)))


def _may_create_triggers(cursor) -> bool:
    """Try it: create and drop a trigger on a scratch table.

    With binary logging on and log_bin_trust_function_creators off, the server asks for a
    privilege instead (SUPER; which one has varied across MySQL versions, and RDS's master
    user has none): its own answer is the one that counts, whatever the grants say.
    """
    cursor.execute(f"DROP TABLE IF EXISTS `{PROBE_TABLE}`")
    cursor.execute(f"CREATE TABLE `{PROBE_TABLE}` (id INT)")
    try:
        cursor.execute(PROBE_TRIGGER)
        return True
    except pymysql.err.OperationalError as error:
        if error.args and error.args[0] == NEED_SUPER_FOR_TRIGGER:
            return False
        raise
    finally:
        cursor.execute(f"DROP TABLE IF EXISTS `{PROBE_TABLE}`")  # and its trigger


def check_trigger_privilege(uri: str, schema: Schema) -> None:
    """Refuse to migrate when a pending migration would stop at a trigger it may not create."""
    connection = database.connect(uri)
    try:
        with connection.cursor() as cursor:
            log_bin, trusted = _fetch_one(
                cursor, "SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators"
            )
            if not int(log_bin) or int(trusted) or not _migrations_create_triggers(schema):
                return
            if _may_create_triggers(cursor):
                return
    except pymysql.err.MySQLError as error:  # e.g. 1142: no TRIGGER privilege on the database
        raise StartupError(
            f"user {make_url(uri).username!r} may not create a trigger in database "
            f"{schema.database!r} ({error.args[-1]}): GRANT ALL ON `{schema.database}`.* to it"
        ) from None
    finally:
        connection.close()
    user = make_url(uri).username
    raise StartupError(
        f"binary logging is on and log_bin_trust_function_creators is off, so user {user!r} "
        "may not create the trigger MLflow's schema migration needs (error 1419, it has no "
        f"SUPER): {TRUST_FIX}; the database was left as it was"
    )


def _case_insensitive(charset: str, collation: str) -> bool:
    return charset != "utf8mb4" or is_case_insensitive(collation)


def use_case_sensitive_default(uri: str) -> None:
    """Give an empty database a case-sensitive default, so 'Loss' and 'loss' stay two keys.

    mysql:8.4 creates databases in utf8mb4_0900_ai_ci, where MLflow's primary keys would
    treat them as one (IntegrityError 1062 on the second). Tables take the database's
    default when created, so this must happen before the first one is.
    """
    connection = database.connect(uri)
    try:
        with connection.cursor() as cursor:
            name, charset, collation = _fetch_one(
                cursor,
                "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
                "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()",
            )
            (tables,) = _fetch_one(
                cursor,
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME NOT LIKE 'alembic\\_%%' AND TABLE_NAME <> %s",
                (PROBE_TABLE,),
            )
            if tables or not _case_insensitive(charset, collation):
                return
            log.info(
                "database %r defaults to %s (case-insensitive); setting its default to %s "
                "before any table is created",
                name,
                collation,
                CASE_SENSITIVE_COLLATION,
            )
            cursor.execute(
                f"ALTER DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE {CASE_SENSITIVE_COLLATION}"
            )
    except pymysql.err.OperationalError as error:
        if error.args and error.args[0] == DB_ACCESS_DENIED:
            raise StartupError(
                f"database {name!r} defaults to the case-insensitive collation {collation} and "
                f"user {make_url(uri).username!r} may not change it: ALTER DATABASE `{name}` "
                f"CHARACTER SET utf8mb4 COLLATE {CASE_SENSITIVE_COLLATION} as an administrator, "
                "then start again"
            ) from None
        raise
    finally:
        connection.close()


def log_plan(schema: Schema) -> None:
    """Say what the start-up is about to do to the schema (nothing, create, or upgrade)."""
    if schema.current:
        log.info("database schema is current (revision %s)", schema.head)
    elif schema.empty:
        log.info("creating MLflow's tables (schema revision %s)", schema.head)
    else:
        log.warning(
            "upgrading database %r from schema revision %s to %s (%d migrations); "
            "older MLflow versions cannot use it afterwards",
            schema.database,
            schema.revision or "none (pre-1.0 tables)",
            schema.head,
            schema.pending,
        )
