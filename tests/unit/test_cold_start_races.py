"""A cold start under concurrent requests: the function instance serves the first deliveries on
several threads at once (gunicorn threads locally, concurrency on Cloud Run), and every one of them
asks for the logging set-up and the orchestrator. Seen in a chaos day's log: after an instance was
killed, its successor wrote every line twice for its whole life, two JSON handlers on the root
logger, which doubles every log-based metric the alerts and SLOs count."""

from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar

from phase3ops.logs import JsonLineFormatter, configure_json_logging
from phase3ops.orchestrator import entrypoint

TRIALS, THREADS = 30, 8


def _json_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonLineFormatter)]


class SlowHandler(logging.StreamHandler):
    """A handler that takes a moment to make: the window of the race. Notes how many callers had
    started by the time it was made."""

    started: ClassVar[list[int]] = []

    def __init__(self, *args, **kwargs):
        time.sleep(0.005)
        super().__init__(*args, **kwargs)
        self.callers_meanwhile = len(SlowHandler.started)


def test_concurrent_first_calls_add_one_json_handler(monkeypatch):
    root = logging.getLogger()
    kept = [h for h in root.handlers if not isinstance(h.formatter, JsonLineFormatter)]
    monkeypatch.setattr(logging, "StreamHandler", SlowHandler)
    duplicated = raced = 0
    for _ in range(TRIALS):
        root.handlers = list(kept)
        started: list[int] = []
        SlowHandler.started = started
        barrier = threading.Barrier(THREADS)

        def cold_start():
            barrier.wait()
            started.append(threading.get_ident())
            configure_json_logging()

        threads = [threading.Thread(target=cold_start) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        handlers = _json_handlers()
        duplicated += len(handlers) > 1
        raced += getattr(handlers[0], "callers_meanwhile", 0) > 1  # others called while it was being made
    root.handlers = kept
    assert duplicated == 0
    assert raced >= TRIALS // 2, raced


def test_concurrent_first_requests_build_one_orchestrator(monkeypatch):
    built = []

    def slow_build(spec):
        time.sleep(0.005)
        built.append(object())
        return built[-1]

    monkeypatch.setattr(entrypoint, "build_orchestrator", slow_build)
    monkeypatch.setattr(entrypoint, "load_pipeline_spec", lambda: None)
    monkeypatch.setattr(entrypoint, "configure_json_logging", lambda: None)
    instances_seen = 0
    for _ in range(TRIALS):
        monkeypatch.setattr(entrypoint, "_orchestrator", None)
        built.clear()
        barrier = threading.Barrier(THREADS)
        got = []

        def first_request():
            barrier.wait()
            got.append(entrypoint.orchestrator_instance())

        threads = [threading.Thread(target=first_request) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(built) == 1 and {id(o) for o in got} == {id(built[0])}
        instances_seen += len(got)
    assert instances_seen == TRIALS * THREADS
