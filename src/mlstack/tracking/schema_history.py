"""Which tables MLflow's schema has at each migration revision, and which revisions create
triggers.

Tables found by replaying MLflow's own migrations on a scratch SQLite database, as MLflow creates
a new database (its initial tables, then every migration in order), and recording the
tables after each revision. The image build runs it once and keeps the result:

    python schema_history.py /opt/mlstack/schema-history.json

Standalone on purpose (no mlstack.tracking import): the build stage runs it with only this
file copied, so the replay reruns only when MLflow or this file changes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HISTORY_FILE = "schema-history.json"
BOOKKEEPING_PREFIX = "alembic_"  # alembic_version: the revision record, not a schema table
CREATE_TRIGGER = re.compile(r"CREATE\s+TRIGGER", re.IGNORECASE)


@dataclass(frozen=True)
class TableHistory:
    """The tables at each revision, oldest first; `initial` is before the first migration."""

    initial: frozenset[str]
    revisions: tuple[tuple[str, frozenset[str]], ...]
    # Revisions whose script creates a trigger on some database (1bd49d398cd23 on MySQL).
    trigger_revisions: frozenset[str] = frozenset()

    @property
    def head(self) -> str:
        return self.revisions[-1][0]

    @property
    def every_table(self) -> frozenset[str]:
        """Every table any revision of MLflow's schema has had."""
        return self.initial.union(*(tables for _, tables in self.revisions))

    def tables_at(self, revision: str) -> frozenset[str] | None:
        """The tables a database recorded at `revision` has; None for an unknown revision."""
        return dict(self.revisions).get(revision)

    def position(self, revision: str | None) -> int:
        """How many migrations a database at `revision` has had (0 for none)."""
        names = [name for name, _ in self.revisions]
        return names.index(revision) + 1 if revision in names else 0

    def pending(self, revision: str | None) -> list[str]:
        """The revisions an upgrade from `revision` runs, in order."""
        return [name for name, _ in self.revisions[self.position(revision) :]]


def _schema_tables(connection) -> frozenset[str]:
    import sqlalchemy as sa

    names = sa.inspect(connection).get_table_names()
    return frozenset(name for name in names if not name.startswith(BOOKKEEPING_PREFIX))


def replay() -> TableHistory:
    """Replay MLflow's migrations on a scratch SQLite database (about 10 s)."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/replay.db"
        engine = sa.create_engine(url)
        config = _get_alembic_config(url)
        script = ScriptDirectory.from_config(config)
        order = [rev.revision for rev in script.walk_revisions("base", "heads")][::-1]
        # What mlflow.store.db.utils._initialize_tables does: initial tables, then migrations.
        InitialBase.metadata.create_all(engine)
        revisions = []
        triggers = {
            name
            for name in order
            if CREATE_TRIGGER.search(Path(script.get_revision(name).path).read_text())
        }
        with engine.begin() as connection:
            initial = _schema_tables(connection)
            config.attributes["connection"] = connection
            for revision in order:
                command.upgrade(config, revision)
                revisions.append((revision, _schema_tables(connection)))
        engine.dispose()
    return TableHistory(initial, tuple(revisions), frozenset(triggers))


def save(history: TableHistory, path: Path) -> None:
    document = {
        "initial": sorted(history.initial),
        "revisions": [[name, sorted(tables)] for name, tables in history.revisions],
        "trigger_revisions": sorted(history.trigger_revisions),
    }
    path.write_text(json.dumps(document, indent=1) + "\n")


def default_path() -> Path:
    """Where the image keeps the history: /opt/mlstack/schema-history.json, beside src/mlstack.

    A function, not a constant: at build time this file runs alone from /tmp, which has no
    such parents.
    """
    return Path(__file__).resolve().parents[3] / HISTORY_FILE


def load(path: Path | None = None) -> TableHistory:
    """The history the image build recorded; replayed here when there is none (tests)."""
    path = path or default_path()
    if not path.exists():
        return replay()
    document = json.loads(path.read_text())
    return TableHistory(
        initial=frozenset(document["initial"]),
        revisions=tuple((name, frozenset(tables)) for name, tables in document["revisions"]),
        trigger_revisions=frozenset(document["trigger_revisions"]),
    )


if __name__ == "__main__":
    save(replay(), Path(sys.argv[1]))
