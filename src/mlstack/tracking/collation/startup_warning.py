"""The tracking server's one warning at start-up about tables that fold case."""

from __future__ import annotations

import logging

import pymysql
from sqlalchemy.engine import make_url

from mlstack.tracking import database
from mlstack.tracking.collation import catalog
from mlstack.tracking.config import Settings

log = logging.getLogger(__name__)

CONVERT_HINT = (
    "convert them with `python -m mlstack.tracking.collation convert` in the tracking-server "
    "image (local stack: `make local-convert-collation`), after a backup"
)


def warn_if_case_insensitive(settings: Settings) -> None:
    """At start-up: one warning naming the databases whose tables fold case, and the fix.

    Never stops the server: a database that cannot be read here fails later, more clearly.
    """
    uris = [settings.backend_store_uri]
    if settings.auth is not None:
        uris.append(settings.auth.database_uri)
    found = []
    for uri in uris:
        name = make_url(uri).database
        try:
            connection = database.connect(uri)
            try:
                tables = catalog.tables(connection, name).values()
            finally:
                connection.close()
        except pymysql.err.MySQLError as error:
            log.warning("could not read the collations of database %s: %s", name, error)
            continue
        folding = [t for t in tables if t.case_insensitive]
        if folding:
            folds = {c for t in folding for c in t.collations if catalog.is_case_insensitive(c)}
            found.append(f"{name} ({len(folding)} tables, {', '.join(sorted(folds))})")
    if found:
        log.warning(
            "case-insensitive collation in database %s: names that differ only in case "
            "collide (log_metric('Loss') then 'loss' fails); %s",
            "; ".join(found),
            CONVERT_HINT,
        )
