"""Shared fixtures: the real Firestore and Pub/Sub emulators, one pair for the whole run.

Under pytest-xdist the controller starts the pair in the background while the
workers start, and hands its addresses to every worker (PHASE3OPS_TEST_EMULATORS):
one pair of JVMs instead of one per worker, which on 2 cores is the difference
between waiting on Java and running tests. Run in-process (`-n 0`), the first
test that needs them starts them. `-m "not emulators"` starts none.

Tests that need them ask for `gcp_project`: it gives the test a project id of
its own, so tests never see each other's documents, topics or subscriptions,
and points the client libraries at the emulators through the same environment
variables the Google Cloud CLI documents.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from phase3ops import emulators

# Keeps each xdist_group on one worker (xdist 3.8's own grouping does not take under pytest 9).
pytest_plugins = ["tests.support.xdist_groups"]

REPO_ROOT = Path(__file__).resolve().parent.parent

# google-api-core warns on every import that Python 3.11 support ends in 2027.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


SHARED_EMULATORS = "PHASE3OPS_TEST_EMULATORS"  # JSON: the shared pair's variables, log directory
SHARED_EMULATORS_WAIT_SECONDS = 180


def _runs_emulator_tests(config) -> bool:
    return "not emulators" not in (config.option.markexpr or "")


def pytest_configure(config) -> None:
    distributed = bool(getattr(config.option, "numprocesses", 0))
    if hasattr(config, "workerinput") or not distributed or not _runs_emulator_tests(config):
        return
    log_dir = Path(tempfile.mkdtemp(prefix="phase3ops-test-emulators-"))
    kinds = (emulators.FIRESTORE, emulators.PUBSUB)
    ports = {kind: emulators.free_port() for kind in kinds}
    pool = ThreadPoolExecutor(max_workers=2)
    config.shared_emulators = [pool.submit(emulators.start_emulator, kind, log_dir, ports[kind]) for kind in kinds]
    pool.shutdown(wait=False)
    hosts = {emulators.ENV_VARS[kind]: f"127.0.0.1:{ports[kind]}" for kind in kinds}
    os.environ[SHARED_EMULATORS] = json.dumps({"env": hosts, "logs": str(log_dir)})  # inherited by the workers


def pytest_unconfigure(config) -> None:
    started: list[Future] = getattr(config, "shared_emulators", [])
    for future in started:
        if future.exception(timeout=SHARED_EMULATORS_WAIT_SECONDS) is None:
            future.result().stop()
    os.environ.pop(SHARED_EMULATORS, None)


def _wait_for_shared(shared: dict) -> dict[str, str]:
    deadline = time.monotonic() + SHARED_EMULATORS_WAIT_SECONDS
    waiting = dict(shared["env"])
    while waiting:
        waiting = {name: host for name, host in waiting.items() if not emulators.answers(host)}
        if waiting and time.monotonic() > deadline:
            pytest.fail(f"the shared emulators did not answer ({', '.join(waiting)}); logs in {shared['logs']}")
        time.sleep(0.2)
    return dict(shared["env"])


@pytest.fixture(scope="session")
def emulator_hosts(tmp_path_factory):
    shared = os.environ.get(SHARED_EMULATORS)
    started: dict[str, emulators.Emulator] = {}
    if shared:
        env = _wait_for_shared(json.loads(shared))
    else:
        started = emulators.start_both(tmp_path_factory.mktemp("emulator-logs"))
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


def pytest_collection_modifyitems(config, items) -> None:
    """The order xdist hands tests out in (it gives each free worker the next one).

    The longest tests first: a two-minute test started last keeps one worker busy while the others
    wait. The tests that need no emulator are then spread evenly among the emulator tests instead of
    coming last: most emulator tests spend much of their time waiting (a lease running out, a receipt
    held back), and four workers all waiting leave both cores idle while CPU-bound tests queue."""

    def expected_seconds(item) -> float:
        marker = item.get_closest_marker("minutes_long")
        return marker.kwargs["seconds"] if marker else 0.0

    items.sort(key=expected_seconds, reverse=True)  # stable: collection order within a file and among the rest
    waiting = [item for item in items if item.get_closest_marker("emulators")]
    computing = [item for item in items if not item.get_closest_marker("emulators")]
    items[:] = spread_evenly(waiting, computing)


def spread_evenly(first: list, second: list) -> list:
    """Both lists in their own order, merged so that each is the same fraction through at every point."""
    merged, taken_first, taken_second = [], 0, 0
    while taken_first < len(first) or taken_second < len(second):
        if taken_second == len(second) or (
            taken_first < len(first) and taken_first * len(second) <= taken_second * len(first)
        ):
            merged.append(first[taken_first])
            taken_first += 1
        else:
            merged.append(second[taken_second])
            taken_second += 1
    return merged


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
