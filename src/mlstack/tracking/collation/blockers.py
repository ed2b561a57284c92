"""What would stop a conversion to utf8mb4_bin, found before anything changes.

- Collisions in unique keys. Case-insensitive -> case-sensitive only splits
  values apart, EXCEPT for trailing spaces: utf8mb4_0900_ai_ci (MySQL's default)
  and MariaDB's *_nopad_ci compare "lr" and "lr " as different, utf8mb4_bin pads
  them equal. Such rows are found by grouping each unique key as it will compare
  after the conversion.
- Index length: utf8mb4 takes 4 bytes a character; a table still in utf8mb3 or
  latin1 may hold an index that fits now and exceeds InnoDB's limit (3072 bytes,
  767 in the old COMPACT/REDUNDANT row formats) afterwards.
- Row size: VARCHAR columns of one row share 65,535 bytes.
- Foreign keys: a child row that matches its parent only case-insensitively
  ("Foo" -> "foo") would no longer match once the key is added back.
"""

from __future__ import annotations

import pymysql

from mlstack.tracking.collation.catalog import (
    CHARSET,
    COLLATION,
    Column,
    ForeignKey,
    Indexes,
    Table,
    quote,
    rows,
)

BYTES_PER_CHAR = 4
INDEX_LIMIT_BYTES = 3072  # InnoDB, whole index
# Each indexed column: 3072 bytes in the DYNAMIC / COMPRESSED row formats, 767 in older ones.
COLUMN_LIMIT_BYTES = {"dynamic": 3072, "compressed": 3072}
OLD_ROW_FORMAT_COLUMN_LIMIT = 767
ROW_LIMIT_BYTES = 65535
MAX_GROUPS_SHOWN = 10
# Bytes a non-string key column takes; only the sum against the limit matters.
FIXED_WIDTH = {"tinyint": 1, "smallint": 2, "int": 4, "bigint": 8, "float": 4, "double": 8}


def _key_bytes(column: Column, prefix: int | None) -> int:
    if column.collation is None:
        return FIXED_WIDTH.get(column.data_type, 8)
    return (prefix or column.max_chars or 0) * BYTES_PER_CHAR


def size_problems(
    tables: dict[str, Table], columns: dict[tuple[str, str], Column], indexes: Indexes
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


def collisions(
    connection: pymysql.Connection,
    tables: dict[str, Table],
    columns: dict[tuple[str, str], Column],
    indexes: Indexes,
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
            expression = quote(col)
            if column.collation is not None:
                expression = f"CONVERT({expression} USING {CHARSET}) COLLATE {COLLATION}"
                if prefix:
                    expression = f"LEFT({expression}, {int(prefix)})"
            expressions.append(expression)
        # Each stored variant once, compared as bytes (a _ci DISTINCT would fold them again).
        stored = ", ".join(quote(col) for col, _, _ in keyed)
        variants = (
            f"GROUP_CONCAT(DISTINCT CAST(CONCAT_WS(0x1F, {stored}) AS BINARY) SEPARATOR 0x00)"
        )
        groups = rows(
            connection,
            # Names come from information_schema and are quoted.
            f"SELECT COUNT(*), {variants} FROM {quote(table)} "  # noqa: S608
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


def _binary_equal(left: str, right: str) -> str:
    return (
        f"CONVERT({left} USING {CHARSET}) COLLATE {COLLATION} = "
        f"CONVERT({right} USING {CHARSET}) COLLATE {COLLATION}"
    )


def dangling(
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
            f"p.{quote(p)} = c.{quote(c)}"
            for c, p in zip(key.columns, key.parent_columns, strict=True)
        )
        differs = " OR ".join(
            f"NOT ({_binary_equal(f'p.{quote(p)}', f'c.{quote(c)}')})" for c, p in strings
        )
        ((count,),) = rows(
            connection,
            # The join uses the parent's index; only matched rows are compared as bytes.
            f"SELECT COUNT(*) FROM {quote(key.table)} c JOIN {quote(key.parent)} p "  # noqa: S608
            f"ON {join} WHERE {differs}",
        )
        if count:
            problems.append(
                f"{key.table}: {count} rows reference {key.parent} "
                f"({', '.join(key.parent_columns)}) only case-insensitively "
                f"(foreign key {key.name}): they would lose their parent"
            )
    return problems
