"""Shared fixtures: the real Firestore and Pub/Sub emulators, one pair per test session.

Tests that need them ask for `gcp_project`: it gives the test a project id of
its own, so tests never see each other's documents, topics or subscriptions,
and points the client libraries at the emulators through the same environment
variables the Google Cloud CLI documents.
"""

from __future__ import annotations

import os
import uuid
import warnings
from pathlib import Path

import pytest

from phase3ops import emulators

REPO_ROOT = Path(__file__).resolve().parent.parent

# google-api-core warns on every import that Python 3.11 support ends in 2027.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def emulator_hosts(tmp_path_factory) -> dict[str, str]:
    log_dir = tmp_path_factory.mktemp("emulator-logs")
    started = emulators.start_both(log_dir)
    env = {**started[emulators.FIRESTORE].env, **started[emulators.PUBSUB].env}
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for emulator in started.values():
            emulator.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def gcp_project(emulator_hosts, monkeypatch) -> str:
    project = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    return project


def pytest_terminal_summary(terminalreporter) -> None:
    """What each exactly-once scenario did to Phase 4 (tests record it with `record_property("hand_off", ...)`):
    duplicate messages are reported, whether or not the guard made them harmless."""
    rows = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "hand_off"
    ]
    if not rows:
        return
    terminalreporter.section("exactly once where it counts")
    terminalreporter.write_line(
        f"{'scenario':<58} {'trials':>6} {'raced':>6} {'dup msgs':>9} {'dates':>6} {'dup work':>9} {'lost':>5}"
    )
    for row in rows:
        terminalreporter.write_line(
            f"{row['scenario']:<58} {row['trials']:>6} {row['raced']:>6} {row['duplicate_messages']:>9} "
            f"{row['dates_with_duplicates']:>6} {row['duplicate_work']:>9} {row['lost']:>5}"
        )
