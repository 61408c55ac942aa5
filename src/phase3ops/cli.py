"""`phase3ops`: the one command line for the pipeline's operators.

Exit codes follow the checks' convention: 0 clean, 1 findings, 2 could not
check (bad spec, missing setting, unreachable service, bad arguments).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TypedDict

from phase3ops.cloud import SettingError
from phase3ops.spec.documents import SpecError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

EXIT_CODES = (
    "exit codes: 0 clean, 1 findings, 2 could not check (bad spec, missing setting, unreachable service, bad arguments)"
)
PIPELINE_ENV_HELP = (
    "PHASE3OPS_PIPELINE   the pipeline spec, when --pipeline is not given (else the nearest pipeline.yaml)"
)
STATE_ENV_HELP = (
    """\
environment (set by `eval "$(phase3ops local env)"` for the local pipeline, or by the scheduled jobs):
  GOOGLE_CLOUD_PROJECT     the project (or --project)
  PHASE3OPS_WAREHOUSE      duckdb (default), duckdb:<file>, or bigquery
  FIRESTORE_EMULATOR_HOST  use the Firestore emulator there (checked to answer before anything runs)
  PUBSUB_EMULATOR_HOST     use the Pub/Sub emulator there (likewise)
  PHASE3OPS_TARGET         local (default) or cloud: cloud also checks the deployment and writes the metrics
  """
    + PIPELINE_ENV_HELP
)


class UsageError(Exception):
    """Arguments that cannot be carried out; the message says why."""


# -- validate and plan ----------------------------------------------------------


def _alert_tests(args: argparse.Namespace) -> int:
    from phase3ops.alerts.rule_tests import render_report, run_rule_tests
    from phase3ops.alerts.specs import load_alert_specs

    alerts_dir = Path(args.repo).resolve() / "alerts"
    specs = load_alert_specs(alerts_dir, args.stack)
    report = run_rule_tests(alerts_dir, specs, args.rule or ())
    print(render_report(report))
    return EXIT_OK if report.passed else EXIT_FINDINGS


def _validate(args: argparse.Namespace) -> int:
    from phase3ops.spec.pipeline import locate_pipeline_spec
    from phase3ops.validate import known_stacks, validate

    repo_root = Path(args.repo).resolve()
    if args.stack:
        known = known_stacks(repo_root, repo_root / "alerts")
        unknown = [s for s in args.stack if s not in known]
        if unknown:
            raise UsageError(
                f"no stack {', '.join(unknown)}: known stacks are {', '.join(known)} "
                "(Pulumi.<stack>.yaml, alerts/stacks/<stack>.yaml, dashboards/stacks/<stack>.yaml or slos/stacks/<stack>.yaml)"
            )
    pipeline = locate_pipeline_spec(args.pipeline) if (args.pipeline or os.environ.get("PHASE3OPS_PIPELINE")) else None
    report = validate(repo_root, pipeline, args.stack or None)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "stacks": report.stacks,
                    "rules": {stack or "base": [r.name for r in specs.rules] for stack, specs in report.specs.items()},
                    "dashboards": {
                        stack or "base": [d.name for d in specs.dashboards]
                        for stack, specs in report.dashboards.items()
                    },
                    "slos": {stack or "base": [slo.name for slo in specs.slos] for stack, specs in report.slos.items()},
                    "problems": [p.as_dict() for p in report.problems],
                },
                indent=2,
            )
        )
    elif report.ok:
        base, dashboards = report.specs[""], report.dashboards[""].dashboards
        metrics = sum(1 for r in base.rules if r.log_metric) + sum(len(d.log_metrics) for d in dashboards)
        widgets = sum(len(d.tiles) for d in dashboards)
        slos = report.slos[""]
        print(
            f"valid: {pipeline or 'pipeline.yaml'} and {len(base.rules)} alert rules, {len(base.channels)} channels, "
            f"{len(dashboards)} dashboard{'s' if len(dashboards) != 1 else ''} ({widgets} widgets), "
            f"{metrics} log-based metric{'s' if metrics != 1 else ''}, {len(slos.slos)} SLOs with "
            f"{len(slos.alert_policies)} burn-rate alert policies (stacks checked: base{''.join(', ' + s for s in report.stacks)})"
        )
    else:
        print(SpecError(report.problems), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_ERROR


def _plan(args: argparse.Namespace) -> int:
    from phase3ops.plan.plan import PlanError, plan_stack
    from phase3ops.plan.render import as_json, as_text
    from phase3ops.validate import validate

    repo_root = Path(args.repo).resolve()
    if args.pipeline:
        raise UsageError(
            f"plan reads {repo_root / 'pipeline.yaml'}, as pulumi up does (it bundles that file); --pipeline does not apply, use --repo"
        )
    report = validate(repo_root, stacks=[args.stack])
    if not report.ok:
        print(SpecError(report.problems), file=sys.stderr)
        return EXIT_ERROR
    try:
        stack_plan = plan_stack(repo_root, args.stack)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    missing = stack_plan.config.secrets_not_in_stack_file
    if args.adopt:
        from phase3ops.plan.adoption import adoption_script

        print(adoption_script(stack_plan.result, stack_plan.config.values.get("gcp:project", "")))
        return EXIT_OK
    if not args.policies:
        render = as_json if args.json else as_text
        print(render(stack_plan.result, missing, stack_plan.preconditions, stack_plan.config.stand_ins))
        return EXIT_OK
    from phase3ops.plan import policies

    try:
        pack = policies.load_pack(repo_root)
        violations = policies.evaluate(pack, stack_plan.result, policies.load_user_config(args.policy_config))
    except policies.PolicyConfigError as exc:
        print(f"error: policy config: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        graph = json.loads(as_json(stack_plan.result, missing, stack_plan.preconditions))
        graph["policies"] = json.loads(policies.as_json(pack, violations))
        print(json.dumps(graph, indent=2))
    else:
        print(as_text(stack_plan.result, missing, stack_plan.preconditions))
        print()
        print(policies.render(pack, violations))
    return EXIT_FINDINGS if any(v.level == "mandatory" for v in violations) else EXIT_OK


# -- the checks -----------------------------------------------------------------


def _target_environment(args: argparse.Namespace) -> None:
    """Point this process at the pipeline asked for, and make sure it answers, before any client is built."""
    from phase3ops import cloud

    if getattr(args, "local", None) is not None:
        from phase3ops.local.environment import default_run_dir, find_repo_root
        from phase3ops.local.state import LocalState

        run_dir = Path(args.local) if args.local else default_run_dir(find_repo_root())
        state = LocalState.load(run_dir.resolve())
        if state is None:
            raise UsageError(f"--local: no local environment in {run_dir} (phase3ops local up)")
        os.environ.update(state.env)
        if not args.pipeline:
            args.pipeline = state.pipeline
    if args.project:
        os.environ["GOOGLE_CLOUD_PROJECT"] = args.project
    cloud.check_emulators_answer()


def _pipeline(args: argparse.Namespace):
    """The spec's orchestrator (its store and claims), the warehouse, now, and the dates asked for."""
    from phase3ops.checks.health import window
    from phase3ops.orchestrator.factory import build_orchestrator
    from phase3ops.orchestrator.readiness import local_today
    from phase3ops.spec.pipeline import load_pipeline_spec
    from phase3ops.warehouse.factory import warehouse_from_environment

    spec = load_pipeline_spec(args.pipeline)
    orchestrator = build_orchestrator(spec)
    warehouse = warehouse_from_environment()
    now = dt.datetime.now(dt.UTC)
    first, last = window(local_today(spec, now), args.date, args.days)
    return orchestrator, warehouse, now, first, last


def _health(args: argparse.Namespace) -> int:
    from phase3ops import cloud
    from phase3ops.checks.context import STACK_ENV, target_from_environment
    from phase3ops.checks.health import check_dates, header, publish_metrics
    from phase3ops.checks.results import exit_code, render

    _target_environment(args)
    target = target_from_environment()
    if target == "cloud":
        from phase3ops.logs import configure_json_logging

        configure_json_logging(stream=sys.stderr)  # the alert rules match these lines
    try:
        orchestrator, warehouse, now, first, last = _pipeline(args)
        context, results = check_dates(
            orchestrator,
            warehouse,
            first,
            last,
            now,
            target=target,
            project=cloud.project_id(),
            alerts_dir=Path(orchestrator.spec.source).resolve().parent / "alerts",
            stack=args.stack or os.environ.get(STACK_ENV) or None,
            region=os.environ.get("PHASE3OPS_REGION", "us-west2"),
        )
    except (SpecError, SettingError):
        raise
    except Exception as exc:  # nothing to check against: never report a pass
        print(f"Could not check: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    metrics = publish_metrics(context, results)
    if args.json:
        print(
            json.dumps(
                {"first": str(first), "last": str(last), "checks": [r.as_dict() for r in results], "metrics": metrics},
                indent=2,
            )
        )
    else:
        print(render(results, header(context), verbose=args.verbose))
    return exit_code(results)


def _slo_report(args: argparse.Namespace) -> int:
    from phase3ops.checks.context import STACK_ENV
    from phase3ops.local.environment import find_repo_root
    from phase3ops.orchestrator.factory import build_orchestrator
    from phase3ops.slos.history import read_history
    from phase3ops.slos.report import EXIT_COULD_NOT_CHECK, as_json, evaluate_all, exit_code, render
    from phase3ops.slos.specs import SLOS_DIR, load_slo_specs
    from phase3ops.spec.pipeline import load_pipeline_spec

    _target_environment(args)
    spec = load_pipeline_spec(args.pipeline)
    stack = args.stack or os.environ.get(STACK_ENV) or None
    # The local environment runs a copy of pipeline.yaml: the SLOs are the repository's.
    slos_dir = Path(args.slos) if args.slos else find_repo_root() / SLOS_DIR
    slos = load_slo_specs(slos_dir, stack)
    if not slos.slos:
        raise UsageError(f"no SLOs in {slos_dir} (slos/<name>.yaml); name the folder with --slos")
    now = dt.datetime.now(dt.UTC)
    longest = args.days or max(slo.window_days for slo in slos.slos)
    try:
        orchestrator = build_orchestrator(spec)
        history = read_history(spec, orchestrator.store, orchestrator.claims, now - dt.timedelta(days=longest), now)
    except (SpecError, SettingError):
        raise
    except Exception as exc:  # nothing to count: never report a full budget
        print(f"Could not read the pipeline's history: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_CHECK
    statuses = evaluate_all(slos, history, now, args.days)
    print(as_json(statuses, now) if args.json else render(statuses, now, verbose=args.verbose))
    return exit_code(statuses)


def _reconcile(args: argparse.Namespace) -> int:
    from phase3ops import cloud
    from phase3ops.checks import reconcile
    from phase3ops.checks.health import read_window_and_ledger
    from phase3ops.checks.repairs import ProcessorRepairs

    _target_environment(args)
    try:
        orchestrator, warehouse, now, first, last = _pipeline(args)
        spec = orchestrator.spec
        states, ledger = read_window_and_ledger(orchestrator, warehouse, first, last, now)
    except (SpecError, SettingError):
        raise
    except Exception as exc:
        print(f"Could not check: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    # The ledger's gaps whatever the window; --fix asks for them `repair_lead_minutes` before they are due.
    lead = (
        dt.timedelta(minutes=spec.expected_work.repair_lead_minutes)
        if args.fix and ledger is not None
        else dt.timedelta(0)
    )
    gaps = ledger.gaps(spec, now, lead) if ledger is not None else []
    issues = reconcile.find_issues(spec, states, now, gaps)
    repairs = (
        ProcessorRepairs(spec, orchestrator.store.client, cloud.publisher_client(), cloud.project_id())
        if args.fix and gaps
        else None
    )
    fixes = reconcile.fix(orchestrator, issues, now, repairs) if args.fix and issues else []
    failed = [f for f in fixes if not f.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "first": str(first),
                    "last": str(last),
                    "fix": args.fix,
                    "issues": [{"game_date": str(i.game_date), "kind": i.kind, "detail": i.detail} for i in issues],
                    "fixes": [{"game_date": str(f.game_date), "ok": f.ok, "message": f.message} for f in fixes],
                },
                indent=2,
            )
        )
    else:
        span = str(first) if first == last else f"{first} .. {last}"
        print(f"Reconciliation of game dates {span} ({spec.timezone}){'' if args.fix else ', dry run'}")
        for issue in issues:
            print(f"  {issue.game_date}  {issue.kind}: {issue.detail}")
        for result in fixes:
            print(f"  {result.game_date}  {'fixed' if result.ok else 'FIX FAILED'}: {result.message}")
        if not issues:
            print("No issues found - all dates are consistent")
        elif not args.fix:
            print(f"{len(issues)} issues on {len({i.game_date for i in issues})} dates; run with --fix to repair them")
        elif failed:
            print(f"{len(failed)} fixes failed")
        else:
            print(f"Repaired {len(issues)} issues on {len({i.game_date for i in issues})} dates")
    if failed or (issues and not args.fix):
        return EXIT_FINDINGS
    return EXIT_OK


def _holds(args: argparse.Namespace) -> int:
    from phase3ops.checks import holds
    from phase3ops.checks.state import read_state

    _target_environment(args)
    try:
        orchestrator, warehouse, now, first, last = _pipeline(args)
        spec = orchestrator.spec
        states = read_state(spec, orchestrator.store, orchestrator.claims, warehouse, first, last, orchestrator.holds)
        held = holds.held(states)
        rechecked = holds.recheck(orchestrator, sorted(held), now) if args.recheck else []
        settled = ("triggered", "republished", "confirmed_by_receipt", "already_triggered")
        still = {r.game_date for r in rechecked if r.outcome not in settled} if args.recheck else set(held)
    except (SpecError, SettingError):
        raise
    except Exception as exc:
        print(f"Could not check: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(
            json.dumps(
                {
                    "first": str(first),
                    "last": str(last),
                    "held": [
                        {
                            "game_date": str(day),
                            "mode": h.mode,
                            "blocked_by": h.blocked_by,
                            "report": h.report,
                            "evaluations": h.evaluations,
                            "past_deadline": h.past_deadline,
                        }
                        for day, h in held.items()
                    ],
                    "rechecked": [
                        {"game_date": str(r.game_date), "outcome": r.outcome, "reason": r.reason} for r in rechecked
                    ],
                },
                indent=2,
                default=str,
            )
        )
    else:
        span = str(first) if first == last else f"{first} .. {last}"
        print(f"Dates held by a data gate, game dates {span} ({spec.timezone})")
        for day, hold in held.items():
            print(f"  {day}  {holds.describe(spec, hold)}")
        for result in rechecked:
            print(f"  {result.game_date}  re-evaluated: {result.outcome}: {result.reason}")
        if not held:
            print("No date is held by a gate")
        elif args.recheck and not still:
            print(f"Released {len(held)} dates")
    return EXIT_FINDINGS if still else EXIT_OK


def _local_phase4_entries(args: argparse.Namespace) -> list[dict] | None:
    """What the local Phase 4 stand-in did with each message, when the command reads the local pipeline
    (the cloud's Phase 4 keeps its own record)."""
    if getattr(args, "local", None) is None:
        return None
    from phase3ops.local.environment import default_run_dir, find_repo_root
    from phase3ops.local.phase4_standin import ledger_entries
    from phase3ops.local.state import LocalState

    state = LocalState.load((Path(args.local) if args.local else default_run_dir(find_repo_root())).resolve())
    return ledger_entries(state.phase4_ledger) if state is not None else None


def _explain(args: argparse.Namespace) -> int:
    from phase3ops import cloud
    from phase3ops.explain import explain_date
    from phase3ops.explain.story import NothingStored
    from phase3ops.explain.timeline import render
    from phase3ops.spec.pipeline import load_pipeline_spec
    from phase3ops.warehouse.factory import warehouse_from_environment

    _target_environment(args)
    try:
        spec = load_pipeline_spec(args.pipeline)
        story = explain_date(
            spec,
            cloud.project_id(),
            warehouse_from_environment(),
            args.game_date,
            dt.datetime.now(dt.UTC),
            phase4_entries=_local_phase4_entries(args),
        )
    except (SpecError, SettingError):
        raise
    except NothingStored as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # could not read the stores: never a story with gaps
        print(f"Could not explain {args.game_date}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(story.as_dict(), indent=2) if args.json else render(story))
    return EXIT_FINDINGS if story.findings else EXIT_OK


OVERRIDE_EXIT_CODES = (
    "exit codes: 0 done, 1 refused or not finished (already triggered, a publish not confirmed: the output says what to run), "
    "2 bad arguments or could not reach the stores"
)
OVERRIDE_ENV_HELP = (
    "who is recorded: --operator, else CLOUDSDK_CORE_ACCOUNT (gcloud's account), else USER\n"
    "every override is recorded in Firestore (spec.orchestrator.collections.overrides, phase3_overrides) with who, when, why and what\n"
)


def _override_argument(check):
    """An argparse type from an overrides.inputs check: its refusal becomes argparse's `argument X: ...` (exit 2)."""

    def convert(text: str):
        from phase3ops.overrides.inputs import BadOverride

        try:
            return check(text)
        except BadOverride as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None

    convert.__name__ = check.__name__
    return convert


def _run_override(args: argparse.Namespace, act, validate=None) -> int:
    """Check who and what, point at the pipeline, run `act(overrides, operator)`, report each date's outcome."""
    from phase3ops.overrides import BadOverride, build_overrides, inputs
    from phase3ops.spec.pipeline import load_pipeline_spec

    try:
        operator = inputs.operator(args.operator)
        _target_environment(args)
        spec = load_pipeline_spec(args.pipeline)
        if validate is not None:
            validate(spec)
    except BadOverride as exc:
        raise UsageError(str(exc)) from None
    try:
        outcomes = act(build_overrides(spec), operator)
    except BadOverride as exc:
        raise UsageError(str(exc)) from None
    except (SpecError, SettingError):
        raise
    except Exception as exc:  # the stores could not be reached: never reported as done
        print(f"Could not {args.command} {args.game_date}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    collection = spec.orchestrator.collections.overrides
    if args.json:
        print(
            json.dumps(
                {
                    "operator": operator.name,
                    "operator_source": operator.source,
                    "reason": args.reason.strip(),
                    "outcomes": [o.as_dict() for o in outcomes],
                },
                indent=2,
            )
        )
    else:
        print(f"{args.command} by {operator.name} (from {operator.source}): {args.reason.strip()}")
        for outcome in outcomes:
            number = f" #{outcome.retrigger}" if outcome.retrigger else ""
            print(f"  {outcome.game_date}  {outcome.kind}{number}: {outcome.outcome}: {outcome.detail}")
            print(f"      recorded as {collection}/{outcome.override_id}")
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FINDINGS


def _trigger(args: argparse.Namespace) -> int:
    if not args.force:
        raise UsageError(
            "argument --force: required: `trigger` sends Phase 4 a date that is not ready; a ready date is triggered by the "
            "orchestrator, or by `reconcile --fix`"
        )
    return _run_override(
        args, lambda overrides, operator: [overrides.force_trigger(args.game_date, args.reason, operator)]
    )


def _skip(args: argparse.Namespace) -> int:
    from phase3ops.overrides import inputs

    return _run_override(
        args,
        lambda overrides, operator: [
            overrides.skip(args.game_date, args.processor, args.reason, operator, undo=args.undo)
        ],
        validate=lambda spec: inputs.processor(spec, args.processor),
    )


def _retrigger(args: argparse.Namespace) -> int:
    return _run_override(
        args,
        lambda overrides, operator: overrides.retrigger(args.game_date, args.reason, operator, cascade=args.cascade),
    )


def _add_override_commands(commands, named: _CommandNames) -> None:
    from phase3ops.overrides import inputs

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "game_date", type=_override_argument(inputs.game_date), metavar="DATE", help="the game date (YYYY-MM-DD)"
        )

    def audit(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--reason",
            required=True,
            type=_override_argument(inputs.reason),
            help=f"why (required, at most {inputs.MAX_REASON_CHARS} characters): recorded with the override",
        )
        command.add_argument("--operator", help="who makes the override (default: $CLOUDSDK_CORE_ACCOUNT, else $USER)")
        _target_options(command, "act on", "outcome")

    trigger = commands.add_parser(
        "trigger",
        **named,
        help="--force: trigger Phase 4 for a date that is not ready (a critical processor broken for good), recorded",
        description="Trigger Phase 4 for a game date that is not ready, through the orchestrator's own path: the date's "
        "create-only claim, its stable trigger ids, the messages built from the completions that exist (trigger_reason "
        "forced, degraded), the bounded publish and the receipts. A later completion of the date is then a duplicate the "
        "claim stops. A date that already has a claim is refused: use `retrigger` to send it again after a fix.",
        epilog=f"{OVERRIDE_EXIT_CODES}\n{OVERRIDE_ENV_HELP}{STATE_ENV_HELP}",
    )
    common(trigger)
    trigger.add_argument("--force", action="store_true", help="required: send the date although it is not ready")
    audit(trigger)
    trigger.set_defaults(handler=_trigger)

    skip = commands.add_parser(
        "skip",
        **named,
        help="record that a processor is not owed for a date (--undo: it is again); triggers nothing",
        description="Record that a processor is not owed for a game date (its source has nothing, it is retired for the "
        "date, ...), for the expected-work ledger; --undo records that it is owed again. Nothing is triggered.",
        epilog=f"{OVERRIDE_EXIT_CODES}\n{OVERRIDE_ENV_HELP}{STATE_ENV_HELP}",
    )
    common(skip)
    skip.add_argument("processor", metavar="PROCESSOR", help="the processor (its name, output table or class name)")
    skip.add_argument("--undo", action="store_true", help="remove the skip: the processor is owed for the date again")
    audit(skip)
    skip.set_defaults(handler=_skip)

    retrigger = commands.add_parser(
        "retrigger",
        **named,
        help="send a triggered date to Phase 4 again as new work after a fix (--cascade N: and the N triggered dates after it)",
        description="Send Phase 4 a triggered game date again after a fix, as new work: a re-trigger claim of its own "
        "(create-only, numbered: two operators at once make one), messages with new trigger ids (<trigger id>:retrigger-<n>) "
        "that the Phase 4 guard runs and the receipts recorder records. --cascade N also re-sends the N following game dates "
        "that were triggered, whose rolling windows include the fixed date, each once. A re-trigger whose publish did not "
        "finish is finished by the next retrigger of its date instead of a new one.",
        epilog=f"{OVERRIDE_EXIT_CODES}\n{OVERRIDE_ENV_HELP}{STATE_ENV_HELP}",
    )
    common(retrigger)
    retrigger.add_argument(
        "--cascade",
        type=_override_argument(inputs.cascade),
        default=0,
        metavar="N",
        help=f"also re-send the N following triggered game dates (0 to {inputs.MAX_CASCADE}; default 0)",
    )
    audit(retrigger)
    retrigger.set_defaults(handler=_retrigger)


def _drift(args: argparse.Namespace) -> int:
    from phase3ops.drift import report
    from phase3ops.drift.allowlist import apply_allowlist, load_allowlist
    from phase3ops.drift.changes import PreviewParseError, parse_preview
    from phase3ops.drift.preview import PreviewFailed, run_preview

    repo_root = Path(args.repo).resolve()
    try:
        if args.from_file:
            text = Path(args.from_file).read_text(encoding="utf-8")
        else:
            text = run_preview(args.stack, repo_root).stdout
        result = parse_preview(text)
    except (PreviewFailed, PreviewParseError, OSError) as exc:
        print(f"Could not check drift for stack {args.stack}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    apply_allowlist(result.changes, load_allowlist(repo_root / args.allowlist), args.stack)
    if args.format == "markdown":
        print(report.as_markdown(result, args.stack))
    elif args.format == "json":
        print(report.as_json(result, args.stack))
    else:
        print(report.as_text(result, args.stack, verbose=args.verbose))
    return EXIT_FINDINGS if result.drifted else EXIT_OK


# -- local ------------------------------------------------------------------------


def _local(args: argparse.Namespace) -> int:
    from phase3ops.local import environment
    from phase3ops.local.state import LocalState

    repo_root = Path(args.repo).resolve() if args.repo else environment.find_repo_root()
    run_dir = Path(args.run_dir) if args.run_dir else environment.default_run_dir(repo_root)
    say = lambda text: print(text, flush=True)  # noqa: E731 - progress as it happens
    if args.action == "up":
        try:
            environment.up(repo_root, run_dir, say)
        except environment.LocalUpFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        args.action = "status"
    if args.action == "down":
        environment.down(run_dir, say)
        return EXIT_OK
    if args.action == "env":
        state = LocalState.load(run_dir.resolve())
        if state is None:
            print(f"error: no local environment in {run_dir} (phase3ops local up)", file=sys.stderr)
            return EXIT_ERROR
        print(state.shell_exports())
        return EXIT_OK
    if args.action == "run-day":
        from phase3ops.local.run_day import NotRunning, run_day

        try:
            return run_day(repo_root, run_dir, args.date, args.games, args.chaos, say, args.never_run)
        except NotRunning as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    rows = environment.status_rows(run_dir)
    if not rows:
        print(f"not running (no state in {run_dir}): phase3ops local up")
        return EXIT_FINDINGS
    print(environment.render_table(rows, ("component", "pid", "address", "state")))
    return EXIT_OK if all(row[3] == "running" for row in rows) else EXIT_FINDINGS


# -- arguments --------------------------------------------------------------------


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YYYY-MM-DD date") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _target_options(command: argparse.ArgumentParser, verb: str, output: str) -> None:
    """Which pipeline a command reads (the cloud project or the local one), and its JSON form."""
    command.add_argument("--project", help="Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)")
    command.add_argument(
        "--local",
        nargs="?",
        const="",
        metavar="RUN_DIR",
        help=f"{verb} the pipeline `phase3ops local up` runs (default run dir: <repo>/.phase3ops/local)",
    )
    command.add_argument("--json", action="store_true", help=f"machine-readable {output}")


class _Parser(argparse.ArgumentParser):
    """Bad arguments exit 2 with the usage and the reason (argparse's own), never a traceback."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


class _CommandNames(TypedDict, total=False):
    """What every command's parser is given besides its own arguments."""

    prog: str


def build_parser(prog: str = "phase3ops", command_prog: str | None = None) -> argparse.ArgumentParser:
    """`command_prog`: the name a runbook wrapper is invoked by, shown in its command's usage."""
    named: _CommandNames = {"prog": command_prog} if command_prog else {}
    parser = _Parser(
        prog=prog,
        description="The Phase 3 -> Phase 4 hand-off's operator commands: validate and plan the specs, check and repair "
        "the pipeline, classify drift, run it locally.",
        epilog=f"{EXIT_CODES}\nenvironment:\n  {PIPELINE_ENV_HELP}",
    )
    parser.add_argument(
        "--pipeline", help="the pipeline spec (default: $PHASE3OPS_PIPELINE, else the nearest pipeline.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    check = commands.add_parser(
        "validate",
        help="check pipeline.yaml, alerts/, dashboards/ and slos/ offline; exit 2 listing every problem",
        description="Check pipeline.yaml and every file of alerts/, dashboards/ and slos/, as each stack deploys them, against their schemas, "
        "the lints and Cloud Monitoring's own message types. Every problem is listed at once with file and line.",
        epilog=f"exit codes: 0 valid, 2 problems (listed on stderr)\nenvironment:\n  {PIPELINE_ENV_HELP}",
    )
    check.add_argument("--repo", default=".", help="repository root (default: .)")
    check.add_argument(
        "--stack",
        action="append",
        help="only this stack (repeatable; default: every Pulumi.<stack>.yaml and alerts/stacks/<stack>.yaml)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable report")
    check.set_defaults(handler=_validate)

    plan = commands.add_parser(
        "plan",
        help="run the infra program offline under Pulumi's mocks and print the resource graph",
        description="Run infra/__main__.py in-process under Pulumi's mocks with the stack's config file (no cloud, no "
        "Pulumi CLI) and print what it would register, its dependency edges, outputs, and the preconditions it cannot create.",
        epilog="exit codes: 0 planned, 1 a mandatory policy violation (--policies), 2 could not plan (spec, config key, unmocked invoke)",
    )
    plan.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to use (default: dev)")
    plan.add_argument(
        "--repo",
        default=".",
        help="repository root (default: .); the program reads its pipeline.yaml, as pulumi up does",
    )
    plan.add_argument("--json", action="store_true", help="machine-readable graph")
    plan.add_argument(
        "--policies",
        action="store_true",
        help="also evaluate the CrossGuard pack in policies/ (exit 1 on a mandatory violation)",
    )
    plan.add_argument("--policy-config", type=Path, help="policy pack config JSON, as for pulumi --policy-pack-config")
    plan.add_argument(
        "--adopt",
        action="store_true",
        help="print a shell script that, run where gcloud and bq reach the project, prints the `pulumi import` "
        "of each planned resource whose name already exists (the replaced pipeline's topics, service, function, dataset)",
    )
    plan.set_defaults(handler=_plan)

    for name, handler, summary, description in (
        (
            "health",
            _health,
            "check completion tracking, game-day triggers, duplicates, scraper timing and (in the cloud) the deployment",
            "Run every health check on the game dates asked for and say what fixes each finding.",
        ),
        (
            "reconcile",
            _reconcile,
            "list dates whose state is inconsistent; --fix repairs them and publishes missed triggers once",
            "Find dates that are complete but untriggered, have a pending claim, or rows without a completion; "
            "--fix records the missing completions and sends each date through the orchestrator's exactly-once path.",
        ),
        (
            "holds",
            _holds,
            "list ready dates a data gate holds from Phase 4; --recheck evaluates them again",
            "List the game dates whose data failed a `block` gate of pipeline.yaml, with the gates, their figures and the "
            "deadline; --recheck sends each through the orchestrator again (released, held, or triggered degraded at its "
            "deadline). The phase3-hold-recheck job runs it every 15 minutes.",
        ),
    ):
        command = commands.add_parser(
            name, help=summary, description=description, epilog=f"{EXIT_CODES}\n{STATE_ENV_HELP}", **named
        )
        command.add_argument(
            "--date",
            type=_date,
            help="the last game date to look at (YYYY-MM-DD; default today in the pipeline's time zone)",
        )
        command.add_argument(
            "--days", type=_positive, help="how many game dates, ending at --date (default: 3, or 1 with --date)"
        )
        _target_options(command, "check", "report")
        command.add_argument(
            "--findings-exit-zero",
            action="store_true",
            help="exit 0 when the command ran, findings or not (the scheduled jobs: findings page through their metrics and "
            "logs, and a Cloud Run execution that exits non-zero counts as failed and is retried); 2 still means it could not run",
        )
        if name == "health":
            command.add_argument("--verbose", action="store_true", help="details of passing checks too")
            command.add_argument(
                "--stack",
                help="the deployed stack, whose alerts/stacks/<stack>.yaml overrides apply (default: $PHASE3OPS_STACK)",
            )
        elif name == "holds":
            command.add_argument(
                "--recheck", action="store_true", help="evaluate every held date again (may trigger Phase 4)"
            )
        else:
            command.add_argument("--fix", action="store_true", help="repair what the dry run lists")
        command.set_defaults(handler=handler)

    explain = commands.add_parser(
        "explain",
        **named,
        help="the story of one game date: runs, locks, rejected messages, readiness, the trigger, receipts, rows",
        description="Tell what happened to one game date from what the pipeline stored (Firestore and the warehouse, "
        "not logs): a timeline of every processor run, lock takeover, rejected message, trigger claim, Phase 4 message "
        "and receipt, then readiness per mode, the trigger's messages, and rows and duplicates per table.",
        epilog="exit codes: 0 the date is consistent, 1 findings (listed last), 2 nothing is stored for the date or it "
        f"could not be read\n{STATE_ENV_HELP}",
    )
    explain.add_argument("game_date", type=_date, metavar="DATE", help="the game date (YYYY-MM-DD)")
    _target_options(explain, "explain from", "story")
    explain.set_defaults(handler=_explain)

    _add_override_commands(commands, named)

    drift = commands.add_parser(
        "drift",
        **named,
        help="classify what `pulumi preview --refresh` says differs: outside changes, undeployed code, known diffs",
        description="Run `pulumi preview --refresh --expect-no-changes --diff --json` for the stack (or read a saved "
        "digest or event stream) and classify every change.",
        epilog="exit codes: 0 no drift, 1 drift, 2 the preview itself failed (credentials, config)",
    )
    drift.add_argument(
        "--stack",
        default=os.environ.get("DRIFT_STACK") or "prod",
        help="the stack to preview (default: $DRIFT_STACK, else prod)",
    )
    drift.add_argument(
        "--from-file",
        help="a saved `pulumi preview --json` digest or streamed engine events, instead of running the CLI",
    )
    drift.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    drift.add_argument(
        "--allowlist", default="infra/drift-allowlist.yaml", help="known permanent differences (relative to --repo)"
    )
    drift.add_argument("--repo", default=".", help="repository root (default: .)")
    drift.add_argument("--verbose", action="store_true", help="also list known differences and diagnostics")
    drift.set_defaults(handler=_drift)

    alerts = commands.add_parser(
        "alerts",
        help="alert rule tools: `alerts test` evaluates the rules' tests (alerts/tests/*.yaml) offline",
        description="Alert rule tools.",
    )
    alert_actions = alerts.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    rule_tests = alert_actions.add_parser(
        "test",
        help="would each rule have fired? evaluate alerts/tests/*.yaml on the policies the rules render",
        description="Evaluate each alert rule's tests (alerts/tests/<rule>.yaml: input series and log entries, and when "
        "the policy must fire) offline, with Cloud Monitoring's semantics, on the policy the rule renders for the stack. "
        "A failing expectation prints what was expected and what each condition evaluated to.",
        epilog="exit codes: 0 every case passed, 1 a case failed, 2 a test or rule file has problems (listed on stderr)",
    )
    rule_tests.add_argument("--repo", default=".", help="repository root (default: .)")
    rule_tests.add_argument("--stack", help="evaluate the rules as this stack deploys them (default: the base rules)")
    rule_tests.add_argument("--rule", action="append", help="only this rule's tests (repeatable)")
    rule_tests.set_defaults(handler=_alert_tests)

    slo = commands.add_parser(
        "slo",
        help="SLO tools: `slo report` gives each SLO's error budget and burn rates from what the pipeline stored",
        description="SLO tools.",
    )
    slo_actions = slo.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    slo_report = slo_actions.add_parser(
        "report",
        help="each SLI, the error budget left and the burn rate over every alert's windows",
        description="Count each SLO's events (slos/*.yaml) from what the pipeline stored: trigger claims, completion "
        "records, refused messages; then the SLI, the error budget left and the burn rates over every burn-rate "
        "alert's long and short windows, as Cloud Monitoring computes them for the deployed SLOs.",
        epilog="exit codes: 0 every SLO within its budget, 1 a burn-rate alert holds or a budget is spent, "
        "2 could not read the pipeline",
    )
    slo_report.add_argument(
        "--days", type=_positive, help="the window to report over (default: each SLO's own, 28 days)"
    )
    slo_report.add_argument("--stack", help="apply slos/stacks/<stack>.yaml (default: $PHASE3OPS_STACK)")
    slo_report.add_argument(
        "--slos", help="the SLO folder (default: slos/ of the repository around the working directory)"
    )
    slo_report.add_argument(
        "--verbose", action="store_true", help="list every SLO's bad events, not only a failing one's"
    )
    _target_options(slo_report, "report on", "report")
    slo_report.set_defaults(handler=_slo_report)

    local = commands.add_parser(
        "local",
        help="the whole pipeline on this machine: emulators, orchestrator, receipts, analytics service, Phase 4 stand-in",
        description="Run the pipeline locally. `up` converges (starts what is missing or dead, repoints subscriptions, "
        "applies an edited pipeline.yaml); `down` saves the Firestore data and stops what `up` and the chaos days started.",
        epilog="exit codes: 0 done (status: everything running), 1 status found something not running, 2 could not (spec, processes)",
    )
    local_actions = local.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    for action, description in (
        ("up", "start or repair everything; idempotent"),
        ("down", "save the Firestore data, stop what `up` and the chaos days started"),
        ("status", "what runs where, whether it answers, and any push subscription pointing at a stale endpoint"),
        ("env", 'print the shell exports that point commands at the local pipeline: eval "$(phase3ops local env)"'),
        ("run-day", "run a game day through the local pipeline, then the health check and the date's story"),
    ):
        sub = local_actions.add_parser(action, help=description, description=description.capitalize() + ".")
        sub.add_argument("--run-dir", help="state, logs and data (default: <repo>/.phase3ops/local)")
        sub.add_argument("--repo", help="repository root (default: the nearest folder with a pipeline.yaml)")
        if action == "run-day":
            sub.add_argument("--date", type=_date, help="game date (default: yesterday in the pipeline time zone)")
            sub.add_argument("--games", type=_positive, default=5, help="games on the day (default 5)")
            sub.add_argument(
                "--chaos", action="store_true", help="inject the reference system's failures (undone on any exit)"
            )
            sub.add_argument(
                "--never-run",
                metavar="PROCESSOR",
                help="Phase 2 never triggers PROCESSOR for the date; after the day, reconcile --fix re-requests it (the ledger's repair)",
            )
        sub.set_defaults(handler=_local)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    # google-api-core warns on every import that Python 3.11 support ends in
    # 2027; operators should not read that above every report.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    args = build_parser(command_prog=prog or os.environ.get("PHASE3OPS_PROG")).parse_args(argv)
    try:
        code = args.handler(args)
        return EXIT_OK if code == EXIT_FINDINGS and getattr(args, "findings_exit_zero", False) else code
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except (SettingError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Every `finally` on the way here has undone what the command started. Leave at once: releasing
        # the interrupted gRPC call (its finaliser) can wait for ever on its channel's lock, as a
        # chaos day interrupted mid-publish did.
        os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
