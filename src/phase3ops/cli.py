"""`phase3ops`: the one command line for the pipeline's operators.

Exit codes follow the checks' convention: 0 clean, 1 findings, 2 could not
check (bad spec, missing setting, unreachable service).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from phase3ops.cloud import SettingError
from phase3ops.spec.documents import SpecError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _demo(args: argparse.Namespace) -> int:
    from phase3ops.demo import run_demo
    from phase3ops.spec.pipeline import load_pipeline_spec

    spec = load_pipeline_spec(args.pipeline)
    repo_root = Path(spec.source).resolve().parent
    return run_demo(spec, repo_root, Path(args.run_dir), sys.stdout)


def _validate(args: argparse.Namespace) -> int:
    from phase3ops.alerts.validate import validate

    repo_root = Path(args.repo).resolve()
    report = validate(repo_root, Path(args.pipeline) if args.pipeline else None, args.stack or None)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "stacks": report.stacks,
                    "rules": {stack or "base": [r.name for r in specs.rules] for stack, specs in report.specs.items()},
                    "problems": [p.as_dict() for p in report.problems],
                },
                indent=2,
            )
        )
    elif report.ok:
        base = report.specs[""]
        metrics = sum(1 for r in base.rules if r.log_metric)
        print(
            f"valid: pipeline.yaml and {len(base.rules)} alert rules, {len(base.channels)} channels, "
            f"{metrics} log-based metrics (stacks checked: base{''.join(', ' + s for s in report.stacks)})"
        )
    else:
        print(SpecError(report.problems), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_ERROR


def _plan(args: argparse.Namespace) -> int:
    from phase3ops.alerts.validate import validate
    from phase3ops.plan.plan import PlanError, plan_stack
    from phase3ops.plan.render import as_json, as_text

    repo_root = Path(args.repo).resolve()
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
    if not args.policies:
        print((as_json if args.json else as_text)(stack_plan.result, missing))
        return EXIT_OK
    from phase3ops.plan import policies

    try:
        pack = policies.load_pack(repo_root)
        violations = policies.evaluate(pack, stack_plan.result, policies.load_user_config(args.policy_config))
    except policies.PolicyConfigError as exc:
        print(f"error: policy config: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        graph = json.loads(as_json(stack_plan.result, missing))
        graph["policies"] = json.loads(policies.as_json(pack, violations))
        print(json.dumps(graph, indent=2))
    else:
        print(as_text(stack_plan.result, missing))
        print()
        print(policies.render(pack, violations))
    return EXIT_FINDINGS if any(v.level == "mandatory" for v in violations) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phase3ops", description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", help="pipeline spec (default: $PHASE3OPS_PIPELINE or the nearest pipeline.yaml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="deliver one game date's completions (with duplicates) to the orchestrator on the emulators")
    demo.add_argument("--run-dir", default=".phase3ops/demo", help="where emulator and function logs go")
    demo.set_defaults(handler=_demo)

    check = commands.add_parser("validate", help="check pipeline.yaml and alerts/ offline; exit 2 listing every problem")
    check.add_argument("--repo", default=".", help="repository root (default: .)")
    check.add_argument("--stack", action="append", help="only these stacks (default: every Pulumi.<stack>.yaml and alerts/stacks/<stack>.yaml)")
    check.add_argument("--json", action="store_true", help="machine-readable report")
    check.set_defaults(handler=_validate)

    plan = commands.add_parser("plan", help="run the infra program offline under Pulumi's mocks and print the resource graph")
    plan.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to use (default: dev)")
    plan.add_argument("--repo", default=".", help="repository root (default: .)")
    plan.add_argument("--json", action="store_true", help="machine-readable graph")
    plan.add_argument("--policies", action="store_true", help="also evaluate the CrossGuard pack in policies/ (exit 1 on a mandatory violation)")
    plan.add_argument("--policy-config", type=Path, help="policy pack config JSON, as for pulumi --policy-pack-config")
    plan.set_defaults(handler=_plan)
    return parser


def main(argv: list[str] | None = None) -> int:
    # google-api-core warns on every import that Python 3.11 support ends in
    # 2027; operators should not read that above every report.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
