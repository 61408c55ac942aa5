"""SQL written once, in BigQuery's dialect, for both warehouse adapters.

The BigQuery adapter sends these statements as they are; the DuckDB adapter
transpiles them with SQLGlot. Table references are `dataset.table`; the
BigQuery adapter qualifies them with its project.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

import sqlglot

from phase3ops.spec.pipeline import PARTITION_COLUMN, TableSpec

# Whole-string matches only: `$` would also match before a final newline, letting "name\n" through.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote(*parts: str) -> str:
    for part in parts:
        if not isinstance(part, str) or not _IDENTIFIER.fullmatch(part):
            raise ValueError(f"not a safe identifier: {part!r}")
    return "`" + ".".join(parts) + "`"


def string_literal(value: str) -> str:
    """A BigQuery string literal; quotes and backslashes escaped, control characters refused."""
    if any(ord(ch) < 32 for ch in value):
        raise ValueError(f"not a safe string literal: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def date_literal(value: dt.date) -> str:
    # A date object (never a string) renders only digits and dashes: safe to inline.
    return f"DATE '{dt.date.fromisoformat(value.isoformat()).isoformat()}'"


def create_table(table: TableSpec, partitioned: bool = True) -> str:
    """Partitioned by game_date and clustered by the primary key, so a day's
    MERGE and duplicate check scan (and lock) one partition."""
    columns = ",\n  ".join(f"{name} {kind}" for name, kind in table.columns)
    statement = f"CREATE TABLE IF NOT EXISTS {quote(table.dataset, table.name)} (\n  {columns}\n)"
    if partitioned:
        # BigQuery clusters by at most four columns.
        clustering = ", ".join([k for k in table.primary_key if k != PARTITION_COLUMN][:4])
        statement += f"\nPARTITION BY {PARTITION_COLUMN}"
        if clustering:
            statement += f"\nCLUSTER BY {clustering}"
    return statement


# A `dataset.table` reference, or a stretch of SQL in which a backticked name is no reference: a
# string literal (triple-quoted, or with backslash escapes; an unclosed one runs to the end), a
# comment, another quoted identifier. One left-to-right pass, so a quote inside a comment or a
# `--` inside a string is read as what it is.
_TABLE_REFERENCE = re.compile(
    r"`(?P<dataset>[A-Za-z_][A-Za-z0-9_]*)\.(?P<table>[A-Za-z_][A-Za-z0-9_]*)`"
    r"|'''(?:[^'\\]|\\.|'(?!''))*(?:'''|\Z)"
    r'|"""(?:[^"\\]|\\.|"(?!""))*(?:"""|\Z)'
    r"|'(?:[^'\\]|\\.)*(?:'|\Z)"
    r'|"(?:[^"\\]|\\.)*(?:"|\Z)'
    r"|--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z)"
    r"|`[^`]*`?",
    re.DOTALL,
)


def qualify_tables(statement: str, project: str) -> str:
    """`dataset.table` -> `project.dataset.table` (BigQuery needs the project; DuckDB has none).

    Only the references in the SQL itself: never text inside a string literal or a comment."""
    return _TABLE_REFERENCE.sub(
        lambda m: f"`{project}.{m['dataset']}.{m['table']}`" if m["table"] else m.group(), statement
    )


def merge_partition(table: TableSpec, staging: str, game_date: dt.date) -> str:
    """Replace one game date of `table` with the staged rows, atomically, in one statement.

    - The source keeps one row per primary key, the newest by processed_at:
      even a staging table with duplicates cannot put two rows in the table.
    - Rows of the date that the new run no longer produces are deleted by the
      same statement (WHEN NOT MATCHED BY SOURCE); there is no separate
      DELETE + INSERT that a concurrent run could interleave with.
    - Every reference to the target carries a constant game_date filter so
      BigQuery prunes the partitions it scans and locks.
    """
    target = quote(table.dataset, table.name)
    source = quote(table.dataset, staging)
    day = date_literal(game_date)
    key = ", ".join(table.primary_key)
    order = table.freshness_column
    on = " AND ".join(f"T.{k} = S.{k}" for k in table.primary_key)
    updates = ", ".join(f"{c} = S.{c}" for c in table.column_names if c not in table.primary_key)
    insert_columns = ", ".join(table.column_names)
    insert_values = ", ".join(f"S.{c}" for c in table.column_names)
    return (
        f"MERGE {target} T\n"
        f"USING (\n"
        f"  SELECT * FROM {source}\n"
        f"  WHERE {PARTITION_COLUMN} = {day}\n"
        f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {order} DESC) = 1\n"
        f") S\n"
        f"ON {on} AND T.{PARTITION_COLUMN} = {day}\n"
        f"WHEN MATCHED THEN UPDATE SET {updates}\n"
        f"WHEN NOT MATCHED BY TARGET THEN INSERT ({insert_columns}) VALUES ({insert_values})\n"
        f"WHEN NOT MATCHED BY SOURCE AND T.{PARTITION_COLUMN} = {day} THEN DELETE"
    )


def advance_fence(
    fences: TableSpec, table: TableSpec, game_date: dt.date, token: int, owner: str, execution_id: str
) -> str:
    """Record that `token` writes (table, date), unless a newer token already did.

    It changes exactly one row when the write may go ahead (the fence is
    created, or moved to `token` from an older or equal one) and none when a
    newer token wrote: the caller refuses the write on a count of 0. One
    statement decides and advances, so nothing can write between the check
    and the advance. The fence never moves backwards.
    """
    day = date_literal(game_date)
    return (
        f"MERGE {quote(fences.dataset, fences.name)} T\n"
        f"USING (SELECT {string_literal(table.qualified_name)} AS table_name, {day} AS {PARTITION_COLUMN}, "
        f"{int(token)} AS token, {string_literal(owner)} AS owner, {string_literal(execution_id)} AS execution_id, "
        f"CURRENT_TIMESTAMP() AS written_at) S\n"
        f"ON T.table_name = S.table_name AND T.{PARTITION_COLUMN} = S.{PARTITION_COLUMN} AND T.{PARTITION_COLUMN} = {day}\n"
        f"WHEN MATCHED AND T.token <= S.token THEN UPDATE SET token = S.token, owner = S.owner, "
        f"execution_id = S.execution_id, written_at = S.written_at\n"
        f"WHEN NOT MATCHED BY TARGET THEN INSERT (table_name, {PARTITION_COLUMN}, token, owner, execution_id, written_at) "
        f"VALUES (S.table_name, S.{PARTITION_COLUMN}, S.token, S.owner, S.execution_id, S.written_at)"
    )


def refuse_if_nothing_changed(refusal: str) -> str:
    """BigQuery scripting: end the script with `refusal` when the previous DML changed no row
    (`@@row_count`). Inside a transaction the unhandled error rolls everything back."""
    return f"IF @@row_count = 0 THEN RAISE USING MESSAGE = {string_literal(refusal)}; END IF"


def fenced_transaction(fence_statement: str, statements: list[str], refusal: str) -> str:
    """One BigQuery multi-statement transaction of the statements BigQuery supports in one (DML)
    and procedural IF/RAISE: the fence's MERGE, the refusal when it changed nothing, the work."""
    body = ";\n".join([fence_statement, refuse_if_nothing_changed(refusal), *statements])
    return f"BEGIN TRANSACTION;\n{body};\nCOMMIT TRANSACTION;"


def current_fence(fences: TableSpec, table: TableSpec, game_date: dt.date) -> str:
    """Who holds the fence of (table, date): named in a refusal."""
    return (
        f"SELECT token, owner, execution_id FROM {quote(fences.dataset, fences.name)}\n"
        f"WHERE table_name = {string_literal(table.qualified_name)} AND {PARTITION_COLUMN} = {date_literal(game_date)}"
    )


def insert_from(table: TableSpec, staging: str) -> str:
    columns = ", ".join(table.column_names)
    return f"INSERT INTO {quote(table.dataset, table.name)} ({columns}) SELECT {columns} FROM {quote(table.dataset, staging)}"


def duplicate_counts(table: TableSpec, first: dt.date, last: dt.date) -> str:
    """Per game date: how many rows exceed one per primary key (0 when clean)."""
    key = ", ".join(table.primary_key)
    return (
        f"SELECT {PARTITION_COLUMN}, SUM(n - 1) AS duplicates FROM (\n"
        f"  SELECT {key}, COUNT(*) AS n FROM {quote(table.dataset, table.name)}\n"
        f"  WHERE {PARTITION_COLUMN} BETWEEN {date_literal(first)} AND {date_literal(last)}\n"
        f"  GROUP BY {key}\n"
        f") GROUP BY {PARTITION_COLUMN} ORDER BY {PARTITION_COLUMN}"
    )


def row_counts(table: TableSpec, first: dt.date, last: dt.date) -> str:
    return (
        f"SELECT {PARTITION_COLUMN}, COUNT(*) AS row_count FROM {quote(table.dataset, table.name)}\n"
        f"WHERE {PARTITION_COLUMN} BETWEEN {date_literal(first)} AND {date_literal(last)}\n"
        f"GROUP BY {PARTITION_COLUMN} ORDER BY {PARTITION_COLUMN}"
    )


_DATE_LITERAL = re.compile(r"DATE '(\d{4}-\d{2}-\d{2})'")


def to_duckdb(bigquery_sql: str) -> str:
    """One BigQuery statement in DuckDB's dialect. The same statement for another game date is the
    same translation: dates are taken out before SQLGlot sees the text (a cached translation per
    statement shape, not per date), then put back."""
    dates = list(dict.fromkeys(_DATE_LITERAL.findall(bigquery_sql)))
    placeholders = {date: f"{index + 1:04d}-01-01" for index, date in enumerate(dates)}
    template = _DATE_LITERAL.sub(lambda m: f"DATE '{placeholders[m.group(1)]}'", bigquery_sql)
    translated = _transpiled(template)
    for date, placeholder in placeholders.items():
        translated = translated.replace(f"'{placeholder}'", f"'{date}'")
    return translated


@lru_cache(maxsize=512)
def _transpiled(bigquery_sql: str) -> str:
    statements = sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")
    if len(statements) != 1:
        raise ValueError(f"expected one statement, got {len(statements)}")
    return statements[0]
