"""The local Phase 4 stand-in enforces the precompute service's /process contract and counts what it accepted."""

from __future__ import annotations

import base64
import json

import pytest

from phase3ops.local.phase4_standin import create_app


def push(body: dict | bytes, **attributes: str) -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"message": {"data": base64.b64encode(data).decode(), "messageId": "m-1", "attributes": attributes}, "subscription": "s"}


GOOD = {
    "source_table": "player_game_summary",
    "analysis_date": "2026-11-28",
    "game_date": "2026-11-28",
    "success": True,
    "correlation_id": "corr-1",
    "trigger_source": "orchestrator",
    "triggered_by": "phase3_to_phase4_orchestrator",
    "trigger_id": "nba-phase3-to-phase4:2026-11-28:player_game_summary",
}


@pytest.fixture
def client(tmp_path):
    app = create_app(tmp_path / "ledger.jsonl")
    return app.test_client()


def test_a_per_table_trigger_is_accepted_and_counted(client):
    assert client.post("/process", json=push(GOOD)).status_code == 200
    assert client.post("/process", json=push(GOOD)).status_code == 200  # a duplicate is accepted too: and shows as 2
    assert client.get("/accepted").get_json() == [{"game_date": "2026-11-28", "source_table": "player_game_summary", "count": 2}]


@pytest.mark.parametrize(
    "body, field",
    [
        ({k: v for k, v in GOOD.items() if k != "source_table"}, "source_table"),  # the per-date form: Phase 4 answers 400
        ({**GOOD, "analysis_date": "28/11/2026"}, "analysis_date"),
        ({k: v for k, v in GOOD.items() if k != "analysis_date"} | {"game_date": "soon"}, "game_date"),
        ({**GOOD, "success": "yes"}, "success"),
        ({**GOOD, "triggered_by": 7}, "triggered_by"),
        (b"not json", "message.data"),
    ],
)
def test_what_phase4_refuses(client, body, field):
    response = client.post("/process", json=push(body))
    assert response.status_code == 400 and response.get_json()["field"] == field
    assert client.get("/accepted").get_json() == []


def test_an_envelope_without_a_message(client):
    assert client.post("/process", json={"nope": 1}).status_code == 400
