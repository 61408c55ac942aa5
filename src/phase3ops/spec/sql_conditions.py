"""Boolean SQL conditions written in a spec (a data gate's `valid` and `population`).

A condition is operator config that ends up inside a warehouse query, so it
is held to what it may be: one boolean expression in BigQuery's dialect over
the named table's own columns. No statement, no subquery, no other table. A
condition that is not is refused at load with the reason, so `validate`
reports it at its file:line instead of the orchestrator failing on a ready
date.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlglot
from sqlglot import exp

_BOOLEAN_ROOTS = (exp.Connector, exp.Not, exp.Predicate, exp.Paren, exp.Boolean, exp.Column)


def condition_problem(text: str, columns: Collection[str]) -> str | None:
    """Why `text` is not a boolean condition over `columns`; None when it is one."""
    try:
        parsed = sqlglot.parse_one(text, read="bigquery")
    except sqlglot.errors.ParseError as exc:
        reason = str(exc).splitlines()[0]
        return f"not a SQL expression: {reason}"
    if parsed is None:
        return "empty"
    if parsed.find(exp.Select, exp.Subquery, exp.Query) is not None:
        return "must be an expression over the table's columns, not a query or a subquery"
    if not isinstance(parsed, _BOOLEAN_ROOTS):
        return f"must be a boolean condition (a comparison, IS [NOT] NULL, AND/OR/NOT, a BOOL column), not {parsed.key}"
    named = {column.name for column in parsed.find_all(exp.Column)}
    qualified = sorted(column.sql() for column in parsed.find_all(exp.Column) if column.table)
    if qualified:
        return f"name the table's columns without a table: {', '.join(qualified)}"
    unknown = sorted(named - set(columns))
    if unknown:
        return f"names columns the table does not have: {', '.join(unknown)} (it has {', '.join(columns)})"
    return None
