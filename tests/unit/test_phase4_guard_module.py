"""The Phase 4 guard is one file Phase 4's owners can copy: it imports nothing else from this project."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

from phase3ops import phase4_guard
from phase3ops.phase4_guard import TriggerKey, trigger_key


def test_the_guard_imports_only_the_standard_library_flask_and_google_clients():
    tree = ast.parse(Path(phase4_guard.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "phase3ops" not in imported
    assert imported <= {
        "__future__",
        "base64",
        "binascii",
        "collections",
        "datetime",
        "enum",
        "functools",
        "hashlib",
        "json",
        "logging",
        "threading",
        "time",
        "dataclasses",
        "typing",
        "flask",
        "google",
    }


def envelope(body, **attributes) -> dict:
    data = base64.b64encode(json.dumps(body).encode()).decode()
    return {"message": {"data": data, "messageId": "42", "attributes": attributes}}


def test_the_key_comes_from_the_body_or_else_the_attributes():
    body = {"trigger_id": "p:2026-11-28:t", "source_table": "t", "analysis_date": "2026-11-28"}
    assert trigger_key(envelope(body)) == (TriggerKey("p:2026-11-28:t", "t", "2026-11-28"), "42")
    assert trigger_key(envelope({"source_table": "t"}, trigger_id="p:x:t"))[0] == TriggerKey("p:x:t", "t", None)
    assert trigger_key(envelope({"source_table": "t"})) == (None, "42")  # the reference's messages carry no trigger_id
    assert trigger_key({"message": "nope"}) == (None, None)


def test_any_trigger_id_makes_a_valid_document_id():
    ids = {
        TriggerKey("a/b" * 2000, "t").document_id,
        TriggerKey("__name__", "t").document_id,
        TriggerKey("..", "t").document_id,
    }
    assert len(ids) == 3 and all(len(i) == 64 and "/" not in i for i in ids)


def test_a_hostile_envelope_yields_no_key_and_never_raises():
    """The guard sits in front of Phase 4's handler: whatever arrives, it must let the handler answer."""
    deep = {"message": {"data": base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode(), "messageId": "1"}}
    assert trigger_key(deep) == (None, "1")
    too_long = envelope({"trigger_id": "p:" + "x" * 5000, "source_table": "t"})
    surrogate = {
        "message": {
            "data": base64.b64encode(b'{"trigger_id": "p:\\udc00", "source_table": "t"}').decode(),
            "messageId": "2",
        }
    }
    assert trigger_key(too_long)[0] is None and trigger_key(surrogate)[0] is None
    assert trigger_key({"message": {"data": "x", "messageId": "\udc00"}}) == (None, None)
