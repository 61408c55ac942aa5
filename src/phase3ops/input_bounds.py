"""The bounds every value from outside must fit before it reaches Firestore, a log line or SQL.

Messages, push bodies and files come from processes this project does not
control. A value the parser lets through and a later layer refuses (a
Firestore write, a Cloud Logging entry) fails on every redelivery instead
of once, at the parser, with a reason. So the parsers check here what the
layers behind them would refuse:

- Firestore: integers within int64; strings valid UTF-8 (a JSON `\\udc00`
  escape decodes to a lone surrogate, which cannot be encoded); maps and
  arrays nested at most 20 deep; no array directly inside an array; field
  names non-empty, not `__reserved__`, at most 1,500 bytes; document ids
  without `/`, not `.`/`..`, at most 1,500 bytes; a document at most 1 MiB
  and 40,000 index entries (bounded here by a size and a value count).
- Cloud Logging: an entry at most 256 KB (what a log line repeats of an
  input is capped, see `capped`).
- Python's own readers: JSON nested beyond the interpreter's recursion
  limit raises RecursionError, an integer of more than 4,300 digits
  ValueError; `load_json` turns both into `OutOfBounds`.
- Game dates: strict `YYYY-MM-DD` (`date.fromisoformat` also takes
  `20251101` and `2025-W45-6`) between the first NBA game and a year ahead.

Everything raises `OutOfBounds(reason, field)`; callers wrap it in their
own error type (BadMessage, BadPush, ...). The reasons quote at most a
capped excerpt of the offending value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FIRESTORE_MAX_DEPTH = 20
FIRESTORE_MAX_NAME_BYTES = 1500
MAX_VALUES = 10_000  # values in one stored tree: well under Firestore's 40,000 index entries per document
REASON_CHARS = 1000  # a stored or logged reason
EXCERPT_CHARS = 4000  # what a log line quotes of an input
STORED_PREFIX_BYTES = 64 * 1024  # what a stored rejected message keeps of its bytes (plus length and hash)
EARLIEST_GAME_DATE = dt.date(1946, 11, 1)  # the first NBA game
LATEST_GAME_DATE_AHEAD = dt.timedelta(days=400)  # schedules are published about a season ahead

_STRICT_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RESERVED_NAME = re.compile(r"__.*__", re.DOTALL)
_SAFE_ID = re.compile(r"[A-Za-z0-9_.:~@+=-]{1,500}")


class OutOfBounds(ValueError):
    """A value that will never fit, however often it is sent again."""

    def __init__(self, reason: str, field: str = ""):
        self.reason = capped(reason, REASON_CHARS)
        self.field = capped(field, 200)
        super().__init__(f"{self.field}: {self.reason}" if self.field else self.reason)


def capped(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def quoted(value: Any, limit: int = 80) -> str:
    """A short, printable excerpt of any value for a reason (never the whole of a hostile one)."""
    if isinstance(value, str):
        text = value[: limit + 1].encode("utf-8", "backslashreplace").decode("utf-8")
        return repr(capped(text, limit))
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'} of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        return f"an integer of {len(str(abs(value)))} digits"
    return capped(repr(value), limit)


def printable(text: str, limit: int) -> str:
    """A string safe to log or store as text: valid UTF-8, at most `limit` characters."""
    return capped(text.encode("utf-8", "backslashreplace").decode("utf-8"), limit)


def load_json(raw: bytes | str, field: str = "") -> Any:
    """`json.loads` that raises only `OutOfBounds` (never RecursionError or a bare ValueError)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError as exc:
        raise OutOfBounds(f"not JSON: not UTF-8 text ({exc.reason} at byte {exc.start})", field) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise OutOfBounds("JSON nested too deeply to read", field) from None
    except ValueError as exc:  # JSONDecodeError, and the 4,300-digit limit on integers
        raise OutOfBounds(f"not JSON: {capped(str(exc), 200)}", field) from None


def check_storable(value: Any, field: str, max_depth: int = FIRESTORE_MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """Raise OutOfBounds unless Firestore can store `value` as a field (and a log line can hold it).

    Walks without recursion, so any depth a JSON reader returned is safe to check."""
    stack: list[tuple[Any, str, int, bool]] = [(value, field, 0, False)]
    seen = 0
    while stack:
        item, path, depth, in_array = stack.pop()
        seen += 1
        if seen > max_values:
            raise OutOfBounds(f"holds more than {max_values} values", field)
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise OutOfBounds(f"{quoted(item)} is outside the 64-bit integer range", path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise OutOfBounds(f"{item!r} is not a finite number", path)
        elif isinstance(item, str):
            _check_utf8(item, path)
        elif isinstance(item, dict):
            if depth >= max_depth:
                raise OutOfBounds(f"nested more than {max_depth} levels deep", path)
            for key, child in item.items():
                _check_field_name(key, path)
                stack.append((child, f"{path}.{key}", depth + 1, False))
        elif isinstance(item, list):
            if in_array:
                raise OutOfBounds("an array directly inside an array (Firestore cannot store it)", path)
            if depth >= max_depth:
                raise OutOfBounds(f"nested more than {max_depth} levels deep", path)
            stack.extend((child, f"{path}[{i}]", depth + 1, True) for i, child in enumerate(item))
        else:
            raise OutOfBounds(f"a {type(item).__name__} is not a JSON value", path)


def _check_utf8(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise OutOfBounds(f"not valid UTF-8: a lone surrogate at character {exc.start}", path) from None


def _check_field_name(key: Any, path: str) -> None:
    if not isinstance(key, str) or not key:
        raise OutOfBounds("an empty field name", path)
    _check_utf8(key, f"{path}.<name>")
    if _RESERVED_NAME.fullmatch(key):
        raise OutOfBounds(f"field name {quoted(key)} is reserved (__name__ form)", path)
    if len(key.encode("utf-8")) > FIRESTORE_MAX_NAME_BYTES:
        raise OutOfBounds(
            f"a field name of {len(key.encode('utf-8'))} bytes (at most {FIRESTORE_MAX_NAME_BYTES})", path
        )


def check_size(value: Any, field: str, max_bytes: int) -> None:
    """Raise OutOfBounds when `value`, as JSON, exceeds `max_bytes` (call after check_storable)."""
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > max_bytes:
        raise OutOfBounds(f"{size} bytes; at most {max_bytes}", field)


def bounded_text(value: Any, field: str, max_chars: int, required: bool = False) -> str | None:
    """A string field: a str of valid UTF-8 within `max_chars`, or None when absent and optional."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise OutOfBounds(f"must be a{' non-empty' if required else ''} string, got {quoted(value)}", field)
    _check_utf8(value, field)
    if len(value) > max_chars:
        raise OutOfBounds(f"{len(value)} characters; at most {max_chars}", field)
    return value


def game_date(value: Any, field: str = "game_date", today: dt.date | None = None) -> dt.date:
    """A strict `YYYY-MM-DD` calendar date between the first NBA game and `LATEST_GAME_DATE_AHEAD` after today."""
    if not isinstance(value, str) or not _STRICT_DATE.fullmatch(value):
        raise OutOfBounds(f"{quoted(value)} is not a YYYY-MM-DD date", field)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise OutOfBounds(f"{value!r} is not a calendar date", field) from None
    latest = (today or dt.datetime.now(dt.UTC).date()) + LATEST_GAME_DATE_AHEAD
    if not EARLIEST_GAME_DATE <= day <= latest:
        raise OutOfBounds(f"{value} is outside the plausible game dates {EARLIEST_GAME_DATE}..{latest}", field)
    return day


def is_document_id(text: Any) -> bool:
    """Whether `text` may be used as a Firestore document id as it is (and reads well in the console)."""
    return (
        isinstance(text, str)
        and bool(_SAFE_ID.fullmatch(text))
        and text not in (".", "..")
        and not _RESERVED_NAME.fullmatch(text)
    )


def document_id(text: str, prefix: str = "") -> str:
    """`prefix + text` when that is a safe document id, else `prefix + "sha256-" + its hash`: stable, so a
    redelivery lands on the same document."""
    candidate = f"{prefix}{text}"
    if is_document_id(candidate):
        return candidate
    return f"{prefix}sha256-{sha256_hex(text.encode('utf-8', 'surrogatepass'))}"


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def stored_bytes(raw: bytes, limit: int = STORED_PREFIX_BYTES) -> dict[str, Any]:
    """What a stored rejected message keeps of its bytes: a prefix, the full length and a hash,
    so a document never outgrows Firestore's 1 MiB and the original can still be matched."""
    return {
        "data": bytes(raw[:limit]),
        "data_length": len(raw),
        "data_sha256": sha256_hex(bytes(raw)),
        "data_truncated": len(raw) > limit,
    }
