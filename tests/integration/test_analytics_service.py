"""The analytics Cloud Run service: push envelopes in, processor runs and completions out."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from phase3ops.analytics.factory import build_fan_out, build_rejected_pushes
from phase3ops.analytics.push_auth import PushAuth
from phase3ops.analytics.service import create_app
from phase3ops.locking.lease_lock import LeaseLocks
from phase3ops.pubsub_admin import ensure_subscription
from tests.support.analytics_runs import DAY
from tests.support.delivery import pull_everything

pytestmark = pytest.mark.emulators


def push_body(data, message_id: str = "m-1") -> dict:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {
        "message": {"data": base64.b64encode(raw).decode(), "messageId": message_id, "attributes": {}},
        "subscription": "s",
    }


@pytest.fixture
def client(analytics):
    fan_out = build_fan_out(analytics.spec, analytics.project)
    return create_app(
        analytics.runner(max_wait_seconds=0.3), PushAuth(None), fan_out, rejected_pushes(analytics)
    ).test_client()


def rejected_pushes(analytics):
    return build_rejected_pushes(analytics.spec, analytics.project, analytics.runner().locks._client)


def stored_rejection(analytics, stored_as: str) -> dict:
    snapshot = rejected_pushes(analytics)._collection.document(stored_as).get()
    assert snapshot.exists, f"nothing stored as {stored_as}"
    return snapshot.to_dict()


@pytest.fixture
def phase3_triggers(analytics):
    """What lands on the Phase 3 trigger topic (where a split message goes)."""
    subscription = ensure_subscription(
        analytics.subscriber, analytics.project, analytics.spec.topics.phase3_trigger, "trigger-listener"
    )
    return lambda at_least=0: [
        json.loads(m.data) for m in pull_everything(analytics.subscriber, subscription, 0.5, at_least=at_least)
    ]


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json["status"] == "ok"


def test_a_push_naming_one_processor_runs_it(client, analytics, phase3_triggers):
    response = client.post(
        "/",
        json=push_body(
            {"game_date": DAY.isoformat(), "processors": ["team_offense_game_summary"], "correlation_id": "c-9"}
        ),
    )
    assert response.status_code == 200, response.json
    assert [r["processor"] for r in response.json["results"]] == ["team_offense_game_summary"]
    [message] = analytics.published(at_least=1)
    assert (message["output_table"], message["correlation_id"]) == ("team_offense_game_summary", "c-9")
    assert phase3_triggers() == []


@pytest.mark.parametrize("named", [["team_offense_game_summary", "team_defense_game_summary"], None])
def test_a_push_naming_several_processors_or_none_is_split_one_per_processor(client, analytics, phase3_triggers, named):
    """Each request stays one bounded run, well inside the push ack deadline."""
    data = {"game_date": DAY.isoformat(), "correlation_id": "c-9", **({"processors": named} if named else {})}
    response = client.post("/", json=push_body(data, message_id="m-42"))
    assert response.status_code == 200, response.json
    expected = named or list(analytics.spec.processor_names)
    assert [s["processor"] for s in response.json["split"]] == expected
    assert analytics.published() == []  # nothing ran in this request
    split = phase3_triggers(at_least=len(expected))
    assert sorted(m["processors"][0] for m in split) == sorted(expected)
    assert all(
        len(m["processors"]) == 1 and m["correlation_id"] == "c-9" and m["game_date"] == DAY.isoformat() for m in split
    )


@pytest.mark.parametrize(
    "body, field, reason",
    [
        ({"message": {"messageId": "1"}}, "message.data", "has no data"),
        ({"message": {"data": "%%%", "messageId": "1"}}, "message.data", "not base64-encoded JSON"),
        (push_body(b"[1, 2]"), "message.data", "must be a JSON object"),
        (push_body({"processors": []}), "game_date", "'game_date' is required"),
        (push_body({"game_date": "2026-02-31"}), "game_date", "is not a calendar date"),
        (push_body({"game_date": "2026-11-28", "processors": ["ghost"]}), "processors", "unknown processors ['ghost']"),
        (
            push_body({"game_date": "2026-11-28", "processors": "player_game_summary"}),
            "processors",
            "must be a non-empty list",
        ),
        # Each of these used to run processors (or answer 500 and go five times to the dead-letter topic):
        (
            push_body(b'{"game_date": "2026-11-28", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
            "message.data",
            "nested too deeply",
        ),
        (push_body({"game_date": "0001-01-01"}), "game_date", "outside the plausible game dates"),
        (push_body({"game_date": "20261128"}), "game_date", "is not a YYYY-MM-DD date"),
        (
            push_body({"game_date": "2026-11-28", "processors": ["player_game_summary"] * 3}),
            "processors",
            "more than once",
        ),
        (push_body({"game_date": "2026-11-28", "processors": 0}), "processors", "must be a non-empty list"),
        (push_body({"game_date": "2026-11-28", "processors": ""}), "processors", "must be a non-empty list"),
        (push_body({"game_date": "2026-11-28", "processors": {}}), "processors", "must be a non-empty list"),
        (
            push_body({"game_date": "2026-11-28", "processors": ["player_game_summary"], "correlation_id": "c" * 501}),
            "correlation_id",
            "at most 500",
        ),
        (
            push_body({"game_date": "2026-11-28", "processors": ["player_game_summary"], "correlation_id": {"id": 1}}),
            "correlation_id",
            "must be a string",
        ),
        (
            push_body({"game_date": "2026-11-28", "processors": ["player_game_summary"], "correlation_id": "\ud800"}),
            "correlation_id",
            "not valid UTF-8",
        ),
        (push_body({"game_date": "2026-11-28"}, message_id="a/b"), "", ""),
    ],
)
def test_a_push_that_can_never_run_is_stored_and_acknowledged_with_the_reason(
    client, analytics, phase3_triggers, body, field, reason
):
    if not field:  # a message id with a slash is fine: the push runs (split), nothing is stored under it
        assert client.post("/", json=body).status_code == 200
        return
    response = client.post("/", json=body)
    assert response.status_code == 200, response.json  # acknowledged: Pub/Sub must not redeliver it
    assert response.json["rejected"] is True and response.json["field"] == field and reason in response.json["error"]
    stored = stored_rejection(analytics, response.json["stored_as"])
    assert stored["handler"] == analytics.spec.analytics.service_name and stored["field"] == field
    assert (
        len(stored["data"]) <= 64 * 1024
        and stored["data_length"] >= len(stored["data"])
        and len(stored["data_sha256"]) == 64
    )
    assert analytics.published() == [] and phase3_triggers() == []  # nothing ran, nothing was split


def test_a_body_that_is_not_a_push_envelope_gets_a_400_and_is_stored(client, analytics):
    response = client.post("/", json={"nope": 1})
    assert response.status_code == 400 and response.json["field"] == "message"
    assert stored_rejection(analytics, response.json["stored_as"])["data"] == b'{"nope": 1}'


def test_a_push_with_the_longest_correlation_id_makes_a_completion_the_orchestrator_accepts(client, analytics):
    from phase3ops.orchestrator.messages import encode_completion, parse_completion

    longest = "c" * 500
    response = client.post(
        "/",
        json=push_body(
            {"game_date": DAY.isoformat(), "processors": ["team_offense_game_summary"], "correlation_id": longest}
        ),
    )
    assert response.status_code == 200, response.json
    [message] = analytics.published(at_least=1)
    assert parse_completion(encode_completion(message), analytics.spec, "m").correlation_id == longest


def test_a_busy_lock_answers_503_so_pubsub_retries(client, analytics):
    holder = LeaseLocks(analytics.runner().locks._client, analytics.spec.analytics.lock.collection, lease_seconds=30)
    lease = holder.acquire("player_game_summary", DAY, owner="other-instance")
    try:
        response = client.post(
            "/", json=push_body({"game_date": DAY.isoformat(), "processors": ["player_game_summary"]})
        )
    finally:
        lease.release()
    assert response.status_code == 503 and "held by other-instance" in response.json["error"]
    assert analytics.published() == []


def test_push_auth_checks_signature_audience_and_service_account(analytics):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth import crypt, jwt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signer = crypt.RSASigner.from_string(pem, key_id="k1")

    def token(audience: str, email: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 600,
        }
        return jwt.encode(signer, claims).decode()

    auth = PushAuth(
        "https://analytics.example/",
        "push@proj.iam.gserviceaccount.com",
        verify=lambda tok, aud: jwt.decode(tok, certs={"k1": public}, audience=aud),
    )
    client = create_app(
        analytics.runner(), auth, build_fan_out(analytics.spec, analytics.project), rejected_pushes(analytics)
    ).test_client()
    body = push_body({"game_date": "2026-02-31"})  # valid auth reaches validation (stored, 200); invalid stops at 401

    assert client.post("/", json=body).status_code == 401
    assert client.post("/", json=body, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    wrong_audience = token("https://other.example/", "push@proj.iam.gserviceaccount.com")
    assert client.post("/", json=body, headers={"Authorization": f"Bearer {wrong_audience}"}).status_code == 401
    wrong_account = token("https://analytics.example/", "intruder@proj.iam.gserviceaccount.com")
    response = client.post("/", json=body, headers={"Authorization": f"Bearer {wrong_account}"})
    assert response.status_code == 401
    assert response.json is not None and "not the push service account" in response.json["error"]
    good = token("https://analytics.example/", "push@proj.iam.gserviceaccount.com")
    response = client.post("/", json=body, headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 200
    assert response.json is not None and response.json["rejected"] is True


def test_the_service_under_gunicorn_behind_a_push_subscription(analytics, emulator_hosts, repo_root, tmp_path):
    """The image's command, fed by a real push subscription on the Pub/Sub emulator."""
    import subprocess
    import sys
    import urllib.request

    import google.cloud.pubsub_v1 as pubsub_v1

    from phase3ops.emulators import free_port, stop_process_group
    from phase3ops.pubsub_admin import ensure_subscription

    port = free_port()
    env = {
        **os.environ,
        **emulator_hosts,
        "GOOGLE_CLOUD_PROJECT": analytics.project,
        "PHASE3OPS_PIPELINE": str(repo_root / "pipeline.yaml"),
        "PHASE3OPS_WAREHOUSE": f"duckdb:{analytics.warehouse.path}",
        "PYTHONWARNINGS": "ignore",
    }
    analytics.warehouse.close()  # gunicorn's processes open the file now
    with open(tmp_path / "service.log", "wb") as log:  # the server keeps its own descriptor
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--threads",
                "4",
                "phase3ops.analytics.service:create_app_from_environment()",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "service.log").read_text()
                time.sleep(0.2)
        subscriber = pubsub_v1.SubscriberClient()
        ensure_subscription(
            subscriber,
            analytics.project,
            analytics.spec.topics.phase3_trigger,
            "analytics-push",
            push_endpoint=f"http://127.0.0.1:{port}/",
        )
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(analytics.project, analytics.spec.topics.phase3_trigger)
        publisher.publish(topic, json.dumps({"game_date": DAY.isoformat()}).encode()).result()

        messages = analytics.published(at_least=5)
    finally:
        stop_process_group(server.pid)
    assert sorted(m["output_table"] for m in messages) == sorted(p.output_table for p in analytics.spec.processors)
    assert all(m["status"] == "success" and m["game_date"] == DAY.isoformat() for m in messages)
    lines = [json.loads(line) for line in (tmp_path / "service.log").read_text().splitlines() if line.startswith("{")]
    assert sum(line.get("event") == "processor_run" for line in lines) == 5
