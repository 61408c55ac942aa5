"""`phase3ops local up | down | status | env`: the pipeline's processes on this machine.

`up` converges: whatever is recorded, alive and answering is kept; whatever
is missing, dead or silent is started again; and every push subscription
is pointed at the endpoint that serves it now. So `up` after a crash, a
Ctrl-C or an edit of pipeline.yaml is always the fix:

- the Firestore and Pub/Sub emulators (Firestore loads what `down` saved);
- the topics and subscriptions the pipeline spec and the infra program
  declare, with the same names, push subscriptions to local endpoints;
- the orchestrator and the receipts recorder (Functions Framework), the
  analytics service (gunicorn), and a Phase 4 stand-in that enforces the
  precompute service's contract and keeps a ledger of what it accepted.

What must start starts side by side (both emulators, then the services), and
`down` stops the services together, then the emulators: each takes about as
long as its slowest process.

The user's pipeline.yaml is validated first (errors name its own lines);
the services read a copy with the local profile's shorter leases (processor
lock and trigger claim 4 s, publish timeout 2 s, receipt grace 6 s, so
recovery shows in seconds), regenerated and
the services restarted when the user's file changes. Each process is
recorded in `<run dir>/state.json` the moment it starts, with its start time
and process group; `down` saves the Firestore data next to the warehouse and
stops exactly what is recorded, and only while its pid is still the process
recorded (a pid reused by another process is reported and left alone).
"""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from phase3ops import emulators
from phase3ops.function_server import (
    PHASE4_STANDIN_APP,
    RECEIPTS_TARGET,
    listening,
    start_analytics_service,
    start_function_server,
    start_gunicorn,
)
from phase3ops.local.phase4_standin import LEDGER_ENV
from phase3ops.local.state import (
    HELPER_PREFIX,
    PROJECT,
    STATE_FILE,
    Component,
    LocalState,
    Presence,
)
from phase3ops.spec.documents import SpecError, SpecProblem
from phase3ops.spec.pipeline import PIPELINE_FILE_NAME, PipelineSpec, load_pipeline_spec

# The claim lease is the spec's floor (twice the publish timeout). The grace stays longer than the
# chaos day's late receipt, which comes 2 s after the claim's lease: recovery must wait for it.
LOCAL_TIMINGS = {
    ("orchestrator", "claim_lease_seconds"): 4,
    ("orchestrator", "publish_timeout_seconds"): 2,
    ("orchestrator", "receipt_grace_seconds"): 6,
    ("analytics", "lock", "lease_seconds"): 4,
}
FUNCTION_SUBSCRIPTION = "eventarc-phase3-to-phase4-orchestrator"
DUPLICATE_SUBSCRIPTION = "eventarc-phase3-to-phase4-orchestrator-duplicate"
RECEIPTS_SUBSCRIPTION = "eventarc-phase4-trigger-receipts"
PHASE4_SUBSCRIPTION = "nba-phase4-precompute-push"
CHAOS_FUNCTION_SOURCE = Path(__file__).parent / "chaos_function.py"
CHAOS_SERVICE_APP = "phase3ops.local.chaos_analytics_service:create_chaos_app()"
EMULATORS = ("firestore", "pubsub")
SPEC_READERS = ("analytics", "orchestrator", "receipts")
COMPONENT_ORDER = (*EMULATORS, *SPEC_READERS, "phase4")
HEALTH_PATHS = {"analytics": "/healthz", "phase4": "/healthz"}

Say = Callable[[str], None]


class LocalUpFailed(RuntimeError):
    """`up` stopped part-way; the message says what it left running and what to do."""


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest folder, from `start` up, that holds pipeline.yaml: `local` works from any subfolder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PIPELINE_FILE_NAME).is_file():
            return folder
    raise SpecError(
        [
            SpecProblem(
                PIPELINE_FILE_NAME,
                None,
                "",
                f"no {PIPELINE_FILE_NAME} in {here} or its parents: run from the repository, or pass --repo",
            )
        ]
    )


def default_run_dir(repo_root: Path) -> Path:
    return repo_root / ".phase3ops" / "local"


# -- up -------------------------------------------------------------------------


def up(repo_root: Path, run_dir: Path, say: Say) -> LocalState:
    repo_root, run_dir = repo_root.resolve(), run_dir.resolve()
    source = repo_root / PIPELINE_FILE_NAME
    load_pipeline_spec(source)  # the user's file, first: its errors name its own lines, and nothing has started
    local_copy, spec_hash = _local_spec_text(source)
    state = LocalState.load(run_dir) or LocalState(
        str(run_dir),
        PROJECT,
        str(source),
        str(run_dir / PIPELINE_FILE_NAME),
        "",
        str(run_dir / "data" / "warehouse.duckdb"),
    )
    try:
        _converge(repo_root, state, source, local_copy, spec_hash, say)
    except Exception as exc:
        running = [
            f"{c.name} (pid {c.pid})" for key in COMPONENT_ORDER if (c := state.components.get(key)) and c.alive()
        ]
        left = (
            f"; left running: {', '.join(running)} (`phase3ops local up` again after fixing it keeps them, `phase3ops local down` stops them)"
            if running
            else ""
        )
        raise LocalUpFailed(f"local up failed: {type(exc).__name__}: {exc}{left}") from exc
    say(f"Up: project {state.project}, run directory {run_dir}")
    return state


def _converge(repo_root: Path, state: LocalState, source: Path, local_copy: str, spec_hash: str, say: Say) -> None:
    state.source_pipeline = str(source)
    restarted_emulators = _ensure_emulators(state, say)
    spec_changed = spec_hash != state.spec_hash or not Path(state.pipeline).is_file()
    if spec_changed:
        if state.spec_hash:
            say(f"{source} changed: regenerating {state.pipeline} and restarting what reads it")
        Path(state.pipeline).write_text(local_copy)
        state.spec_hash = spec_hash
        state.save()
    spec = load_pipeline_spec(state.pipeline)
    _ensure_tables(spec, state)
    starts = {}
    for key in (*SPEC_READERS, "phase4"):
        component = state.components.get(key)
        stale = restarted_emulators or (spec_changed and key in SPEC_READERS)
        if component is not None and not stale and answers(key, component):
            continue
        if component is not None:
            _stop_recorded(component, say)
        starts[key] = _starter(key, repo_root, state, spec, say)
    _start_side_by_side(starts, state)
    _ensure_topology(spec, state)


def _ensure_emulators(state: LocalState, say: Say) -> bool:
    """Keep the recorded emulators if they answer, start the others; True when one was (re)started."""
    missing = [kind for kind in EMULATORS if not ((c := state.components.get(kind)) and answers(kind, c))]
    if not missing:
        say(f"Reusing the emulators of {state.run_dir}")
        return False
    starts = {}
    for kind in missing:
        if (stale := state.components.get(kind)) is not None:
            _stop_recorded(stale, say)
        saved = emulators.latest_firestore_export(state.firestore_export) if kind == emulators.FIRESTORE else None
        say(f"Starting the {kind} emulator{f' with the data saved in {saved.parent}' if saved else ''} ...")
        starts[kind] = functools.partial(_start_emulator, kind, state, (f"--import-data={saved}",) if saved else ())
    _start_side_by_side(starts, state)
    return True


def _start_emulator(kind: str, state: LocalState, extra_args: tuple[str, ...]) -> Component:
    started = emulators.start_emulator(kind, state.logs_dir, extra_args=extra_args)
    assert started.pid is not None  # start_emulator returns the emulator with its process
    return Component(f"{kind} emulator", started.pid, started.host_port, str(started.log_path))


def _start_side_by_side(starts: Mapping[str, Callable[[], Component]], state: LocalState) -> None:
    """Start every component at once and record each that started, in `starts`' order; then raise the
    first failure. Each start is mostly waiting (a JVM, or an interpreter importing Google's client
    libraries, until it answers), so side by side `up` takes about as long as its slowest start."""
    with ThreadPoolExecutor(max_workers=max(len(starts), 1)) as pool:
        futures = {key: pool.submit(start) for key, start in starts.items()}
    failures = []
    for key, future in futures.items():
        try:
            state.record(key, future.result())
        except Exception as exc:  # the others are recorded first, so `down` can stop them
            failures.append(exc)
    if failures:
        raise failures[0]


def _starter(key: str, repo_root: Path, state: LocalState, spec: PipelineSpec, say: Say) -> Callable[[], Component]:
    """What starts component `key` (announced now) and returns it as it is to be recorded."""
    env = state.env | {name: str(path) for name, path in state.chaos_files.items()}
    logs = state.logs_dir
    if key == "analytics":
        say("Starting the analytics service (gunicorn) ...")
        name = spec.analytics.service_name
        start = functools.partial(
            start_analytics_service, repo_root, env, logs / "analytics-service.log", app=CHAOS_SERVICE_APP
        )
    elif key == "orchestrator":
        say("Starting the orchestrator (Functions Framework) ...")
        name = spec.orchestrator.function_name
        start = functools.partial(
            start_function_server, repo_root, env, logs / "orchestrator.log", source=CHAOS_FUNCTION_SOURCE
        )
    elif key == "receipts":
        say("Starting the receipts recorder (Functions Framework) ...")
        name = spec.orchestrator.receipts_function_name
        start = functools.partial(
            start_function_server,
            repo_root,
            env,
            logs / "receipts.log",
            source=CHAOS_FUNCTION_SOURCE,
            target=RECEIPTS_TARGET,
        )
    else:
        say("Starting the Phase 4 stand-in (gunicorn) ...")
        name = "phase4-standin"
        # The stand-in keeps its duplicate guard's markers in the local Firestore, as Phase 4 would in its own.
        start = functools.partial(
            start_gunicorn,
            PHASE4_STANDIN_APP,
            repo_root,
            state.env | {LEDGER_ENV: str(state.phase4_ledger)},
            logs / "phase4-standin.log",
        )

    def started() -> Component:
        server = start()
        return Component(name, server.pid, server.url, str(server.log_path))

    return started


def _stop_recorded(component: Component, say: Say, timeout: float = 15.0) -> bool:
    """Stop a recorded process if its pid is still that process; say why not otherwise. True when stopped."""
    presence = component.stop(timeout)
    if presence is Presence.RUNNING:
        return True
    if presence is not Presence.GONE:
        say(f"Left {component.name} (pid {component.pid}) alone: {presence.why_left_alone(component)}")
    return False


def restart_orchestrator(repo_root: Path, state: LocalState, say: Say) -> None:
    """A new orchestrator instance (the chaos day kills one), and the subscriptions pointed at it."""
    spec = load_pipeline_spec(state.pipeline)
    _start_side_by_side({"orchestrator": _starter("orchestrator", repo_root, state, spec, say)}, state)
    _ensure_topology(spec, state)


def answers(key: str, component: Component) -> bool:
    """Alive and serving: a process that exists but does not answer is as good as stopped."""
    if key in EMULATORS:
        return component.alive() and emulators.answers(component.address)
    return component.alive() and listening(component.url + HEALTH_PATHS.get(key, ""))


def _local_spec_text(source: Path) -> tuple[str, str]:
    """The local profile's copy of the user's spec, and a hash of what it was made from."""
    text = source.read_text()
    yaml = YAML(typ="rt")
    document = yaml.load(text)
    for path, value in LOCAL_TIMINGS.items():
        node = document["spec"]
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    schema = Path(__file__).resolve().parents[1] / "spec" / "schemas" / "pipeline.schema.json"
    copy = (
        f"# yaml-language-server: $schema={schema}\n# Generated by `phase3ops local up` from {source}: edit that file, not this one.\n"
        + buffer.getvalue()
    )
    digest = hashlib.sha256((text + repr(sorted(LOCAL_TIMINGS.items()))).encode()).hexdigest()
    return copy, digest


def _ensure_tables(spec: PipelineSpec, state: LocalState) -> None:
    from phase3ops.warehouse.duckdb_warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(state.warehouse)
    warehouse.ensure_tables([*spec.raw_tables, *(p.table for p in spec.processors), spec.analytics.write_fences])


@dataclass(frozen=True)
class PushRoute:
    subscription: str
    topic: str
    component: str  # which component serves it
    path: str  # the path on that component's URL

    def endpoint(self, state: LocalState) -> str:
        return state.components[self.component].url + self.path


def push_routes(spec: PipelineSpec, state: LocalState) -> list[PushRoute]:
    """Every push subscription `up` keeps, and where it must deliver."""
    project, topics = state.project, spec.topics
    return [
        PushRoute(f"{spec.analytics.service_name}-push", topics.phase3_trigger, "analytics", "/"),
        PushRoute(
            FUNCTION_SUBSCRIPTION, topics.completion, "orchestrator", f"/projects/{project}/topics/{topics.completion}"
        ),
        PushRoute(
            RECEIPTS_SUBSCRIPTION,
            topics.phase4_trigger,
            "receipts",
            f"/projects/{project}/topics/{topics.phase4_trigger}",
        ),
        PushRoute(PHASE4_SUBSCRIPTION, topics.phase4_trigger, "phase4", "/process"),
    ]


def orchestrator_route(spec: PipelineSpec, state: LocalState) -> PushRoute:
    """Where completions are delivered: the chaos day's duplicate delivery goes there too."""
    return next(route for route in push_routes(spec, state) if route.subscription == FUNCTION_SUBSCRIPTION)


def _ensure_topology(spec: PipelineSpec, state: LocalState) -> None:
    from phase3ops.pubsub_admin import ensure_orchestrator_topology, ensure_subscription, ensure_topic, push_endpoint_of

    publisher, subscriber = _pubsub_clients(state)
    ensure_orchestrator_topology(publisher, state.project, spec)
    dead_letter = f"{spec.topics.phase3_trigger}-dead-letter"
    ensure_topic(publisher, state.project, dead_letter)
    ensure_subscription(subscriber, state.project, dead_letter, f"{dead_letter}-sub")
    for route in push_routes(spec, state):
        ack_deadline = 600 if route.component == "analytics" else 60
        ensure_subscription(
            subscriber, state.project, route.topic, route.subscription, route.endpoint(state), ack_deadline
        )
    if push_endpoint_of(subscriber, state.project, DUPLICATE_SUBSCRIPTION) is not None:
        # A chaos day's, left by a run-day killed outright: point it at today's orchestrator too.
        route = orchestrator_route(spec, state)
        ensure_subscription(subscriber, state.project, route.topic, DUPLICATE_SUBSCRIPTION, route.endpoint(state))


def _pubsub_clients(state: LocalState):
    import os

    import google.cloud.pubsub_v1 as pubsub_v1

    os.environ.update(state.env)
    return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()


# -- status, env, down ----------------------------------------------------------


def status_rows(run_dir: Path) -> list[tuple[str, str, str, str]]:
    """One row per component (running, not answering, stopped), then every push
    subscription whose endpoint is not the one that serves it now."""
    state = LocalState.load(run_dir.resolve())
    if state is None:
        return []
    rows = []
    for key in COMPONENT_ORDER:
        component = state.components.get(key)
        if component is None:
            rows.append((key, "-", "-", "not started"))
            continue
        rows.append(
            (component.name, str(component.pid), component.address, _status(component, answers(key, component)))
        )
    for helper in state.helpers().values():
        rows.append((helper.name, str(helper.pid), "-", _status(helper, helper.alive())))
    rows += _subscription_rows(state)
    return rows


def _status(component: Component, healthy: bool) -> str:
    if healthy:
        return "running"
    presence = component.presence()
    return {Presence.RUNNING: "not answering", Presence.GONE: "stopped"}.get(presence, presence.value)


def _subscription_rows(state: LocalState) -> list[tuple[str, str, str, str]]:
    pubsub = state.components.get("pubsub")
    if pubsub is None or not answers("pubsub", pubsub):
        return []
    from phase3ops.pubsub_admin import push_endpoint_of

    spec = load_pipeline_spec(state.pipeline)
    _, subscriber = _pubsub_clients(state)
    rows = []
    for route in push_routes(spec, state):
        if route.component not in state.components:
            continue
        expected = route.endpoint(state)
        actual = push_endpoint_of(subscriber, state.project, route.subscription)
        if actual != expected:
            rows.append(
                (
                    f"subscription {route.subscription}",
                    "-",
                    actual or "-",
                    f"stale: should push to {expected} (phase3ops local up)",
                )
            )
    return rows


def down(run_dir: Path, say: Say) -> list[str]:
    """Save the Firestore data, then stop what was recorded, nothing else; logs and data stay."""
    run_dir = run_dir.resolve()
    state = LocalState.load(run_dir)
    if state is None:
        say(f"Nothing to stop: no {STATE_FILE} in {run_dir}")
        return []
    _save_firestore(state, say)
    stopped = []
    # Whatever uses the emulators stops before them; each wave side by side.
    services = [key for key in reversed(COMPONENT_ORDER) if key not in EMULATORS]
    for wave in ([*state.helpers(), *services], list(reversed(EMULATORS))):
        components = [component for key in wave if (component := state.components.get(key)) is not None]
        with ThreadPoolExecutor(max_workers=max(len(components), 1)) as pool:
            stops = [(component, pool.submit(_stop_recorded, component, say)) for component in components]
        for component, stop in stops:
            if stop.result():
                stopped.append(component.name)
                say(f"Stopped {component.name} (pid {component.pid})")
    Path(state.run_dir, STATE_FILE).unlink()
    for path in state.chaos_files.values():
        path.unlink(missing_ok=True)
    return stopped


def _save_firestore(state: LocalState, say: Say) -> None:
    firestore = state.components.get("firestore")
    if firestore is None or not answers("firestore", firestore):
        if firestore is not None:
            say(
                "The Firestore emulator is not running: its data since the last save is lost; the warehouse keeps its rows"
            )
        return
    fresh = state.firestore_export.with_name(state.firestore_export.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        emulators.export_firestore(firestore.address, state.project, fresh)
    except Exception as exc:  # never keep processes running because a save failed
        say(f"Could not save the Firestore data ({type(exc).__name__}: {exc}); it is lost when the emulator stops")
        shutil.rmtree(fresh, ignore_errors=True)
        return
    shutil.rmtree(state.firestore_export, ignore_errors=True)
    fresh.replace(state.firestore_export)
    say(f"Saved the Firestore data to {state.firestore_export} (loaded again by the next `local up`)")


def render_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


__all__ = [
    "HELPER_PREFIX",
    "LocalState",
    "LocalUpFailed",
    "default_run_dir",
    "down",
    "find_repo_root",
    "render_table",
    "restart_orchestrator",
    "status_rows",
    "up",
]
