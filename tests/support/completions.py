"""Completion messages as the analytics service publishes them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any


def completion(processor: str, game_date: dt.date | str, status: str = "success", **overrides: Any) -> dict[str, Any]:
    table = overrides.pop("output_table", processor if "Processor" not in processor else None)
    message = {
        "processor_name": processor,
        "game_date": str(game_date),
        "status": status,
        "execution_id": overrides.pop("execution_id", f"exec-{uuid.uuid4().hex[:10]}"),
        "correlation_id": overrides.pop("correlation_id", "corr-test"),
        "output_table": table or _table_for_class(processor),
        "record_count": overrides.pop("record_count", 10),
    }
    message.update(overrides)
    return message


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode("utf-8")


def _table_for_class(class_name: str) -> str:
    import re

    base = re.sub(r"(Async)?Processor$", "", class_name)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()
