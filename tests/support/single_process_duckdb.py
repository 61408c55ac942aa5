"""The real DuckDB warehouse, for a file no other process opens while the test runs.

`DuckDBWarehouse` opens a fresh connection per transaction so that the local
environment's processes can share one file; opening the file costs ~20 ms,
which in-process tests pay thousands of times. One idle connection held for
the warehouse's life keeps DuckDB's database instance loaded, so each
transaction's own connection (same code path, same transactions) opens in
~2 ms. DuckDB lets one process hold a file: never use this where a
subprocess reads or writes the same file.
"""

from __future__ import annotations

import os

import duckdb

from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse


class SingleProcessDuckDB(DuckDBWarehouse):
    def __init__(self, path: str | os.PathLike[str], retry_seconds: float = 60.0) -> None:
        super().__init__(path, retry_seconds)
        self._held = duckdb.connect(str(self.path))

    def close(self) -> None:
        self._held.close()
