"""Choose the warehouse by configuration, not code: $PHASE3OPS_WAREHOUSE.

- `duckdb` (default): `$PHASE3OPS_DATA_DIR/warehouse.duckdb` (data dir
  defaults to `.phase3ops/data` under the working directory);
- `duckdb:/path/to/file.duckdb`: that file;
- `bigquery`: BigQuery in $GOOGLE_CLOUD_PROJECT, datasets created in
  $PHASE3OPS_BIGQUERY_LOCATION (default us-west2) when missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from phase3ops import cloud
from phase3ops.cloud import SettingError
from phase3ops.warehouse.port import Warehouse

WAREHOUSE_ENV = "PHASE3OPS_WAREHOUSE"
DATA_DIR_ENV = "PHASE3OPS_DATA_DIR"
DEFAULT_DATA_DIR = Path(".phase3ops/data")


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def warehouse_from_environment(setting: str | None = None) -> Warehouse:
    value = (setting if setting is not None else os.environ.get(WAREHOUSE_ENV, "")).strip() or "duckdb"
    if value == "duckdb":
        from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(data_dir() / "warehouse.duckdb")
    if value.startswith("duckdb:"):
        from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

        path = value.removeprefix("duckdb:").removeprefix("//")
        if not path:
            raise SettingError(f"{WAREHOUSE_ENV}={value!r}: give a file after 'duckdb:'")
        return DuckDBWarehouse(Path(path))
    if value == "bigquery":
        from google.cloud import bigquery

        from phase3ops.warehouse.bigquery_warehouse import BigQueryWarehouse

        location = os.environ.get("PHASE3OPS_BIGQUERY_LOCATION", "us-west2")
        return BigQueryWarehouse(bigquery.Client(project=cloud.project_id()), location=location)
    raise SettingError(f"{WAREHOUSE_ENV}={value!r} is not one of: duckdb, duckdb:<file>, bigquery")
