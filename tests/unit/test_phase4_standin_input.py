"""The Phase 4 stand-in against hostile pushes and a damaged ledger, with an in-memory Firestore for its guard.

A message that can never be valid is refused with a reason kept in the
ledger (status 400, as Phase 4 answers it) and acknowledged to Pub/Sub
(2xx), so the emulator does not redeliver it forever; whatever a push holds,
the stand-in never answers 500, and `GET /accepted` (and `local run-day`,
which reads the same ledger) keeps working whatever a ledger line holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json

import pytest
from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.transforms import Increment, Sentinel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phase3ops.local.phase4_standin import create_app, ledger_entries, tally
from tests.support.phase4 import TRIGGER_BODY

BODY = TRIGGER_BODY
REFERENCE_BODY = {k: v for k, v in BODY.items() if k != "trigger_id"}  # the pipeline this replaces: unguarded


# -- an in-memory Firestore: just what phase4_guard.TriggerGuard calls ------------------------


class _Snapshot:
    def __init__(self, data, update_time):
        self.exists = data is not None
        self._data = dict(data) if data is not None else None
        self.update_time = update_time
        self.read_time = dt.datetime.now(dt.UTC)

    def to_dict(self):
        return dict(self._data) if self._data is not None else None


class _Written:
    def __init__(self, update_time):
        self.update_time = update_time


class _Document:
    def __init__(self, db: FakeFirestore, path: str):
        self._db, self._path = db, path

    def _resolve(self, values: dict, current: dict) -> dict:
        resolved = {}
        for name, value in values.items():
            if isinstance(value, Sentinel):  # SERVER_TIMESTAMP, the only sentinel the guard writes
                value = dt.datetime.now(dt.UTC)
            elif isinstance(value, Increment):
                value = current.get(name, 0) + value.value
            resolved[name] = value
        return resolved

    def create(self, data):
        if self._path in self._db.documents:
            raise gexc.AlreadyExists(self._path)
        return self._write({**self._resolve(data, {})})

    def get(self):
        data, update_time = self._db.documents.get(self._path, (None, None))
        return _Snapshot(data, update_time)

    def _check(self, option):
        if self._path not in self._db.documents:
            raise gexc.NotFound(self._path)
        if option is not None and self._db.documents[self._path][1] != option:
            raise gexc.FailedPrecondition(self._path)

    def update(self, changes, option=None):
        self._check(option)
        current = self._db.documents[self._path][0]
        return self._write({**current, **self._resolve(changes, current)})

    def delete(self, option=None):
        self._check(option)
        del self._db.documents[self._path]

    def _write(self, data):
        update_time = next(self._db.versions)
        self._db.documents[self._path] = (data, update_time)
        return _Written(update_time)


class _Collection:
    def __init__(self, db, name):
        self._db, self._name = db, name

    def document(self, document_id):
        return _Document(self._db, f"{self._name}/{document_id}")


class FakeFirestore:
    def __init__(self):
        self.documents: dict[str, tuple[dict, int]] = {}
        self.versions = itertools.count(1)

    def collection(self, name):
        return _Collection(self, name)

    def write_option(self, last_update_time):
        return last_update_time


# -- helpers ----------------------------------------------------------------------------------


def push(body, message_id: str = "m-1", **attributes) -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": message_id, "attributes": attributes},
        "subscription": "s",
    }


@pytest.fixture
def standin(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    firestore = FakeFirestore()
    return create_app(ledger, firestore_client=firestore).test_client(), ledger, firestore


def assert_refused(response, field: str) -> dict:
    """Acknowledged to Pub/Sub, and refused as Phase 4 would refuse it."""
    assert response.status_code == 200, response.get_data()[:300]
    answer = response.get_json()
    assert (answer["status"], answer["phase4_status"], answer["field"]) == ("refused", 400, field), answer
    return answer


def last_entry(ledger) -> dict:
    return json.loads(ledger.read_bytes().splitlines()[-1])


# -- object source_table ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [REFERENCE_BODY, BODY], ids=["unguarded", "guarded"])
def test_an_object_source_table_is_refused_and_accepted_keeps_answering(standin, body):
    client, ledger, _ = standin
    response = client.post("/process", json=push({**body, "source_table": {"name": "player_game_summary"}}))
    assert_refused(response, "source_table")
    entry = last_entry(ledger)
    assert entry["status"] == 400 and entry["source_table"] is None and "JSON object" in entry["refusal"]["reason"]
    assert client.get("/accepted").status_code == 200
    assert client.get("/accepted").get_json() == []
    assert client.post("/process", json=push(body, "m-2")).get_json()["status"] == "accepted"
    assert client.get("/accepted").get_json() == [
        {"game_date": "2026-11-28", "source_table": "player_game_summary", "received": 1, "work_started": 1}
    ]


def test_a_refused_trigger_leaves_no_marker_so_its_corrected_message_still_runs(standin):
    """The refusal is turned into a 2xx outside the guard: the guard saw the 400 and dropped its marker."""
    client, ledger, firestore = standin
    assert_refused(client.post("/process", json=push({**BODY, "success": "yes"}, "m-1")), "success")
    assert firestore.documents == {}
    assert client.post("/process", json=push(BODY, "m-2")).get_json()["status"] == "accepted"
    assert tally(ledger)[("2026-11-28", "player_game_summary")].work_started == 1


# -- a damaged ledger -------------------------------------------------------------------------


def test_a_ledger_with_corrupt_and_hostile_lines_still_tallies(standin):
    client, ledger, _ = standin
    good = {
        "game_date": "2026-11-28",
        "source_table": "t",
        "trigger_id": "x",
        "message_id": "1",
        "status": 200,
        "verdict": "accepted",
        "work_started": True,
        "follow_up": False,
        "received_at": "2026-11-28T00:00:00+00:00",
    }
    lines = [
        json.dumps(good).encode(),
        b"not json",
        b'{"game_date": "2026-11-28", "source_table": {"x": 1}, "status": 200, "work_started": true}',  # what the old stand-in wrote
        b'{"game_date": ["2026-11-28"], "source_table": "t", "status": 200, "work_started": true}',
        b"[1, 2]",
        b'{"game_date": "2026-11-28", "source_table": "t", "status": "200", "work_started": true}',
        b'{"game_date": "2026-11-28", "source_table": "t", "status": 200, "work_started": "yes"}',
        b"[" * 100_000,
        b"\xff\xfe" + json.dumps(good).encode(),
        b'{"game_date": "2026-11-28", "source_table": "t", "status": 1' + b"0" * 5000 + b', "work_started": true}',
        json.dumps(good)[: len(json.dumps(good)) // 2].encode(),  # a line cut short by a crash
        json.dumps(good).encode(),
    ]
    ledger.write_bytes(b"\n".join(lines) + b"\n")
    assert {key: (t.received, t.work_started) for key, t in tally(ledger).items()} == {("2026-11-28", "t"): (2, 2)}
    assert all(isinstance(e["source_table"], (str, type(None))) for e in ledger_entries(ledger))
    response = client.get("/accepted")
    assert response.status_code == 200
    assert response.get_json() == [{"game_date": "2026-11-28", "source_table": "t", "received": 2, "work_started": 2}]


# -- what the parser refuses ------------------------------------------------------------------


def test_deep_json_is_refused_not_a_500(standin):
    client, ledger, _ = standin
    deep = b"[" * 100_000 + b"]" * 100_000
    assert_refused(client.post("/process", data=deep, content_type="application/json"), "body")
    envelope = (
        json.dumps(push(b"")).replace('"data": ""', '"data": ' + json.dumps(base64.b64encode(deep).decode())).encode()
    )
    assert_refused(client.post("/process", data=envelope, content_type="application/json"), "message.data")
    nested_body = {**BODY, "extra": json.loads("[" * 200 + "]" * 200)}
    assert_refused(client.post("/process", json=push(nested_body)), "message.data")
    assert client.get("/accepted").get_json() == []
    assert [e["status"] for e in ledger_entries(ledger)] == [400, 400, 400]


@pytest.mark.parametrize(
    "date", ["0001-01-01", "20261128", "2026-W48-6", "2026-11-28T00:00", " 2026-11-28", "9999-12-31"]
)
def test_a_date_not_strict_and_plausible_is_refused(standin, date):
    client, ledger, _ = standin
    assert_refused(client.post("/process", json=push({**REFERENCE_BODY, "analysis_date": date})), "analysis_date")
    assert client.get("/accepted").get_json() == []
    assert last_entry(ledger)["game_date"] is None


def test_what_reaches_the_ledger_is_bounded(standin):
    client, ledger, _ = standin
    assert_refused(
        client.post("/process", json=push({**REFERENCE_BODY, "source_table": "t" * 1_000_000})), "source_table"
    )
    assert_refused(client.post("/process", json=push({**REFERENCE_BODY, "source_table": "\udc00"})), "source_table")
    assert_refused(client.post("/process", json=push({**BODY, "trigger_id": "x" * 100_000})), "trigger_id")
    assert_refused(client.post("/process", json=push(REFERENCE_BODY, message_id="m" * 100_000)), "message.messageId")
    for line in ledger.read_bytes().splitlines():
        assert len(line) < 8_000
        line.decode("utf-8")
    refusal = last_entry(ledger)["refusal"]
    assert (
        refusal["body_length"] > 100_000
        and len(base64.b64decode(refusal["body_prefix"])) <= 1024
        and len(refusal["body_sha256"]) == 64
    )


@pytest.mark.parametrize(
    "envelope, field",
    [
        ({"message": {"data": 5}}, "message.data"),
        (
            {"message": {"data": base64.b64encode(json.dumps(REFERENCE_BODY).encode()).decode(), "attributes": [1]}},
            "message.attributes",
        ),
        ({"message": "nope"}, "message"),
        ([1, 2], "message"),
    ],
)
def test_an_envelope_of_the_wrong_shape_is_refused(standin, envelope, field):
    client, _, _ = standin
    assert_refused(client.post("/process", json=envelope), field)


# -- fuzz -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "source_table",
    "analysis_date",
    "game_date",
    "success",
    "correlation_id",
    "trigger_source",
    "triggered_by",
    "trigger_id",
    "is_follow_up",
]
plausible = st.sampled_from(
    ["2026-11-28", "player_game_summary", "t:2026-11-28:x", "", "20261128", "0001-01-01", "\udc00", True]
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), plausible | json_values, max_size=9)
datas = st.one_of(
    bodies.map(lambda b: base64.b64encode(json.dumps(b).encode("utf-8", "surrogatepass")).decode()),
    st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode()),
    st.integers(1, 3000).map(lambda n: base64.b64encode(b"[" * n + b"]" * n).decode()),
    json_values,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "data": datas,
        "attributes": st.dictionaries(
            st.sampled_from(["trigger_id", "source_table", "game_date"]) | st.text(max_size=8),
            plausible | json_values,
            max_size=3,
        )
        | json_values,
        "messageId": st.sampled_from(["m-1", "m-2"]) | json_values,
    },
)
envelopes = st.one_of(
    st.builds(lambda m: {"message": m, "subscription": "s"}, messages).map(
        lambda e: json.dumps(e).encode("utf-8", "surrogatepass")
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
    st.integers(1, 3000).map(lambda n: b'{"message": ' * n + b"1" + b"}" * n),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(raw=envelopes, content_type=st.sampled_from(["application/json", "application/json", "text/plain"]))
def test_no_push_makes_the_standin_answer_500_or_breaks_accepted(standin, raw, content_type):
    client, _ledger, _ = standin
    response = client.post("/process", data=raw, content_type=content_type)
    assert response.status_code < 500, response.get_data()[:300]
    assert response.status_code in (200, 409)  # never a 4xx Pub/Sub would redeliver forever
    accepted = client.get("/accepted")
    assert accepted.status_code == 200 and isinstance(accepted.get_json(), list)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=60),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.dictionaries(
                st.sampled_from(["game_date", "source_table", "status", "work_started", "trigger_id"]),
                plausible | json_values | st.integers(100, 599),
                max_size=5,
            ).map(lambda d: json.dumps(d).encode("utf-8", "surrogatepass")),
        ),
        max_size=8,
    )
)
def test_any_ledger_line_is_tallied_or_skipped(tmp_path_factory, lines):
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
    ledger.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    for (day, table), counts in tally(ledger).items():
        assert isinstance(day, str) and isinstance(table, str) and counts.received >= counts.work_started >= 0
    for entry in ledger_entries(ledger):
        assert isinstance(entry["status"], int) and isinstance(entry["work_started"], bool)
