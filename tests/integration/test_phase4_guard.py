"""Phase 4's duplicate guard, and the local stand-in that installs it, against the Firestore emulator.

A duplicate trigger is a no-op answered 200; the same message redelivered
while its work runs is kept (409); a failed worker's trigger is done by the
retry; a crashed worker's trigger is taken over after its lease, never
worked on by two at once. Races run many trials and count the ones where the
deliveries really overlapped.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from google.cloud import firestore

from phase3ops.local.phase4_standin import create_app, ledger_entries, tally
from phase3ops.phase4_guard import TriggerGuard, Verdict, guard_triggers
from tests.support.phase4 import TRIGGER_BODY

pytestmark = pytest.mark.emulators
TRIALS = 20

BODY = TRIGGER_BODY


def push(body: dict | bytes, message_id: str = "m-1", **attributes: str) -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": message_id, "attributes": attributes},
        "subscription": "s",
    }


@pytest.fixture
def db(gcp_project):
    return firestore.Client(project=gcp_project)


@pytest.fixture
def standin(tmp_path, db):
    ledger = tmp_path / "ledger.jsonl"
    return create_app(ledger, firestore_client=db).test_client(), ledger


# -- the stand-in: the precompute service's contract, with the guard installed ---------------


def test_a_trigger_is_worked_on_once_and_its_duplicate_answers_200_doing_nothing(standin):
    client, ledger = standin
    first = client.post("/process", json=push(BODY, "m-1"))
    again = client.post("/process", json=push(BODY, "m-2"))  # the same trigger, published twice
    redelivered = client.post("/process", json=push(BODY, "m-1"))  # the first, delivered again after its ack was lost
    assert (first.status_code, first.get_json()["status"]) == (200, "accepted")
    assert (again.status_code, again.get_json()["status"]) == (200, "duplicate")
    assert (redelivered.status_code, redelivered.get_json()["status"]) == (200, "duplicate")
    counts = tally(ledger)[("2026-11-28", "player_game_summary")]
    assert (counts.received, counts.work_started) == (3, 1)
    assert client.get("/accepted").get_json() == [
        {"game_date": "2026-11-28", "source_table": "player_game_summary", "received": 3, "work_started": 1}
    ]


def test_a_follow_up_is_new_work(standin):
    client, ledger = standin
    follow_up = {**BODY, "trigger_id": BODY["trigger_id"] + ":late:run-2", "is_follow_up": True}
    assert client.post("/process", json=push(BODY, "m-1")).get_json()["status"] == "accepted"
    assert client.post("/process", json=push(follow_up, "m-2")).get_json()["status"] == "accepted"
    assert tally(ledger)[("2026-11-28", "player_game_summary")].work_started == 2


@pytest.mark.parametrize(
    "body, field",
    [
        (
            {k: v for k, v in BODY.items() if k != "source_table"},
            "source_table",
        ),  # the per-date form: Phase 4 answers 400
        ({**BODY, "analysis_date": "28/11/2026"}, "analysis_date"),
        ({k: v for k, v in BODY.items() if k != "analysis_date"} | {"game_date": "soon"}, "game_date"),
        ({**BODY, "success": "yes"}, "success"),
        ({**BODY, "triggered_by": 7}, "triggered_by"),
        (b"not json", "message.data"),
    ],
)
def test_what_phase4_refuses_is_not_work_and_a_corrected_message_still_runs(standin, body, field):
    client, ledger = standin
    response = client.post("/process", json=push(body))
    # Phase 4 answers 400 (kept in the ledger); Pub/Sub is answered 2xx, so the emulator does not redeliver it forever.
    assert (
        response.status_code == 200
        and response.get_json()["phase4_status"] == 400
        and response.get_json()["field"] == field
    )
    assert [(e["status"], e["refusal"]["field"]) for e in ledger_entries(ledger)] == [(400, field)]
    assert client.get("/accepted").get_json() == []
    # A refusal leaves no marker behind: the same trigger, well formed, is still worked on.
    assert client.post("/process", json=push(BODY, "m-9")).get_json()["status"] == "accepted"


def test_an_envelope_without_a_message(standin):
    client, _ = standin
    response = client.post("/process", json={"nope": 1})
    assert response.status_code == 200 and (response.get_json()["status"], response.get_json()["phase4_status"]) == (
        "refused",
        400,
    )


def test_a_message_without_a_trigger_id_passes_unguarded(standin):
    """The pipeline this replaces sends no trigger_id: Phase 4 behaves as before for it."""
    client, ledger = standin
    reference = {k: v for k, v in BODY.items() if k != "trigger_id"}
    assert client.post("/process", json=push(reference, "m-1")).status_code == 200
    assert client.post("/process", json=push(reference, "m-2")).status_code == 200
    assert tally(ledger)[("2026-11-28", "player_game_summary")].work_started == 2


# -- the guard on its own: concurrency, failures, crashes -------------------------------------


def test_simultaneous_duplicates_run_the_work_once(db):
    """Several messages of one trigger delivered at the same instant to several instances."""
    guard = TriggerGuard(db)
    work: dict[str, int] = {}
    overlapped = 0
    lock = threading.Lock()
    for trial in range(TRIALS):
        body = {**BODY, "trigger_id": f"{BODY['trigger_id']}:trial-{trial}"}
        barrier = threading.Barrier(4)
        decided: list[float] = []  # when each delivery that did not run knew it
        working: list[tuple[float, float]] = []  # (start, end) of the work

        def deliver(index: int, body=body, barrier=barrier, decided=decided, working=working) -> None:
            barrier.wait(timeout=30)
            ticket = guard.begin(push(body, f"m-{trial}-{index}"))
            if not ticket.runs:
                with lock:
                    decided.append(time.monotonic())
                return
            start = time.monotonic()
            with lock:
                work[body["trigger_id"]] = work.get(body["trigger_id"], 0) + 1
            time.sleep(0.2)  # Phase 4's work
            ticket.done()
            working.append((start, time.monotonic()))

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        overlapped += int(any(start <= at <= end for start, end in working for at in decided))
    assert work == {f"{BODY['trigger_id']}:trial-{t}": 1 for t in range(TRIALS)}  # zero duplicates, zero losses
    print(f"\nduplicates decided while the work ran: {overlapped} of {TRIALS} trials")
    assert overlapped >= TRIALS // 2, f"the deliveries overlapped the work in only {overlapped} of {TRIALS} trials"


def test_the_same_message_redelivered_while_it_runs_is_kept_for_later(db):
    guard = TriggerGuard(db)
    ticket = guard.begin(push(BODY, "m-1"))
    assert ticket.verdict is Verdict.RUN
    assert guard.begin(push(BODY, "m-1")).verdict is Verdict.IN_PROGRESS  # acknowledging it could lose the trigger
    assert (
        guard.begin(push(BODY, "m-2")).verdict is Verdict.DUPLICATE
    )  # another message: m-1's delivery carries the work
    ticket.done()
    assert guard.begin(push(BODY, "m-1")).verdict is Verdict.DUPLICATE


def test_a_failed_worker_leaves_the_trigger_to_its_retry(db):
    guard = TriggerGuard(db)
    guard.begin(push(BODY, "m-1")).abandon()  # the handler raised or answered 500
    retry = guard.begin(push(BODY, "m-1"))
    assert retry.verdict is Verdict.RUN
    retry.done()
    assert guard.begin(push(BODY, "m-2")).verdict is Verdict.DUPLICATE


def test_a_crashed_worker_is_taken_over_after_its_lease_never_during_it(db):
    guard = TriggerGuard(db, lease_seconds=1.5)
    crashed = guard.begin(push(BODY, "m-1"))  # and never finishes: the instance died
    assert crashed.verdict is Verdict.RUN
    assert guard.begin(push(BODY, "m-1")).verdict is Verdict.IN_PROGRESS  # within the lease: not twice at once
    time.sleep(1.7)
    takeover = guard.begin(push(BODY, "m-1"))  # Pub/Sub redelivers the unacknowledged message
    assert takeover.verdict is Verdict.RUN
    takeover.done()
    crashed.done()  # a late finish of the dead worker changes nothing
    assert takeover.key is not None
    marker = db.collection("phase4_trigger_guard").document(takeover.key.document_id).get().to_dict()
    assert (marker["state"], marker["work_started"]) == ("done", 2)


def test_the_decorator_is_the_two_line_install(db):
    from flask import Flask

    app = Flask("precompute")
    ran = []

    @app.route("/process", methods=["POST"])
    @guard_triggers(db)
    def process():
        ran.append(1)
        return {"status": "processed"}, 200

    client = app.test_client()
    assert client.post("/process", json=push(BODY, "m-1")).get_json() == {"status": "processed"}
    assert client.post("/process", json=push(BODY, "m-2")).get_json()["status"] == "duplicate"
    assert ran == [1]
