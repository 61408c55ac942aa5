"""Google Cloud clients, built from the environment at call time.

The same code talks to Firestore, Pub/Sub and the Cloud Monitoring API in
the cloud and to the emulators locally: the client libraries read
FIRESTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST themselves, so nothing here
knows whether it is on an emulator.
"""

from __future__ import annotations

import os

PROJECT_ENV_VARS = ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GCLOUD_PROJECT")


class SettingError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def project_id(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    for name in PROJECT_ENV_VARS:
        value = os.environ.get(name)
        if value:
            return value
    raise SettingError(
        f"no Google Cloud project: set {PROJECT_ENV_VARS[0]} (or pass --project)"
    )


def firestore_client(project: str | None = None):
    from google.cloud import firestore

    return firestore.Client(project=project_id(project))


def publisher_client():
    from google.cloud import pubsub_v1

    # Callers publish one message and wait for it; the default 10 ms batching
    # window would only add latency (measured: 14 ms vs 2 ms per publish).
    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))


def subscriber_client():
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()
