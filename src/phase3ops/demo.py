"""`phase3ops demo`: one game date through the real orchestrator on the emulators.

Starts the Firestore and Pub/Sub emulators, serves the orchestrator with the
Functions Framework behind a push subscription (as Eventarc would deliver to
it), publishes the five completions of yesterday's games twice each in a
shuffled order, and prints the Phase 4 trigger(s) that arrive. Exactly one
is the point.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import TextIO

from phase3ops import emulators
from phase3ops.function_server import start_function_server
from phase3ops.orchestrator.messages import encode_completion
from phase3ops.orchestrator.readiness import local_today
from phase3ops.pubsub_admin import ensure_orchestrator_topology, ensure_subscription
from phase3ops.spec.pipeline import PipelineSpec

DEMO_PROJECT = "phase3ops-demo"
LISTENER = "phase4-demo-listener"
PUSH_SUBSCRIPTION = "phase3-to-phase4-orchestrator-push"


def run_demo(spec: PipelineSpec, repo_root: Path, run_dir: Path, out: TextIO, copies: int = 2, settle_seconds: float = 5.0) -> int:
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731 - a local shorthand
    run_dir.mkdir(parents=True, exist_ok=True)
    say("Starting the Firestore and Pub/Sub emulators ...")
    started = emulators.start_both(run_dir)
    env = {**started[emulators.FIRESTORE].env, **started[emulators.PUBSUB].env}
    server = None
    try:
        os.environ.update(env)
        from google.cloud import pubsub_v1

        say(f"  firestore {env['FIRESTORE_EMULATOR_HOST']}, pubsub {env['PUBSUB_EMULATOR_HOST']} (logs in {run_dir})")
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        ensure_orchestrator_topology(publisher, subscriber, DEMO_PROJECT, spec)
        listener = ensure_subscription(subscriber, DEMO_PROJECT, spec.topics.phase4_trigger, LISTENER)

        server = start_function_server(
            repo_root,
            {**env, "GOOGLE_CLOUD_PROJECT": DEMO_PROJECT, "PHASE3OPS_PIPELINE": str(Path(spec.source).resolve())},
            run_dir / "orchestrator.log",
        )
        ensure_subscription(
            subscriber,
            DEMO_PROJECT,
            spec.topics.completion,
            PUSH_SUBSCRIPTION,
            push_endpoint=server.push_endpoint(DEMO_PROJECT, spec.topics.completion),
        )
        say(f"Serving {spec.orchestrator.function_name} at {server.url} (log: {server.log_path})")

        game_date = local_today(spec, dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=1)
        messages = [_completion(name, game_date) for name in spec.processor_names] * copies
        random.Random(3).shuffle(messages)
        topic = publisher.topic_path(DEMO_PROJECT, spec.topics.completion)
        say(f"Publishing {len(spec.processor_names)} completions for {game_date} ({copies}x each, shuffled) to {spec.topics.completion}")
        for message in messages:
            publisher.publish(topic, encode_completion(message)).result(timeout=30)

        triggers = _collect(subscriber, listener, settle_seconds, out)
        say(f"Phase 4 triggers received on {spec.topics.phase4_trigger}: {len(triggers)}")
        for trigger in triggers:
            say(json.dumps(json.loads(trigger.data), indent=2, sort_keys=True))
        return 0 if len(triggers) == 1 else 1
    finally:
        say("Stopping the function server and the emulators.")
        if server is not None:
            server.stop()
        for emulator in started.values():
            emulator.stop()


def _completion(processor: str, game_date: dt.date) -> dict:
    return {
        "processor_name": processor,
        "game_date": game_date.isoformat(),
        "status": "success",
        "execution_id": f"demo-{processor}-{uuid.uuid4().hex[:8]}",
        "correlation_id": f"demo-{game_date}",
        "output_table": processor,
        "record_count": 30,
    }


def _collect(subscriber, subscription: str, settle_seconds: float, out: TextIO, timeout: float = 60.0) -> list:
    """Pull triggers until one arrived and nothing more came for `settle_seconds`."""
    received = []
    start = time.monotonic()
    last_change = start
    while time.monotonic() - start < timeout:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 10, "return_immediately": True}, timeout=10
        )
        if response.received_messages:
            received.extend(r.message for r in response.received_messages)
            subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [r.ack_id for r in response.received_messages]})
            last_change = time.monotonic()
        elif received and time.monotonic() - last_change >= settle_seconds:
            break
        time.sleep(0.2)
    return received
